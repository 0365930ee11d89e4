"""Conformance: dciodvfy on original and output, errors introduced by de-identification (by
normalized message, so values never appear), and warnings listed. (The de-identification
markers are checked by the Safe Harbor scan and reported under this check.)

dciodvfy is a subprocess of its own per file, so :class:`ConformanceRunner` runs the instances
in a thread pool of one thread per core and hands the findings back in input order. dciodvfy
cannot read the Deflated transfer syntax: such files are validated inflated (re-encoded as
Explicit VR Little Endian), the original and the output alike.

The original is validated only when its report can change the findings: an output whose report
has no error and no warning passes whatever its original's says (nothing can be introduced), so
its original is not run (:func:`needs_original`; the findings are the same, tested). One
difference: such an output passes even when dciodvfy would not have finished on its original
(before, INCOMPLETE) — the output itself is always validated, and an output that dciodvfy cannot
finish is still INCOMPLETE."""

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

__all__ = ["check_conformance", "compare_reports", "ConformanceRunner", "needs_original", "validate", "workers"]


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


def validate(data: bytes | Path) -> DciodvfyReport:
    """dciodvfy's report of one file: a file where it is, bytes through a temporary file.
    Raises as :func:`~anonlib.audit.dciodvfy.run_dciodvfy`."""
    with tempfile.TemporaryDirectory(prefix="anonlib-audit-") as tmp:
        return _report(data, Path(tmp), "instance.dcm")


def needs_original(after: DciodvfyReport) -> bool:
    """Whether the original's report can change the findings of an output with report
    ``after``: not when the output has no error and no warning (nothing introduced, whatever
    the original's report says)."""
    return bool(after.errors or after.warnings)


def _incomplete(study: str, instance: str, exc: AnonlibError) -> list[Finding]:
    """dciodvfy did not finish on this instance: not checked."""
    return [Finding("conformance", "dciodvfy", "incomplete", study, instance, "",
                    f"the conformance of this instance could not be checked ({exc.__class__.__name__}: "
                    "dciodvfy did not finish)")]


def compare_reports(after: DciodvfyReport, before: DciodvfyReport | None, *, study: str,
                    instance: str) -> list[Finding]:
    """The findings of an output's report against its original's (None: no original given)."""
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


_CLEAN = DciodvfyReport()  # stands for an original not validated (see needs_original)


def check_conformance(output: bytes | Path, original: bytes | Path | None, *, study: str,
                      instance: str) -> list[Finding]:
    """dciodvfy findings for one instance (see the module docstring); files are validated
    where they are, bytes through a temporary file."""
    try:
        after = validate(output)
        before = (validate(original) if needs_original(after) else _CLEAN) if original is not None else None
    except DciodvfyNotFoundError:
        raise
    except AnonlibError as exc:
        return _incomplete(study, instance, exc)
    return compare_reports(after, before, study=study, instance=instance)


class _Validator:
    """dciodvfy reports of files as they are handed over, in a thread pool of one thread per core."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="dciodvfy")

    def submit(self, data: bytes | Path) -> Future[DciodvfyReport]:
        return self._pool.submit(validate, data)

    def close(self) -> None:
        """Stop: reports that have not started are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class ConformanceRunner:
    """:func:`check_conformance` of many instances at once (see the module docstring)."""

    def __init__(self) -> None:
        self._validator = _Validator()
        self._futures: list[Future[list[Finding]]] = []
        self._finished = 0  # counted as they finish: done() is asked once per instance
        self._lock = threading.Lock()

    def submit(self, output: bytes | Path, original: bytes | Path | None, *, study: str, instance: str) -> None:
        """Queue one instance: its output's report, then its original's when needed, then the
        comparison."""
        future: Future[list[Finding]] = Future()
        future.add_done_callback(self._count)
        self._futures.append(future)
        after = self._validator.submit(output)

        def finish(before: Future[DciodvfyReport] | None) -> None:
            try:
                report = before.result() if before is not None else (_CLEAN if original is not None else None)
                future.set_result(compare_reports(after.result(), report, study=study, instance=instance))
            except DciodvfyNotFoundError as exc:
                future.set_exception(exc)
            except AnonlibError as exc:
                future.set_result(_incomplete(study, instance, exc))
            except BaseException as exc:  # noqa: BLE001 - handed to results(), which re-raises it
                future.set_exception(exc)

        def output_done(_: Future[DciodvfyReport]) -> None:
            if after.cancelled():
                future.cancel()
                return
            failed = after.exception() is not None
            if original is None or failed or not needs_original(after.result()):
                finish(None)
                return
            try:
                before = self._validator.submit(original)
            except RuntimeError:  # the pool was shut down (close): not run
                future.cancel()
                return
            before.add_done_callback(lambda done: future.cancel() if done.cancelled() else finish(done))

        after.add_done_callback(output_done)

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
            self.close()

    def close(self) -> None:
        """Stop: queued instances that have not started are dropped."""
        self._validator.close()
