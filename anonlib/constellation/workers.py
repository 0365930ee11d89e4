"""The constellation's workers: started and kept alive by one supervisor process
(:mod:`anonlib.constellation.supervise`), stopped with it, and inspected with their heartbeats.

A worker is healthy when its process runs and its heartbeat in ``procrastinate_workers`` is
younger than the watchdog timeout (:class:`~anonlib.jobs.heartbeat.HeartbeatTiming`); a worker
that has just started and not yet registered is ``starting`` for that long.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from anonlib.constellation.processes import pid_alive, read_pid, start_process, stop_pidfile
from anonlib.constellation.supervise import worker_files
from anonlib.errors import AnonlibError
from anonlib.settings import private_dir

__all__ = ["WorkerStatus", "supervise", "supervisor_alive", "stop_workers", "worker_status"]

START_WAIT = 10.0


@dataclass(frozen=True)
class WorkerStatus:
    """One worker slot as ``constellation status`` shows it."""

    name: str  # worker-<i>
    pid: int | None
    alive: bool
    heartbeat_age: float | None  # seconds since its last heartbeat; None: not registered (yet)
    state: str  # running | starting | stale | no heartbeat | stopped | unknown (database unreadable)

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "starting")


def _folder(home: Path) -> Path:
    return home / "workers"


def supervisor_alive(home: Path) -> bool:
    return pid_alive(read_pid(_folder(home) / "supervisor.pid"))


def supervise(home: Path, count: int, env: dict[str, str] | None = None) -> list[int]:
    """Make sure a supervisor keeps ``count`` workers running (restarting it if it runs
    another count, or stopping it for 0); the workers' PIDs once they are up."""
    folder = private_dir(private_dir(home) / "workers")
    pidfile, countfile = folder / "supervisor.pid", folder / "supervisor.workers"
    running = pid_alive(read_pid(pidfile))
    recorded = countfile.read_text().strip() if countfile.exists() else ""
    if running and recorded == str(count):
        return _worker_pids(home, count)
    if running:
        stop_pidfile(pidfile, grace=90)
    for extra in sorted(folder.glob("worker-*.pid")):
        index = extra.stem.rsplit("-", 1)[-1]
        if not index.isdigit() or int(index) >= count:
            stop_pidfile(extra)
    if count == 0:
        countfile.unlink(missing_ok=True)
        return []
    start_process([sys.executable, "-m", "anonlib.constellation.supervise", str(home), str(count)],
                  pidfile=pidfile, logfile=folder / "supervisor.log",
                  env={**(os.environ if env is None else env), "ANONLIB_HOME": str(home)})
    countfile.write_text(f"{count}\n")
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline and len(_worker_pids(home, count)) < count:
        time.sleep(0.1)
    return _worker_pids(home, count)


def _worker_pids(home: Path, count: int) -> list[int]:
    pids = [read_pid(worker_files(home, i)[0]) for i in range(count)]
    return [pid for pid in pids if pid is not None and pid_alive(pid)]


def stop_workers(home: Path) -> list[str]:
    """Stop the supervisor (it stops its workers), then any worker left; what was stopped."""
    folder = _folder(home)
    stopped = ["supervisor"] if stop_pidfile(folder / "supervisor.pid", grace=90) else []
    for pidfile in sorted(folder.glob("worker-*.pid")):
        if stop_pidfile(pidfile):
            stopped.append(pidfile.stem)
    (folder / "supervisor.workers").unlink(missing_ok=True)
    return stopped


def _heartbeats(db_url: str) -> dict[int, float] | None:
    """Seconds since each registered worker's heartbeat; ``None`` when the database is unreadable."""
    from anonlib.jobs.db import JobsDb

    db = JobsDb(db_url)
    try:
        return db.worker_heartbeats()
    except AnonlibError:
        return None
    finally:
        db.close()


def worker_status(home: Path, db_url: str, stale_after: float) -> list[WorkerStatus]:
    """Every worker slot with a PID file, with its heartbeat age (see the module docstring)."""
    ages = _heartbeats(db_url)
    result = []
    supervisor = _folder(home) / "supervisor.pid"
    if (_folder(home) / "supervisor.workers").exists():
        pid = read_pid(supervisor)
        alive = pid_alive(pid)
        result.append(WorkerStatus("supervisor", pid, alive, None, "running" if alive else "stopped"))
    for pidfile in sorted(_folder(home).glob("worker-*.pid"), key=lambda p: (len(p.stem), p.stem)):
        pid = read_pid(pidfile)
        alive = pid_alive(pid)
        age = None
        state = "stopped"
        if alive:
            worker_id = _registered_id(pidfile.with_suffix(".json"), pid)
            age = ages.get(worker_id) if ages is not None and worker_id is not None else None
            if ages is None:
                state = "unknown"
            elif age is not None:
                state = "running" if age <= stale_after else "stale"
            else:
                young = time.time() - pidfile.stat().st_mtime <= stale_after
                state = "starting" if young else "no heartbeat"
        result.append(WorkerStatus(pidfile.stem, pid, alive, age, state))
    return result


def _registered_id(statefile: Path, pid: int | None) -> int | None:
    try:
        state = json.loads(statefile.read_text())
    except (OSError, ValueError):
        return None
    worker_id = state.get("worker_id") if isinstance(state, dict) and state.get("pid") == pid else None
    return worker_id if isinstance(worker_id, int) else None
