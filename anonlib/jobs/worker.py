"""``anonlib worker``: procrastinate's worker plus the catch-up loop, in one process.

At start the worker makes sure the queue's schema exists, then runs two things side by side:
procrastinate's worker (study jobs, ``concurrency`` at a time, in threads) and a loop that every
``interval`` seconds follows each source node's ``/changes`` feed and every ``reconcile_interval``
seconds (and at start) reconciles every study; every heartbeat interval it also puts back in the
queue the jobs of workers that died (stalled: no heartbeat for ``stalled_after`` seconds, never
one of this process's own). Any number of workers may run on any number of machines that share the database. SIGTERM or
SIGINT stops it cleanly: no new job is taken, running jobs finish, then the process exits.

Finished jobs older than ``retention`` are deleted once an hour (:meth:`JobsDb.prune_finished
<anonlib.jobs.db.JobsDb.prune_finished>`: failures nobody dealt with stay). A worker that cannot
heartbeat exits non-zero (:mod:`anonlib.jobs.heartbeat`), and so does one whose procrastinate worker stopped by itself (a database error): a supervisor restarts it.
With ``ANONLIB_WORKER_STATE`` set (the constellation's supervisor does), the worker writes its
PID and procrastinate worker id to that file, so ``constellation status`` can show its
heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from procrastinate import App
from procrastinate import exceptions as pq_exceptions

from anonlib.constellation.info import ConstellationInfo
from anonlib.errors import AnonlibError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import QUEUE, TASK_NAME, StudyJobManager, make_app
from anonlib.jobs.catchup import CatchUp
from anonlib.jobs.db import JobsDb
from anonlib.jobs.enqueue import open_study_queue
from anonlib.jobs.heartbeat import Heartbeat, HeartbeatTiming, Watchdog
from anonlib.jobs.intake import HttpSource
from anonlib.jobs.resume import NodeWatch

__all__ = ["WorkerSettings", "WorkerStopped", "PhiSafeLogFilter", "run_worker", "source_nodes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 1
    interval: float = 5.0  # seconds between two reads of the changes feeds
    # seconds between two polls for jobs: a new job wakes the worker at once (LISTEN/NOTIFY), but a
    # job queued for later (a study not stable yet) or one whose patient's lock was just freed is
    # seen only by polling
    fetch_interval: float = 0.5
    reconcile_interval: float = 300.0  # seconds between two reconcile passes
    timing: HeartbeatTiming = field(default_factory=HeartbeatTiming)  # heartbeat, watchdog, stalled
    burst: bool = False  # stop when the queue is empty (tests)
    state_file: Path | None = None  # where to write {"pid", "worker_id"} once registered
    retention: float = 7 * 86400.0  # finished jobs older than this are deleted (0: never)
    prune_interval: float = 3600.0  # seconds between two prunes

    @property
    def stalled_after(self) -> float:
        """A worker silent for this long is dead; its jobs are put back in the queue."""
        return self.timing.stalled_after


class WorkerStopped(AnonlibError):
    """procrastinate's worker stopped without being asked (e.g. the database went away)."""


class PhiSafeLogFilter(logging.Filter):
    """procrastinate logs a failing job's traceback; keep it only for anonlib's own (PHI-free)
    errors, and only the class name of anything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not isinstance(record.exc_info[1], AnonlibError):
            record.msg = f"{record.msg} [{type(record.exc_info[1]).__name__}; details withheld]"
            record.exc_info = None
            record.exc_text = None
        return True


def source_nodes(info: ConstellationInfo) -> list[str]:
    """The nodes studies are taken from (role ``intake``)."""
    return [name for name, node in info.nodes.items() if node.role == "intake"]


PRUNE_SQL = ("DELETE FROM procrastinate_workers WHERE last_heartbeat < NOW() - make_interval(secs => %(seconds)s) "
             "AND NOT id = ANY(%(own)s::bigint[])")


async def _recover_stalled(app: App, stalled_after: float) -> int:
    """Put the jobs of dead workers back in the queue (their heartbeat is ``stalled_after``
    seconds old: the watchdog stopped them long before), then forget those workers."""
    manager = app.job_manager
    own = manager.worker_ids if isinstance(manager, StudyJobManager) else set()
    recovered = 0
    for job in await manager.get_stalled_jobs(task_name=TASK_NAME, seconds_since_heartbeat=stalled_after):
        if job.worker_id is not None and job.worker_id in own:
            continue  # this very process runs it: it is alive
        with contextlib.suppress(pq_exceptions.ConnectorException):  # another worker was faster
            await manager.retry_job(job)
            recovered += 1
    await app.connector.execute_query_async(PRUNE_SQL, seconds=float(stalled_after), own=sorted(own))
    return recovered


def _write_state(path: Path, worker_ids: set[int]) -> None:
    """``{"pid": ..., "worker_id": ...}`` for ``constellation status`` (written atomically)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "worker_id": min(worker_ids) if worker_ids else None}))
    os.replace(tmp, path)


async def _keep_beating(manager: StudyJobManager, interval: float, done: asyncio.Event) -> None:
    """Heartbeat every ``interval`` seconds until ``done``, also while a stopping worker lets
    its running jobs finish (procrastinate's own heartbeat stops first)."""
    while not done.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=interval)
        for worker_id in list(manager.worker_ids):
            await manager.update_heartbeat(worker_id)


async def _report_state(manager: StudyJobManager, path: Path, stop: asyncio.Event) -> None:
    written: set[int] = set()
    while not stop.is_set():
        if manager.worker_ids != written:
            written = set(manager.worker_ids)
            with contextlib.suppress(OSError):
                _write_state(path, written)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


async def _stalled_loop(app: App, settings: WorkerSettings, stop: asyncio.Event) -> None:
    """Every heartbeat interval: put the jobs of dead workers back in the queue."""
    while not stop.is_set():
        try:
            if recovered := await _recover_stalled(app, settings.stalled_after):
                log.warning("%d jobs of stalled workers were put back in the queue", recovered)
        except pq_exceptions.ConnectorException as exc:
            log.warning("stalled jobs not checked (%s)", type(exc.__cause__ or exc).__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.timing.interval)


async def _catchup_loop(catchup: CatchUp, app: App, settings: WorkerSettings, stop: asyncio.Event) -> None:
    next_reconcile = next_prune = 0.0
    while not stop.is_set():
        started = time.monotonic()
        reconcile = started >= next_reconcile
        try:
            report = await asyncio.to_thread(catchup.run_once, reconcile=reconcile)
            if report.queued or report.resumed:
                log.info("catch-up queued %d studies (%d considered), resumed %d failed jobs%s", report.queued,
                         report.considered, report.resumed,
                         f" (back: {', '.join(report.reconnected)})" if report.reconnected else "")
            if reconcile:
                next_reconcile = started + settings.reconcile_interval
            if settings.retention > 0 and started >= next_prune:
                next_prune = started + settings.prune_interval
                if pruned := await asyncio.to_thread(catchup.db.prune_finished, settings.retention):
                    log.info("deleted %d jobs finished more than %g h ago", pruned, settings.retention / 3600)
        except AnonlibError as exc:
            log.warning("catch-up: %s", exc)
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; never log data
            log.warning("catch-up failed (%s)", type(exc).__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.interval)


async def run_worker(info: ConstellationInfo, settings: WorkerSettings | None = None,
                     runtime: runtime_module.Runtime | None = None, *, install_signals: bool = True) -> None:
    """Run until SIGTERM/SIGINT (or, with ``settings.burst``, until the queue is empty)."""
    settings = settings or WorkerSettings()
    logging.getLogger("procrastinate").addFilter(PhiSafeLogFilter())
    for name in ("procrastinate.worker", "procrastinate.job_context"):
        logging.getLogger(name).addFilter(PhiSafeLogFilter())
    queue = await asyncio.to_thread(open_study_queue, info.db_url)  # schema ensured, secret read
    rt = runtime or runtime_module.Runtime.from_info(info)
    previous = runtime_module.install(rt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    db = JobsDb(info.db_url)
    sources = {name: HttpSource(info.node(name)) for name in source_nodes(info)}
    watchdog: Watchdog | None = None
    try:
        catchup = CatchUp(db, queue, sources, watch=NodeWatch(info.nodes))
        app = make_app(info.db_url, max_connections=settings.concurrency + 3)
        timing = settings.timing
        heartbeat = Heartbeat()
        manager = app.job_manager
        assert isinstance(manager, StudyJobManager)
        manager.heartbeat, manager.heartbeat_timeout = heartbeat, timing.interval
        watchdog = Watchdog(heartbeat, timing.watchdog)
        watchdog.start()
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                queues=[QUEUE], concurrency=settings.concurrency, wait=not settings.burst,
                install_signal_handlers=False, delete_jobs="never",
                update_heartbeat_interval=timing.interval, stalled_worker_timeout=timing.stalled_after,
                fetch_job_polling_interval=settings.fetch_interval))
            side = asyncio.create_task(_catchup_loop(catchup, app, settings, stop))
            sides = [side, asyncio.create_task(_stalled_loop(app, settings, stop))]
            if settings.state_file is not None:
                sides.append(asyncio.create_task(_report_state(manager, settings.state_file, stop)))
            worker_done = asyncio.Event()
            worker.add_done_callback(lambda _: worker_done.set())
            beating = asyncio.create_task(_keep_beating(manager, timing.interval, worker_done))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            asked = stop.is_set()
            stop.set()
            worker.cancel()  # procrastinate: stop fetching, let running jobs finish
            await asyncio.gather(worker, *sides, beating, stopper, return_exceptions=True)
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                log.error("the job worker stopped (%s)", type(worker.exception()).__name__)
                raise WorkerStopped("the job worker stopped on an error (database unreachable?)") from None
            if not asked and not settings.burst:
                raise WorkerStopped("the job worker stopped by itself (heartbeat or database failure)")
    finally:
        if watchdog is not None:
            watchdog.stop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        queue.app.close()
        for source in sources.values():
            source.close()
        db.close()
        runtime_module.install(previous)
        if runtime is None:
            rt.close()
