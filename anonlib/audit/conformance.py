"""Conformance: dciodvfy on original and output, errors introduced by de-identification (by
normalized message, so values never appear), and warnings listed. (The de-identification
markers are checked by the Safe Harbor scan and reported under this check.)"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from anonlib.audit.dciodvfy import DciodvfyReport, introduced_errors, run_dciodvfy
from anonlib.audit.model import Finding, Verdict

__all__ = ["check_conformance"]


def _report(data: bytes, folder: Path, name: str) -> DciodvfyReport:
    path = folder / name
    path.write_bytes(data)
    try:
        return run_dciodvfy(path)
    finally:
        path.unlink(missing_ok=True)


def check_conformance(output: bytes, original: bytes | None, *, study: str, instance: str) -> list[Finding]:
    """dciodvfy findings for one instance (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="anonlib-audit-") as tmp:
        after = _report(output, Path(tmp), "output.dcm")
        before = _report(original, Path(tmp), "original.dcm") if original is not None else None
    findings: list[Finding] = []
    if before is None:
        for error in after.errors:
            findings.append(Finding("conformance", "dciodvfy", "warn", study, instance, "",
                                    f"error (no original to compare with): {error}"))
        return findings
    baseline_aborted = any(e.startswith("Abort") for e in before.errors)
    for error in introduced_errors(before, after):
        verdict: Verdict = "warn" if baseline_aborted else "fail"
        note = " (the original could not be validated)" if baseline_aborted else ""
        findings.append(Finding("conformance", "dciodvfy", verdict, study, instance, "",
                                f"error introduced by de-identification{note}: {error}"))
    new_warnings = Counter(after.warnings) - Counter(before.warnings)
    for warning in sorted(new_warnings.elements()):
        findings.append(Finding("conformance", "dciodvfy warning", "warn", study, instance, "", warning))
    if not any(f.verdict == "fail" for f in findings):
        findings.append(Finding("conformance", "dciodvfy", "pass", study, instance, "",
                                "no error introduced by de-identification"))
    return findings
