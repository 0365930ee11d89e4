"""Workers that stay alive: heartbeat timing rules, the watchdog that stops a worker which can
no longer heartbeat, and the supervisor that starts a dead worker again."""

from __future__ import annotations

import os
import signal
import subprocess
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


def test_worker_status_names_dead_stale_and_starting_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from anonlib.cli import main
    from anonlib.constellation import manage, workers

    folder = tmp_path / "workers"
    folder.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    alive = [subprocess.Popen(sleeper) for _ in range(3)]
    try:
        for index, process in enumerate(alive):  # worker-0 fresh, worker-1 stale, worker-2 not registered
            worker_files(tmp_path, index)[0].write_text(f"{process.pid}\n")
            if index < 2:
                worker_files(tmp_path, index)[2].write_text(f'{{"pid": {process.pid}, "worker_id": {index + 10}}}')
        worker_files(tmp_path, 3)[0].write_text("999999\n")  # dead
        (folder / "supervisor.workers").write_text("4\n")
        (folder / "supervisor.pid").write_text(f"{os.getpid()}\n")
        monkeypatch.setattr(workers, "_heartbeats", lambda url: {10: 2.0, 11: 45.0})
        shown = {w.name: (w.state, w.healthy) for w in workers.worker_status(tmp_path, "postgresql://x/y", 30)}
        assert shown == {"supervisor": ("running", True), "worker-0": ("running", True),
                         "worker-1": ("stale", False), "worker-2": ("starting", True),
                         "worker-3": ("stopped", False)}
        old = time.time() - 100
        os.utime(worker_files(tmp_path, 2)[0], (old, old))  # never registered, for too long
        assert workers.worker_status(tmp_path, "u", 30)[3].state == "no heartbeat"
        monkeypatch.setattr(workers, "_heartbeats", lambda url: None)  # database unreadable
        assert workers.worker_status(tmp_path, "u", 30)[1].state == "unknown"

        # the CLI: one line per worker with its heartbeat age, exit 1 while one is stale or dead
        monkeypatch.setattr(workers, "_heartbeats", lambda url: {10: 2.0, 11: 45.0})
        info = type("Info", (), {"db_url": "postgresql://x/y"})()
        monkeypatch.setattr(manage, "status", lambda settings: (
            info, [], workers.worker_status(tmp_path, "u", 30)))
        monkeypatch.setattr("anonlib.cli._print_held", lambda url: None)
        monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))
        assert main(["constellation", "status"]) == 1
        out = capsys.readouterr().out
        assert f"worker-1   stale                    pid {alive[1].pid}  heartbeat 45 s ago" in out
        assert "worker-3   stopped" in out
    finally:
        for process in alive:
            process.kill()
            process.wait()
