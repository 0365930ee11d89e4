"""Database plumbing for :class:`anonlib.store.sql.SqlStore`: engines, schema creation,
dialect-specific upserts and PHI-free error translation.

Nothing here connects until a function is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Engine, Select, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from anonlib.errors import ConfigError, StoreError
from anonlib.store.base import DeliveryRecord
from anonlib.store.pgsession import libpq_params
from anonlib.store.sqlite_file import SQLITE_BUSY_TIMEOUT_MS, configure_connection, create_private
from anonlib.store.tables import SCHEMA_LOCK_KEY, SCHEMA_VERSION, delivery, metadata, schema_version

__all__ = [
    "DEFAULT_PG_DRIVER",
    "SQLITE_BUSY_TIMEOUT_MS",
    "check_schema_version",
    "delivery_query",
    "delivery_records",
    "ensure_schema",
    "make_engine",
    "store_error",
    "upsert",
]

DEFAULT_PG_DRIVER = "postgresql+psycopg2"
"""The driver used for bare ``postgresql://`` URLs (the one anonlib depends on)."""

Insert = postgresql.Insert | sqlite.Insert


def make_engine(url: str) -> Engine:
    """An engine for a ``postgresql://`` or ``sqlite:///`` URL (no connection is made yet).

    Raises :class:`ConfigError` for anything else. Messages never repeat the URL (it may
    carry a password).
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise ConfigError("the lookup store URL is not a valid database URL") from None
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; anonlib depends on psycopg2.
        parsed = parsed.set(drivername=DEFAULT_PG_DRIVER)
    if backend not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"the lookup store URL must start with postgresql:// or sqlite:///, not {backend}://"
        )
    options: dict[str, Any] = {"hide_parameters": True}
    if backend == "postgresql":
        options["pool_pre_ping"] = True
        options["connect_args"] = libpq_params(parsed.query)  # keepalives, timeouts
    try:
        engine = create_engine(parsed, **options)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"cannot use the lookup store URL ({type(exc).__name__}: driver missing?)"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and enforced foreign keys on every connection
    (:func:`~anonlib.store.sqlite_file.configure_connection`); every transaction starts with
    ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing."""

    database = engine.url.database

    @event.listens_for(engine, "do_connect")
    def _before_connect(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        create_private(database)  # only engines that connect: a read-only open never does

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_connection(dbapi_connection)  # SQLAlchemy emits BEGIN itself (below)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_schema(engine: Engine) -> None:
    """Create missing tables and record the schema version, serialized between processes
    (PostgreSQL advisory transaction lock; SQLite ``BEGIN IMMEDIATE``).

    Raises :class:`StoreError` if the database holds a newer schema than this code knows.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
        metadata.create_all(conn)
        conn.execute(
            upsert(conn, schema_version).values(version=SCHEMA_VERSION).on_conflict_do_nothing()
        )
        found = conn.scalar(select(func.max(schema_version.c.version)))
    check_schema_version(found)


def check_schema_version(found: int | None) -> None:
    """Raise :class:`StoreError` if the database's schema version ``found`` is newer than ours."""
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(f"the lookup store has schema version {found}; this anonlib knows only up to "
                         f"{SCHEMA_VERSION}: upgrade anonlib")


def delivery_query(node: str, study_ids: Sequence[str] | None = None) -> Select[Any]:
    """The delivery records of ``node`` (all, or those of ``study_ids``), in
    :class:`~anonlib.store.base.DeliveryRecord` field order."""
    query = select(*(delivery.c[f.name] for f in fields(DeliveryRecord))).where(delivery.c.node == node)
    if study_ids is not None:
        query = query.where(delivery.c.orthanc_study_id.in_(list(study_ids)))
    return query


def delivery_records(rows: Iterable[Any]) -> dict[str, DeliveryRecord]:
    """Rows of :func:`delivery_query` as records, by Orthanc study ID."""
    return {row.orthanc_study_id: DeliveryRecord(*row) for row in rows}


def upsert(conn: Connection, table: Table) -> Insert:
    """The dialect's INSERT, which offers ``on_conflict_do_nothing``/``_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def store_error(what: str, exc: SQLAlchemyError) -> StoreError:
    """A :class:`StoreError` saying ``what`` failed, with a PHI-free summary of ``exc``.

    Raise it ``from None``: driver messages can quote the failing row or statement with its
    values (PostgreSQL ``DETAIL: Failing row contains ...``, psycopg2's client-side
    parameters), so neither the message nor the chained exception may travel. Connection
    failures (no statement involved) keep the driver's first line, which operators need.
    """
    orig = getattr(exc, "orig", None)
    detail = type(orig if orig is not None else exc).__name__
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlite_errorname", None)
    if code:
        detail += f" [{code}]"
    if isinstance(exc, DBAPIError) and exc.statement is None and orig is not None:
        first_line = str(orig).strip().splitlines()[:1]
        if first_line:
            detail += f": {first_line[0]}"
    return StoreError(f"{what} ({detail})")
