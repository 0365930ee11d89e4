"""Workers that stay alive: heartbeat timing rules, the watchdog that stops a worker which can
no longer heartbeat, and the supervisor that starts a dead worker again."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from anonlib.constellation.processes import pid_alive, read_pid
from anonlib.constellation.supervise import Supervisor, worker_files
from anonlib.errors import ConfigError
from anonlib.jobs.heartbeat import WATCHDOG_EXIT, Heartbeat, HeartbeatTiming, Watchdog


def test_timing_keeps_the_watchdog_before_stalled_detection() -> None:
    assert HeartbeatTiming() == HeartbeatTiming(10, 30, 60)
    assert HeartbeatTiming.from_env({"ANONLIB_WORKER_HEARTBEAT": "1", "ANONLIB_WORKER_WATCHDOG": "3",
                                     "ANONLIB_WORKER_STALLED_AFTER": "5"}) == HeartbeatTiming(1, 3, 5)
    for bad in ((10, 5, 60), (10, 30, 35), (0, 30, 60)):
        with pytest.raises(ConfigError, match="watchdog"):
            HeartbeatTiming(*bad)
    with pytest.raises(ConfigError, match="ANONLIB_WORKER_WATCHDOG"):
        HeartbeatTiming.from_env({"ANONLIB_WORKER_WATCHDOG": "soon"})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _watch(heartbeat: Heartbeat, fired: list[int]) -> Watchdog:
    dog = Watchdog(heartbeat, timeout=30, on_expire=fired.append, poll=0.01)
    dog.start()
    return dog


def test_watchdog_fires_only_when_heartbeats_stop() -> None:
    clock = Clock()
    heartbeat = Heartbeat(clock)
    fired: list[int] = []
    dog = _watch(heartbeat, fired)
    for _ in range(5):  # a heartbeat every 10 s: never fires
        clock.now += 10
        heartbeat.beat(clock.now - 0.5)
        time.sleep(0.05)
    assert not fired and dog.is_alive()
    sent = clock.now
    clock.now += 29  # the next heartbeats fail ...
    time.sleep(0.05)
    assert not fired
    heartbeat.beat(sent - 100)  # ... a late answer to an old heartbeat changes nothing
    clock.now += 2
    dog.join(timeout=2)
    assert fired == [WATCHDOG_EXIT]


def test_watchdog_fires_at_once_when_the_registration_is_lost() -> None:
    heartbeat = Heartbeat()
    fired: list[int] = []
    dog = _watch(heartbeat, fired)
    heartbeat.lose("registration gone")
    dog.join(timeout=2)
    assert fired == [WATCHDOG_EXIT]


def test_supervisor_restarts_a_killed_worker_and_stops_them(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, 2, [sys.executable, "-c", "import time; time.sleep(60)"], grace=5)
    supervisor.adopt_or_start()
    try:
        first = [read_pid(worker_files(tmp_path, i)[0]) for i in range(2)]
        assert all(pid_alive(pid) for pid in first)
        os.kill(first[0], signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            supervisor.check()
            now = read_pid(worker_files(tmp_path, 0)[0])
            if now != first[0] and pid_alive(now):
                break
            time.sleep(0.1)
        assert now != first[0] and pid_alive(now)
        assert read_pid(worker_files(tmp_path, 1)[0]) == first[1]  # the other one untouched
        assert supervisor.slots[0].restarts == 1 and supervisor.slots[0].pause == 1.0
        # a second supervisor (after the first one died) adopts running workers: no doubles
        other = Supervisor(tmp_path, 2, supervisor.argv)
        other.adopt_or_start()
        assert [slot.adopted for slot in other.slots] == [now, first[1]]
    finally:
        supervisor.stop_workers()
    assert not any(pid_alive(pid) for pid in (now, first[1]))
    assert not list(tmp_path.glob("workers/*.pid"))
