"""The procrastinate application: one per process, in the lookup store's PostgreSQL database.

:func:`make_app` builds an :class:`procrastinate.App` on an asynchronous ``PsycopgConnector``
(what the worker runs on) with anonlib's tasks registered, or with ``sync=True`` on a
``Psycopg2Connector`` for deferring from synchronous code (:func:`open_sync_app`,
:func:`sync_app`). :func:`ensure_queue_schema` creates procrastinate's schema and anonlib's job tables
once, under an advisory lock. Nothing here connects at import time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from procrastinate import App, BaseConnector, PsycopgConnector
from procrastinate import exceptions as pq_exceptions
from procrastinate import jobs as pq_jobs
from procrastinate import manager as pq_manager
from procrastinate.contrib.psycopg2 import Psycopg2Connector
from procrastinate.schema import SchemaManager
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from anonlib.errors import ConfigError, StoreError
from anonlib.jobs.heartbeat import Heartbeat
from anonlib.jobs.retry import StudyRetry
from anonlib.jobs.tables import QUEUE_SCHEMA_LOCK_KEY, metadata, upgrade
from anonlib.store.db import make_engine, store_error
from anonlib.store.pgsession import libpq_params

__all__ = [
    "QUEUE", "TASK_NAME", "StudyJobManager", "conninfo", "ensure_queue_schema", "make_app",
    "open_sync_app", "sync_app",
]

log = logging.getLogger(__name__)

TASK_NAME = "anonlib.deidentify_study"
"""The name study jobs are stored under (``procrastinate_jobs.task_name``)."""

QUEUE = "studies"
"""The procrastinate queue of study jobs."""


def conninfo(db_url: str) -> str:
    """A libpq connection string for psycopg 3 from a SQLAlchemy-style ``postgresql://`` URL
    (``postgresql+psycopg2://`` is accepted; the driver part is dropped), with the keepalives
    and timeouts of :mod:`anonlib.store.pgsession` added where the URL does not set them."""
    try:
        url = make_url(db_url)
    except (ArgumentError, ValueError):
        raise ConfigError("the job queue URL is not a valid database URL") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError("the job queue needs PostgreSQL (a postgresql:// URL)")
    parts: dict[str, object] = {"host": url.host, "port": url.port, "user": url.username,
                                "password": url.password, "dbname": url.database, **url.query}
    parts.update(libpq_params(url.query))
    return " ".join(f"{key}={_quote(value)}" for key, value in parts.items() if value is not None)


def _quote(value: object) -> str:
    """A libpq ``key=value`` value, quoted (``'...'`` with ``\\`` and ``\\'`` escaped)."""
    if isinstance(value, tuple):  # a repeated query parameter: libpq keeps the last
        value = value[-1]
    text_value = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text_value}'"


HEARTBEAT_SQL = ("UPDATE procrastinate_workers SET last_heartbeat = NOW() WHERE id = %(worker_id)s "
                 "RETURNING id")


class StudyJobManager(pq_manager.JobManager):
    """procrastinate's job manager, made safe in two places.

    * A job retried (after a transient error, or because its worker died) while a newer job for
      the same study already waits in the queue: procrastinate's retry would violate the
      queueing-lock index and leave the job in ``doing`` forever, blocking its patient's lock;
      here the job fails instead, and the waiting job does the work.
    * Heartbeats feed a :class:`~anonlib.jobs.heartbeat.Heartbeat` (``heartbeat``, set by the
      worker): each is bounded by ``heartbeat_timeout`` seconds (a query on a dead connection
      would otherwise wait forever and the worker run on without heartbeats, its jobs re-queued
      under it), a failed one is logged and left to the watchdog instead of stopping the
      worker at once, and a worker whose registration vanished is told so. The ids of the
      workers this process registered are in ``worker_ids`` (alive by definition).
    """

    def __init__(self, connector: BaseConnector) -> None:
        super().__init__(connector)
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_timeout = 10.0
        self.worker_ids: set[int] = set()

    async def register_worker(self) -> int:
        worker_id = await super().register_worker()
        self.worker_ids.add(worker_id)
        return worker_id

    async def unregister_worker(self, worker_id: int) -> None:
        await super().unregister_worker(worker_id)
        self.worker_ids.discard(worker_id)

    async def update_heartbeat(self, worker_id: int) -> None:
        sent = time.monotonic() if self.heartbeat is None else self.heartbeat.now()
        try:
            rows = await asyncio.wait_for(
                self.connector.execute_query_all_async(HEARTBEAT_SQL, worker_id=worker_id),
                timeout=self.heartbeat_timeout)
        except (TimeoutError, pq_exceptions.ConnectorException, OSError) as exc:
            log.warning("heartbeat failed (%s)", type(exc).__name__)
            return
        if self.heartbeat is None:
            return
        if not rows:
            self.heartbeat.lose("this worker's registration is gone (its heartbeat was too old)")
        else:
            self.heartbeat.beat(sent)

    async def retry_job(self, job: pq_jobs.Job, retry_at: datetime.datetime | None = None,
                        priority: int | None = None, queue: str | None = None,
                        lock: str | None = None) -> None:
        try:
            await super().retry_job(job, retry_at=retry_at, priority=priority, queue=queue, lock=lock)
        except pq_exceptions.UniqueViolation:
            log.warning("job %s not retried: a newer job for the same study is queued", job.id)
            await self.finish_job(job, status=pq_jobs.Status.FAILED, delete_job=False)


def make_app(db_url: str | None = None, *, sync: bool = False, connector: BaseConnector | None = None,
             retry: StudyRetry | None = None, max_connections: int = 4) -> App:
    """An app with :data:`TASK_NAME` registered, on ``connector`` (e.g. procrastinate's
    ``InMemoryConnector``) or on ``db_url``: an asynchronous ``PsycopgConnector`` for workers,
    or with ``sync`` a ``Psycopg2Connector`` (a plain psycopg2 pool, no background threads: the
    CLI, the catch-up thread and the Orthanc plugin defer through it). Connects only when opened."""
    from anonlib.jobs.tasks import register

    if connector is None:
        if db_url is None:
            raise ConfigError("make_app needs a database URL or a connector")
        dsn = conninfo(db_url)
        if sync:
            connector = Psycopg2Connector(dsn=dsn, minconn=1, maxconn=max(1, max_connections))
        else:
            connector = PsycopgConnector(conninfo=dsn, min_size=1, max_size=max(2, max_connections),
                                         timeout=30.0)
    app = App(connector=connector)
    app.job_manager = StudyJobManager(connector=connector)
    register(app, retry if retry is not None else StudyRetry.from_env())
    return app


def open_sync_app(db_url: str, **kwargs: Any) -> App:
    """``make_app(db_url, sync=True)``, opened; close it with ``app.close()``. Raises a
    PHI-free :class:`~anonlib.errors.StoreError` when the database cannot be reached."""
    app = make_app(db_url, sync=True, **kwargs)
    try:
        app.open()
    except pq_exceptions.ConnectorException as exc:
        raise StoreError(f"could not open the job queue ({type(exc.__cause__ or exc).__name__})") from None
    return app


@contextmanager
def sync_app(db_url: str, **kwargs: Any) -> Iterator[App]:
    """:func:`open_sync_app` as a context manager (closed on exit)."""
    app = open_sync_app(db_url, **kwargs)
    try:
        yield app
    finally:
        app.close()


def ensure_queue_schema(db_url: str) -> bool:
    """Create procrastinate's schema (if absent) and anonlib's job tables, in one transaction
    under an advisory lock, so concurrent callers are safe. True if procrastinate's schema was
    applied now. Raises :class:`~anonlib.errors.StoreError` (PHI-free) on database errors."""
    conninfo(db_url)  # the URL must be PostgreSQL
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(QUEUE_SCHEMA_LOCK_KEY)))
            present = conn.scalar(text("SELECT to_regclass('procrastinate_jobs')")) is not None
            if not present:
                # Raw DB-API cursor without parameters: the schema's '%' must not be interpolated.
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(SchemaManager.get_schema())
                finally:
                    cursor.close()
            metadata.create_all(conn)
            upgrade(conn)
        return not present
    except SQLAlchemyError as exc:
        raise store_error("could not create the job queue schema", exc) from None
    except psycopg2.Error as exc:  # from the raw cursor above
        raise StoreError(f"could not create the job queue schema ({type(exc).__name__} [{exc.pgcode}])") from None
    finally:
        engine.dispose()
