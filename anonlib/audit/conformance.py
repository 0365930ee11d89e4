"""Conformance: dciodvfy on original and output, errors introduced by de-identification (by
normalized message, so values never appear), and warnings listed. (The de-identification
markers are checked by the Safe Harbor scan and reported under this check.)

dciodvfy is a subprocess of its own per file, so :class:`ConformanceRunner` runs the instances
in a thread pool of one thread per core and hands the findings back in input order. dciodvfy
cannot read the Deflated transfer syntax: such files are validated inflated (re-encoded as
Explicit VR Little Endian), the original and the output alike."""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from anonlib.audit.dciodvfy import DciodvfyNotFoundError, DciodvfyReport, introduced_errors, run_dciodvfy
from anonlib.audit.model import Finding, Verdict
from anonlib.errors import AnonlibError

__all__ = ["check_conformance", "ConformanceRunner", "workers"]


def workers() -> int:
    """How many dciodvfy processes run at once: one per core."""
    return os.cpu_count() or 1


_DEFLATED = b"1.2.840.10008.1.2.1.99"


def _inflated(data: bytes) -> bytes:
    """A Deflated Explicit VR Little Endian file re-encoded as Explicit VR Little Endian, which
    dciodvfy can read (it reads the deflated bytes as garbage); other files as they are."""
    if _DEFLATED not in data[:1024]:
        return data
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if str(ds.file_meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian:
            return data
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - unreadable here: dciodvfy says what it can
        return data


def _report(data: bytes | Path, folder: Path, name: str) -> DciodvfyReport:
    if isinstance(data, Path):
        with open(data, "rb") as handle:
            deflated = _DEFLATED in handle.read(1024)
        if not deflated:
            return run_dciodvfy(data)
        data = data.read_bytes()
    data = _inflated(data)
    path = folder / name
    path.write_bytes(data)
    try:
        return run_dciodvfy(path)
    finally:
        path.unlink(missing_ok=True)


def check_conformance(output: bytes | Path, original: bytes | Path | None, *, study: str,
                      instance: str) -> list[Finding]:
    """dciodvfy findings for one instance (see the module docstring); files are validated
    where they are, bytes through a temporary file."""
    try:
        with tempfile.TemporaryDirectory(prefix="anonlib-audit-") as tmp:
            after = _report(output, Path(tmp), "output.dcm")
            before = _report(original, Path(tmp), "original.dcm") if original is not None else None
    except DciodvfyNotFoundError:
        raise
    except AnonlibError as exc:  # dciodvfy did not finish on this instance: not checked
        return [Finding("conformance", "dciodvfy", "incomplete", study, instance, "",
                        f"the conformance of this instance could not be checked ({exc.__class__.__name__}: "
                        "dciodvfy did not finish)")]
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


class ConformanceRunner:
    """:func:`check_conformance` of many instances at once (see the module docstring)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="dciodvfy")
        self._futures: list[Future[list[Finding]]] = []
        self._finished = 0  # counted as they finish: done() is asked once per instance
        self._lock = threading.Lock()

    def submit(self, output: bytes | Path, original: bytes | Path | None, *, study: str, instance: str) -> None:
        """Queue one instance."""
        future = self._pool.submit(check_conformance, output, original, study=study, instance=instance)
        future.add_done_callback(self._count)
        self._futures.append(future)

    def _count(self, _: Future[list[Finding]]) -> None:
        with self._lock:
            self._finished += 1

    def done(self) -> int:
        """How many of the queued instances are finished (a counter: asking is O(1), so a
        progress report per instance stays linear in the size of the set)."""
        return self._finished

    def results(self, finished: Callable[[int], None] | None = None) -> list[list[Finding]]:
        """Every instance's findings, in the order queued; ``finished(count)`` is called as
        they finish. Waits for them all, and re-raises the first error (such as dciodvfy not
        being installed)."""
        try:
            for count, _ in enumerate(as_completed(self._futures), start=1):
                if finished is not None:
                    finished(count)
            return [future.result() for future in self._futures]
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop: queued instances that have not started are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)
