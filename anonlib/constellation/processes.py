"""Starting and stopping the constellation's processes (Orthanc nodes, workers).

Each process runs detached (its own session), writes its log and PID file under
``$ANONLIB_HOME/<name>/``, and is stopped with SIGTERM (then SIGKILL after a grace period).
Readiness of an Orthanc node is ``GET /system`` answering with the node's own ``Name`` while its
PID is alive — a bare HTTP 200 could come from another server on that port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from anonlib.errors import AnonlibError
from anonlib.settings import private_dir, private_umask, write_private

__all__ = [
    "ProcessError", "Watched", "port_free", "free_port", "start_child", "start_process", "stop_pidfile", "pid_alive",
    "read_pid", "write_pid", "assemble_config", "orthanc_problem", "wait_orthanc_ready",
]


class ProcessError(AnonlibError):
    """A constellation process could not be started, reached or stopped."""


@dataclass(kw_only=True)
class Watched:
    """A process a supervisor keeps alive: its child, or the PID of one it adopted from an
    earlier supervisor; when it started and the pause before its next start."""

    process: subprocess.Popen[bytes] | None = None
    adopted: int | None = None
    started: float = 0.0
    pause: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else self.adopted


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``port`` (and it can be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) != 0


def free_port(preferred: int, taken: set[int]) -> int:
    """``preferred`` when it is free and not already chosen, else a free port from the kernel."""
    if preferred and preferred not in taken and port_free(preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and port_free(port):
            return port


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited child not yet reaped) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def start_process(argv: list[str], *, pidfile: Path, logfile: Path, env: Mapping[str, str],
                  cwd: Path | None = None) -> int:
    """Start ``argv`` detached; write its PID to ``pidfile``; its output goes to ``logfile``.
    The process runs with umask 077: what it creates (Orthanc's storage and logs, a worker's
    export tree) is its owner's only, like the PID and log files written here."""
    return start_child(argv, pidfile=pidfile, logfile=logfile, env=env, cwd=cwd).pid


def start_child(argv: list[str], *, pidfile: Path, logfile: Path, env: Mapping[str, str],
                cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """:func:`start_process`, returning the child (whose exit status its parent can read)."""
    with private_umask():
        private_dir(pidfile.parent)
        with open(logfile, "ab") as log:
            try:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=dict(env), cwd=cwd, start_new_session=True, umask=0o077)
            except OSError as exc:
                raise ProcessError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        write_pid(pidfile, process.pid)
    return process


def write_pid(pidfile: Path, pid: int) -> None:
    """``pid`` into ``pidfile``, replaced atomically: a reader never sees it empty or half written."""
    write_private(pidfile, f"{pid}\n")


def stop_pidfile(pidfile: Path, *, grace: float = 20.0) -> bool:
    """Stop the process named in ``pidfile`` (SIGTERM, then SIGKILL); True if one was running."""
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        pidfile.unlink(missing_ok=True)
        return False
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def assemble_config(env_dir: Path, role: str, target: Path) -> Path:
    """Copy ``env/orthanc/common/*.json`` and ``env/orthanc/<role>/*.json`` into ``target``
    (Orthanc merges every JSON of its configuration folder)."""
    source = env_dir / "orthanc"
    files = sorted((source / "common").glob("*.json")) + sorted((source / role).glob("*.json"))
    if not files:
        raise ProcessError(f"no Orthanc configuration for role {role!r} under {source}")
    if target.exists():
        shutil.rmtree(target)
    private_dir(target)
    for path in files:
        copy = target / f"{path.parent.name}-{path.name}"
        shutil.copyfile(path, copy)
        os.chmod(copy, 0o600)
    return target


def orthanc_problem(url: str, name: str, auth: tuple[str, str], timeout: float = 2.0) -> str:
    """One readiness probe: ``""`` when ``GET /system`` answers with ``Name == name``, else
    what went wrong (``HTTP <status>`` or the exception's class)."""
    try:
        answer = httpx.get(f"{url}/system", auth=auth, timeout=timeout)
        if answer.status_code == 200 and answer.json().get("Name") == name:
            return ""
        return f"HTTP {answer.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        return type(exc).__name__


def wait_orthanc_ready(url: str, name: str, auth: tuple[str, str], pid: int | None,
                       timeout: float = 60.0, log: Path | None = None) -> None:
    """Wait until ``GET /system`` answers with ``Name == name``; ProcessError otherwise."""
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise ProcessError(f"Orthanc {name} exited during start-up" + _tail(log))
        problem = orthanc_problem(url, name, auth)
        if not problem:
            return
        time.sleep(0.2)
    raise ProcessError(f"Orthanc {name} not ready at {url} after {timeout:.0f} s ({problem})" + _tail(log))


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()[-5:]
    return "; last log lines: " + " | ".join(lines)
