"""Keep the constellation's workers running: ``python -m anonlib.constellation.supervise HOME N``.

``anonlib constellation up`` starts one supervisor, detached (``HOME/workers/supervisor.pid``,
its log ``supervisor.log``). It starts ``N`` workers (``anonlib worker``; worker ``i`` logs to
``worker-<i>.log``, its PID in ``worker-<i>.pid``, its heartbeat identity in
``worker-<i>.json`` via ``ANONLIB_WORKER_STATE``) and starts a worker again whenever it exits —
a crash, SIGKILL, or its heartbeat watchdog — after a pause that doubles from 1 s up to 30 s
while it keeps dying young (running :data:`HEALTHY_AFTER` seconds resets it). A worker left
running by an earlier supervisor is adopted, not doubled. SIGTERM stops the workers (SIGTERM,
then SIGKILL after a grace period) and then the supervisor. Log lines name the worker slot,
PID and exit status only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from anonlib.constellation.processes import Watched, pid_alive, read_pid, stop_pidfile, write_pid

__all__ = ["HEALTHY_AFTER", "Slot", "Supervisor", "main", "next_pause", "worker_files"]

log = logging.getLogger("anonlib.supervise")

HEALTHY_AFTER = 60.0
"""A worker that ran this long had a healthy life: its next restart is immediate."""
MAX_PAUSE = 30.0


def next_pause(pause: float, lived: float) -> float:
    """The pause before starting again a process that lived ``lived`` seconds, after the pause
    ``pause`` before its start: none after a healthy life, else doubling from 1 s to 30 s."""
    return 0.0 if lived >= HEALTHY_AFTER else min(MAX_PAUSE, max(1.0, pause * 2))


def worker_files(home: Path, index: int) -> tuple[Path, Path, Path]:
    """``(pidfile, logfile, statefile)`` of worker ``index``."""
    folder = home / "workers"
    return folder / f"worker-{index}.pid", folder / f"worker-{index}.log", folder / f"worker-{index}.json"


@dataclass
class Slot(Watched):
    """One worker position: its current process (a child, or an adopted PID)."""

    index: int
    next_start: float = 0.0
    restarts: int = 0

    def exit_status(self) -> int | None | str:
        """``None`` while running; the exit status (``"?"`` for an adopted process) once gone."""
        if self.process is not None:
            return self.process.poll()
        if self.adopted is not None:
            return None if pid_alive(self.adopted) else "?"
        return "?"


class Supervisor:
    def __init__(self, home: Path, count: int, argv: list[str] | None = None, *, grace: float = 60.0,
                 poll: float = 0.5) -> None:
        self.home, self.count, self.grace, self.poll = home, count, grace, poll
        self.argv = argv or [sys.executable, "-m", "anonlib.cli", "worker"]
        self.slots = [Slot(i) for i in range(count)]
        self.stopping = threading.Event()

    def _start(self, slot: Slot) -> None:
        pidfile, logfile, state = worker_files(self.home, slot.index)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        state.unlink(missing_ok=True)
        env = {**os.environ, "ANONLIB_HOME": str(self.home), "TCP_NODELAY": "1", "ANONLIB_WORKER_STATE": str(state)}
        with open(logfile, "ab") as out:
            try:
                slot.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=env)
            except OSError as exc:
                log.error("worker-%d could not start (%s)", slot.index, exc.strerror)
                slot.process = None
                self._schedule(slot, time.monotonic())
                return
        slot.adopted, slot.started = None, time.monotonic()
        write_pid(pidfile, slot.process.pid)
        log.info("worker-%d started, pid %d", slot.index, slot.process.pid)

    def _schedule(self, slot: Slot, now: float) -> None:
        slot.pause = next_pause(slot.pause, now - slot.started)
        slot.next_start = now + slot.pause

    def adopt_or_start(self) -> None:
        for slot in self.slots:
            pid = read_pid(worker_files(self.home, slot.index)[0])
            if pid_alive(pid):
                slot.adopted, slot.started = pid, time.monotonic()
                log.info("worker-%d adopted, pid %s", slot.index, pid)
            else:
                self._start(slot)

    def check(self) -> None:
        """One pass: restart every worker that exited, once its pause is over."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None:
                if now >= slot.next_start:
                    slot.restarts += 1
                    self._start(slot)
                continue
            status = slot.exit_status()
            if status is None:
                continue
            log.warning("worker-%d (pid %s) exited with status %s", slot.index, slot.pid, status)
            slot.process, slot.adopted = None, None
            self._schedule(slot, now)

    def run(self) -> None:
        self.adopt_or_start()
        while not self.stopping.wait(self.poll):
            self.check()
        self.stop_workers()

    def stop_workers(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGTERM)
        for slot in self.slots:
            pidfile = worker_files(self.home, slot.index)[0]
            if slot.process is not None:
                try:
                    slot.process.wait(timeout=self.grace)
                except subprocess.TimeoutExpired:
                    slot.process.kill()
                    slot.process.wait()
                pidfile.unlink(missing_ok=True)
            else:
                stop_pidfile(pidfile, grace=self.grace)
        log.info("workers stopped")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m anonlib.constellation.supervise HOME WORKERS", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(Path(args[0]), int(args[1]))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
