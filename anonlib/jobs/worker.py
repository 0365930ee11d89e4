"""``anonlib worker``: procrastinate's worker plus the catch-up loop, in one process.

At start the worker makes sure the queue's schema exists, then runs two things side by side:
procrastinate's worker (study jobs, ``concurrency`` at a time, in threads) and a loop that every
``interval`` seconds follows each source node's ``/changes`` feed, every ``reconcile_interval``
seconds (and at start) reconciles every study, and puts back in the queue the jobs of workers
that died (stalled: no heartbeat). Any number of workers may run on any number of machines that
share the database. SIGTERM or SIGINT stops it cleanly: no new job is taken, running jobs finish,
then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

from procrastinate import App
from procrastinate import exceptions as pq_exceptions

from anonlib.constellation.info import ConstellationInfo
from anonlib.errors import AnonlibError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import QUEUE, TASK_NAME, make_app
from anonlib.jobs.catchup import CatchUp
from anonlib.jobs.db import JobsDb
from anonlib.jobs.enqueue import open_study_queue
from anonlib.jobs.intake import HttpSource

__all__ = ["WorkerSettings", "PhiSafeLogFilter", "run_worker", "source_nodes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 1
    interval: float = 5.0  # seconds between two reads of the changes feeds
    reconcile_interval: float = 300.0  # seconds between two reconcile passes
    stalled_after: float = 60.0  # a worker silent for this long is dead; its jobs are retried
    burst: bool = False  # stop when the queue is empty (tests)


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


async def _recover_stalled(app: App, stalled_after: float) -> int:
    """Put the jobs of dead workers back in the queue."""
    recovered = 0
    for job in await app.job_manager.get_stalled_jobs(task_name=TASK_NAME,
                                                       seconds_since_heartbeat=stalled_after):
        with contextlib.suppress(pq_exceptions.ConnectorException):  # another worker was faster
            await app.job_manager.retry_job(job)
            recovered += 1
    return recovered


async def _catchup_loop(catchup: CatchUp, app: App, settings: WorkerSettings, stop: asyncio.Event) -> None:
    next_reconcile = 0.0
    while not stop.is_set():
        started = time.monotonic()
        reconcile = started >= next_reconcile
        try:
            report = await asyncio.to_thread(catchup.run_once, reconcile=reconcile)
            if report.queued:
                log.info("catch-up queued %d studies (%d considered)", report.queued, report.considered)
            if reconcile:
                next_reconcile = started + settings.reconcile_interval
            if await _recover_stalled(app, settings.stalled_after):
                log.warning("jobs of a stalled worker were put back in the queue")
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
    try:
        catchup = CatchUp(db, queue, sources)
        app = make_app(info.db_url, max_connections=settings.concurrency + 3)
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                queues=[QUEUE], concurrency=settings.concurrency, wait=not settings.burst,
                install_signal_handlers=False, delete_jobs="never",
                stalled_worker_timeout=settings.stalled_after))
            side = asyncio.create_task(_catchup_loop(catchup, app, settings, stop))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            worker.cancel()  # procrastinate: stop fetching, let running jobs finish
            await asyncio.gather(worker, side, stopper, return_exceptions=True)
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]
    finally:
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
