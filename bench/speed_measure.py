"""One whole-process run of a command: wall time, CPU time, peak RSS, exit status, outputs written."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Run", "Measured", "measure", "run_once", "count_dicom", "fresh"]


@dataclass(frozen=True)
class Run:
    """One measured run. ``peak_mb``: the largest resident set of the process or any of its
    children it waited for (GNU time's ``%M``, from ``wait4``: the largest one, not a sum);
    ``cpu``: user + system seconds of the process and the children it waited for (``wait4``'s
    rusage: a worker pool's processes included), 0 when not measured."""

    corpus: str
    tool: str
    round: int
    seconds: float
    peak_mb: float
    returncode: int
    timed_out: bool
    outputs: int
    note: str = ""
    cpu: float = 0.0


@dataclass(frozen=True)
class Measured:
    """What :func:`measure` saw of one process: wall and CPU seconds, peak RSS, exit, a note."""

    seconds: float
    cpu: float
    peak_mb: float
    returncode: int
    timed_out: bool
    note: str


def fresh(path: Path) -> None:
    """Remove ``path`` and what a run left beside it (anonlib's ``<DST>-quarantine``)."""
    for target in (path, path.with_name(path.name + "-quarantine")):
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def count_dicom(folder: Path) -> int:
    """Files under ``folder`` with a DICOM preamble (``DICM`` at byte 128)."""
    count = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                head = handle.read(132)
            count += head[128:132] == b"DICM"
    return count


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


# GNU time reports the peak RSS of the command alone. Without it, wait4's figure also counts
# the bench's own pages at the fork (Linux keeps the parent's high-water mark across exec).
_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else ""


def run_once(argv: list[str], log: Path, *, timeout: float, env: dict[str, str]) -> tuple[float, float, int, bool, str]:
    """:func:`measure` as seconds, peak RSS in MB, exit code, timed out, note."""
    got = measure(argv, log, timeout=timeout, env=env)
    return got.seconds, got.peak_mb, got.returncode, got.timed_out, got.note


def measure(argv: list[str], log: Path, *, timeout: float, env: dict[str, str]) -> Measured:
    """Run ``argv`` to its end (or kill its process group after ``timeout`` s).

    Wall seconds, CPU seconds (user + system, children waited for included), peak RSS in MB, exit
    code, whether it timed out, and the last line it printed when it failed (stdout and stderr go
    to ``log``)."""
    rss_file = log.with_name(log.name + ".rss")
    timed = [_TIME, "-f", "%M", "-o", str(rss_file), *argv] if _TIME else argv
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(timed, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    if _TIME and rss_file.exists():
        lines = rss_file.read_text().split()
        peak = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else peak
    if killed.is_set():
        return Measured(seconds, cpu, peak, code, True, f"timed out after {timeout:.0f} s")
    return Measured(seconds, cpu, peak, code, False, _last_line(log) if code else "")
