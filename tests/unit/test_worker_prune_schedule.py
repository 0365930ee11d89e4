"""The worker's catch-up loop prunes finished jobs every ``prune_interval`` (issue 11: the queue
table stays small), not at every pass; ``JobsDb.prune_finished`` itself is tested against
PostgreSQL in tests/integration/test_worker_heartbeat.py. A fake clock and fake catch-up/db:
nothing is slept, nothing connects."""

from __future__ import annotations

import asyncio
import types
from typing import Any, cast

import pytest

from anonlib.jobs import worker
from anonlib.jobs.catchup import CatchUp, CatchUpReport
from anonlib.jobs.worker import WorkerSettings


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class _FakeDb:
    def __init__(self, clock: _Clock, fail_at: set[float]) -> None:
        self.clock = clock
        self.calls: list[tuple[float, float]] = []  # (clock, older_than)
        self.fail_at = fail_at

    def prune_finished(self, older_than: float) -> int:
        self.calls.append((self.clock.now, older_than))
        if self.clock.now in self.fail_at:
            raise OSError("database gone")
        return 3


class _FakeCatchUp:
    """One pass every ``step`` seconds of the fake clock; sets ``stop`` after ``passes``."""

    def __init__(self, clock: _Clock, db: _FakeDb, step: float, passes: int, stop: asyncio.Event,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.clock, self.db, self.step, self.passes = clock, db, step, passes
        self.stop, self.loop = stop, loop
        self.seen: list[float] = []

    def run_once(self, *, reconcile: bool) -> CatchUpReport:
        self.seen.append(self.clock.now)
        if len(self.seen) == self.passes:
            self.loop.call_soon_threadsafe(self.stop.set)
        return CatchUpReport()

    def tick(self) -> None:
        self.clock.now += self.step


def _run(monkeypatch: pytest.MonkeyPatch, *, step: float, passes: int, retention: float,
         prune_interval: float = 3600.0, fail_at: frozenset[float] = frozenset()) -> tuple[_FakeCatchUp, _FakeDb]:
    clock = _Clock()
    # only the worker module's clock is faked: asyncio keeps the real one
    monkeypatch.setattr(worker, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    db = _FakeDb(clock, set(fail_at))
    holder: dict[str, _FakeCatchUp] = {}

    async def main() -> None:
        stop = asyncio.Event()
        fake = holder["fake"] = _FakeCatchUp(clock, db, step, passes, stop, asyncio.get_running_loop())

        async def wait_and_tick(awaitable: Any, timeout: float | None) -> Any:
            fake.tick()  # the loop's sleep between two passes: `step` seconds on the fake clock
            return await asyncio.wait_for(awaitable, 0)

        # the worker module's asyncio, but for its wait_for (the sleep between two passes)
        proxy = types.SimpleNamespace(**{n: getattr(asyncio, n) for n in ("to_thread", "TimeoutError")},
                                      wait_for=wait_and_tick)
        monkeypatch.setattr(worker, "asyncio", proxy)
        settings = WorkerSettings(interval=step, retention=retention, prune_interval=prune_interval)
        await asyncio.wait_for(worker._catchup_loop(cast(CatchUp, fake), cast(Any, None), settings, stop), 30)

    asyncio.run(main())
    return holder["fake"], db


def test_finished_jobs_are_pruned_once_per_interval_from_the_first_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, db = _run(monkeypatch, step=300, passes=40, retention=7 * 86400)
    assert fake.seen == [300.0 * i for i in range(40)]  # a pass every 5 minutes for 3 h 15 min
    assert db.calls == [(0.0, 604800.0), (3600.0, 604800.0), (7200.0, 604800.0), (10800.0, 604800.0)]


def test_passes_slower_than_the_interval_prune_at_each_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    _, db = _run(monkeypatch, step=5000, passes=4, retention=3600)
    assert [at for at, _ in db.calls] == [0.0, 5000.0, 10000.0, 15000.0]


def test_a_failed_prune_waits_for_the_next_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error is logged, the loop goes on, and the prune is not retried at every pass."""
    fake, db = _run(monkeypatch, step=600, passes=14, retention=86400, fail_at=frozenset({0.0}))
    assert len(fake.seen) == 14
    assert [at for at, _ in db.calls] == [0.0, 3600.0, 7200.0]


def test_retention_zero_never_prunes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, db = _run(monkeypatch, step=3600, passes=5, retention=0)
    assert len(fake.seen) == 5 and db.calls == []
