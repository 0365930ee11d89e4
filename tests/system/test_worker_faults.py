"""Fault tests of the supervised workers, on a real constellation: a worker SIGKILLed in the
middle of a study, and PostgreSQL unreachable for the workers (frozen behind a TCP proxy the test
controls) for longer than the heartbeat window. Each ends with every study delivered exactly
once and whole, the workers alive (restarted by the supervisor), no job run by two live workers
at once, ``jobs wait`` saying so truthfully and ``constellation status`` healthy.

Small timings keep it fast: heartbeat 1 s, watchdog 3 s, stalled after 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from anonlib.constellation import ConstellationInfo, ConstellationSettings
from anonlib.constellation.processes import pid_alive, read_pid
from anonlib.constellation.supervise import worker_files
from anonlib.constellation.workers import stop_workers, supervise
from anonlib.jobs.db import JobsDb
from anonlib.store.db import make_engine
from anonlib.synthetic.batch import BatchStudy, write_batch
from tests.fixtures.figures import Figures
from tests.orthanc_helpers import count_instances, storescu

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMING = {"ANONLIB_WORKER_HEARTBEAT": "1", "ANONLIB_WORKER_WATCHDOG": "3", "ANONLIB_WORKER_STALLED_AFTER": "5",
          "ANONLIB_PG_CONNECT_TIMEOUT": "3", "ANONLIB_RETRY_BASE_SECONDS": "1"}


@pytest.fixture
def timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor and its workers inherit the environment of the process that starts them."""
    for name, value in TIMING.items():
        monkeypatch.setenv(name, value)


SENT: list[BatchStudy] = []  # every study sent to the module's constellation, by either test


@pytest.fixture
def supervised(constellation: tuple[ConstellationSettings, ConstellationInfo], timing: None
               ) -> Iterator[tuple[ConstellationSettings, ConstellationInfo]]:
    """The module's constellation; its workers (and description) are put back as they were after."""
    settings, info = constellation
    try:
        yield settings, info
    finally:
        stop_workers(settings.home)
        info.save(settings.info_path)


def _cli(settings: ConstellationSettings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "ANONLIB_HOME": str(settings.home)}, timeout=timeout)


def _logs(settings: ConstellationSettings) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((settings.home / "workers").glob("*.log")))


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout:g} s")


def _exported(info: ConstellationInfo) -> int:
    return sum(1 for p in Path(info.export_dir).rglob("*") if p.is_file() and p.suffix.lower() == ".dcm")


def _assert_delivered_once(settings: ConstellationSettings, info: ConstellationInfo,
                           studies: list[BatchStudy]) -> None:
    waited = _cli(settings, "jobs", "wait", "--timeout", "120", "--poll", "0.5")
    assert waited.returncode == 0, waited.stdout + waited.stderr + _logs(settings)[-4000:]
    total = sum(s.instances for s in studies)
    assert count_instances(info.research) == total
    assert _exported(info) == total
    db = JobsDb(info.db_url)
    try:
        records = db.deliveries("intake")
        assert len(records) == len(studies)
        assert {r.status for r in records.values()} == {"done"}
        assert sorted(r.instances for r in records.values()) == sorted(s.instances for s in studies)
        assert not db.jobs(outstanding_failures=True, limit=None)
    finally:
        db.close()


def _assert_healthy(settings: ConstellationSettings, workers: int) -> None:
    def healthy() -> bool:
        shown = _cli(settings, "constellation", "status", timeout=60)
        return shown.returncode == 0 and shown.stdout.count("heartbeat") == workers

    _wait(healthy, 30, "constellation status not healthy")


class Monitor(threading.Thread):
    """Watches, straight on PostgreSQL, which worker runs each job, and flags a job started by
    one worker while another worker that ran it is still alive (a concurrent double run)."""

    def __init__(self, direct_url: str, home: Path, workers: int, stalled_after: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(direct_url)
        self.home, self.workers = home, workers
        self.pids: dict[int, int] = {}  # procrastinate worker id -> pid
        self.runner: dict[int, int] = {}  # job id -> worker id seen running it last
        self.doubles: list[str] = []
        self.stalled_alive: list[str] = []  # a live worker whose jobs others may take as stalled
        self.stalled_after = stalled_after
        self.seen_running = 0
        self.stop = threading.Event()

    def _learn_pids(self) -> None:
        for index in range(self.workers):
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(worker_files(self.home, index)[2].read_text())
                if isinstance(state.get("worker_id"), int):
                    self.pids[state["worker_id"]] = state["pid"]

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self._learn_pids()
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT id, status::text, worker_id FROM procrastinate_jobs")).all()
                ages = conn.execute(text("SELECT id, extract(epoch FROM now() - last_heartbeat) "
                                         "FROM procrastinate_workers")).all()
            for worker_id, age in ages:
                if float(age) > self.stalled_after and pid_alive(self.pids.get(worker_id)):
                    self.stalled_alive.append(f"worker {worker_id} alive with a heartbeat {float(age):.1f} s old")
            for job_id, status, worker_id in rows:
                if status != "doing" or worker_id is None:
                    if status != "doing":
                        self.runner.pop(job_id, None)
                    continue
                self.seen_running += 1
                before = self.runner.get(job_id)
                if before is not None and before != worker_id and pid_alive(self.pids.get(before)):
                    self.doubles.append(f"job {job_id}: worker {worker_id} started it while {before} lived")
                self.runner[job_id] = worker_id
        self.engine.dispose()


@contextlib.contextmanager
def monitored(direct_url: str, settings: ConstellationSettings, workers: int) -> Iterator[Monitor]:
    monitor = Monitor(direct_url, settings.home, workers)
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.stop.set()
        monitor.join(timeout=10)


def test_a_worker_killed_mid_study_is_restarted_and_the_study_delivered_once(
        supervised: tuple[ConstellationSettings, ConstellationInfo], tmp_path: Path, figures: Figures) -> None:
    settings, info = supervised
    before = count_instances(info.research)
    pids = supervise(settings.home, 1)
    studies = write_batch(tmp_path / "batch", studies=2, patients=2, instances=8, seed=31)
    SENT.extend(studies)
    with monitored(info.db_url, settings, 1) as monitor:
        storescu(info, [s.folder for s in studies])
        db = JobsDb(info.db_url)
        try:
            _wait(lambda: db.jobs(status="doing", limit=None), 60, "no job started")
        finally:
            db.close()
        os.kill(pids[0], signal.SIGKILL)  # in the middle of a study
        _wait(lambda: (read_pid(worker_files(settings.home, 0)[0]) or pids[0]) != pids[0], 15,
              "the supervisor did not restart the worker")
        _assert_delivered_once(settings, info, SENT)
        _assert_healthy(settings, 1)
    assert monitor.seen_running and not monitor.doubles, monitor.doubles
    assert not monitor.stalled_alive, monitor.stalled_alive[:5]
    supervisor_log = (settings.home / "workers" / "supervisor.log").read_text()
    assert f"pid {pids[0]}) exited with status -9" in supervisor_log
    logs = _logs(settings)
    for study in studies:
        assert study.patient_id not in logs and study.study_uid not in logs
    figures.fault("worker SIGKILLed mid-study, restarted", studies, count_instances(info.research) - before, logs)


class FreezingProxy:
    """A TCP proxy to PostgreSQL, run on its own event loop, that can freeze: while frozen it
    accepts connections and reads nothing further from anyone (bytes in flight stay in the
    kernels' buffers), as a hung server or a black-holed network does; thawed, it carries on."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.loop = asyncio.new_event_loop()
        self.open = asyncio.Event()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.open.set()
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.open.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self.open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.open.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.close()
                return
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except asyncio.CancelledError:  # closing the proxy: end quietly
            writer.close()

    def freeze(self) -> None:
        self.loop.call_soon_threadsafe(self.open.clear)

    def thaw(self) -> None:
        self.loop.call_soon_threadsafe(self.open.set)

    async def _shutdown(self) -> None:
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def _through(proxy: FreezingProxy, db_url: str) -> str:
    return make_url(db_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def test_postgres_frozen_past_the_heartbeat_window_then_back(
        supervised: tuple[ConstellationSettings, ConstellationInfo], tmp_path: Path, figures: Figures) -> None:
    settings, info = supervised
    before = count_instances(info.research)
    upstream = make_url(info.db_url)
    proxy = FreezingProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    try:
        # the workers (and the CLI) reach PostgreSQL through the proxy; Orthanc and its plugin directly
        replace(info, db_url=_through(proxy, info.db_url)).save(settings.info_path)
        supervise(settings.home, 2)
        first = write_batch(tmp_path / "first", studies=2, patients=2, instances=6, seed=41)
        late = write_batch(tmp_path / "late", studies=2, patients=2, instances=6, seed=41, first=2)
        SENT.extend(first + late)
        with monitored(info.db_url, settings, 2) as monitor:
            storescu(info, [s.folder for s in first])
            db = JobsDb(info.db_url)  # direct
            try:
                _wait(lambda: db.jobs(status="doing", limit=None), 60, "no job started")
            finally:
                db.close()
            proxy.freeze()
            frozen_at = time.monotonic()
            storescu(info, [s.folder for s in late])  # queued by the plugin while the workers are cut off
            blind = _cli(settings, "jobs", "wait", "--timeout", "2", "--poll", "0.5", timeout=60)
            assert blind.returncode not in (0, 5), blind.stdout  # never "done" while it cannot see
            time.sleep(max(0.0, 7 - (time.monotonic() - frozen_at)))  # > watchdog (3 s), > stalled_after (5 s)
            states = [worker_files(settings.home, i)[0] for i in range(2)]
            proxy.thaw()
            _assert_delivered_once(settings, info, SENT)
            _assert_healthy(settings, 2)
        assert monitor.seen_running and not monitor.doubles, monitor.doubles
        assert not monitor.stalled_alive, monitor.stalled_alive[:5]
        supervisor_log = (settings.home / "workers" / "supervisor.log").read_text()
        assert "exited with status 3" in supervisor_log  # the watchdog stopped the cut-off workers
        assert all(pid_alive(read_pid(p)) for p in states)
        logs = _logs(settings)
        assert "no heartbeat for" in logs
        for study in first + late:
            assert study.patient_id not in logs and study.study_uid not in logs
        figures.fault("PostgreSQL unreachable past the heartbeat window, then back", first + late,
                count_instances(info.research) - before, logs)
    finally:
        stop_workers(settings.home)  # before the proxy goes
        proxy.close()


def test_freezing_proxy_freezes(pg_admin_url: str) -> None:
    """The proxy itself: a query answers through it, waits while frozen, completes once thawed."""
    url = make_url(pg_admin_url)
    proxy = FreezingProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        engine = make_engine(_through(proxy, pg_admin_url))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            proxy.freeze()
            answer: list[int] = []
            thread = threading.Thread(target=lambda: answer.append(conn.execute(text("SELECT 2")).scalar()))
            thread.start()
            thread.join(1.5)
            assert thread.is_alive() and not answer
            proxy.thaw()
            thread.join(10)
            assert answer == [2]
        engine.dispose()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
            pass
    finally:
        proxy.close()
