"""A worker that cannot heartbeat stops: its jobs are about to be run by someone else.

Other workers put a job back in the queue once its worker's heartbeat (``last_heartbeat`` in
``procrastinate_workers``, written by :meth:`StudyJobManager.update_heartbeat
<anonlib.jobs.app.StudyJobManager.update_heartbeat>`) is older than ``stalled_after`` seconds.
That is only safe if the original run is dead by then, so every worker runs a
:class:`Watchdog` thread: when no heartbeat has succeeded for ``watchdog`` seconds (less than
``stalled_after``), or the worker's registration vanished, the process exits at once with
:data:`WATCHDOG_EXIT` — a hard exit, like SIGKILL, which the queue is built to survive — and a
supervisor (``anonlib constellation up``, docker's restart policy) starts a fresh one.

The time that counts is when a successful heartbeat was *sent* (before PostgreSQL stamped it),
so the watchdog always fires before anyone else can see the heartbeat as ``stalled_after`` old.
A thread, not a task: it fires even if the event loop is stuck.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from anonlib.errors import ConfigError

__all__ = ["WATCHDOG_EXIT", "Heartbeat", "HeartbeatTiming", "Watchdog"]

log = logging.getLogger(__name__)

WATCHDOG_EXIT = 3
"""The worker's exit status when the watchdog stops it (a system part failed)."""


@dataclass(frozen=True)
class HeartbeatTiming:
    """``interval``: seconds between heartbeats; ``watchdog``: a worker without a successful
    heartbeat for this long exits; ``stalled_after``: the jobs of a worker whose heartbeat is
    this old are put back in the queue. Needs ``interval < watchdog`` and
    ``watchdog + interval <= stalled_after``."""

    interval: float = 10.0
    watchdog: float = 30.0
    stalled_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.watchdog or self.watchdog + self.interval > self.stalled_after:
            raise ConfigError(
                "worker heartbeat settings need 0 < interval < watchdog and watchdog + interval <= stalled_after "
                f"(got {self.interval:g}, {self.watchdog:g}, {self.stalled_after:g} s)")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HeartbeatTiming:
        """From ``ANONLIB_WORKER_HEARTBEAT``, ``ANONLIB_WORKER_WATCHDOG`` and
        ``ANONLIB_WORKER_STALLED_AFTER`` (seconds; defaults 10, 30, 60)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, float] = {}
        for name, key in (("interval", "ANONLIB_WORKER_HEARTBEAT"), ("watchdog", "ANONLIB_WORKER_WATCHDOG"),
                          ("stalled_after", "ANONLIB_WORKER_STALLED_AFTER")):
            raw = env.get(key, "").strip()
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ConfigError(f"{key} must be a number of seconds, not {raw!r}") from None
        return cls(**values)


class Heartbeat:
    """When this process's last successful heartbeat was sent (monotonic clock), or that its
    registration is lost for good."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()  # before registering: the registration stamps a later time
        self.lost = ""

    def now(self) -> float:
        return self._clock()

    def beat(self, sent_at: float) -> None:
        with self._lock:
            self._last = max(self._last, sent_at)

    def lose(self, reason: str) -> None:
        self.lost = reason

    def age(self) -> float:
        with self._lock:
            return self._clock() - self._last


def _hard_exit(status: int) -> None:  # pragma: no cover - ends the process
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # exiting anyway
            handler.flush()
    sys.stderr.flush()
    os._exit(status)


class Watchdog(threading.Thread):
    """Calls ``on_expire(WATCHDOG_EXIT)`` (default: exit the process now) once ``heartbeat``
    is older than ``timeout`` seconds or lost."""

    def __init__(self, heartbeat: Heartbeat, timeout: float,
                 on_expire: Callable[[int], None] = _hard_exit, poll: float | None = None) -> None:
        super().__init__(name="anonlib-heartbeat-watchdog", daemon=True)
        self.heartbeat, self.timeout, self.on_expire = heartbeat, timeout, on_expire
        self.poll = poll if poll is not None else min(1.0, timeout / 10)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.poll):
            age = self.heartbeat.age()
            if self.heartbeat.lost or age > self.timeout:
                why = self.heartbeat.lost or f"no heartbeat for {age:.0f} s (database unreachable?)"
                log.error("worker stopping: %s; its jobs go back to the queue, a supervisor restarts it", why)
                self.on_expire(WATCHDOG_EXIT)
                return
