"""The lookup store: the longitudinal pseudonymization key (patients, secret, processed work).

Open one with :func:`open_store`; nothing connects until then. A plain ``sqlite:///`` URL (the
default) opens :class:`~anonlib.store.lite.SqliteStore` on the standard library's ``sqlite3``;
anything else :class:`~anonlib.store.sql.SqlStore` through SQLAlchemy, which is imported only
then (``SqlStore`` is loaded on first use of the name: start-up cost, issue 12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anonlib.settings import anonlib_home
from anonlib.store.base import (
    AccessEntry,
    DeliveryRecord,
    InstanceRecord,
    LookupStore,
    Original,
    PatientIdentity,
    PatientKey,
    PixelBox,
    PixelFindings,
    PseudonymPolicy,
    Region,
    ReviewDecision,
    StudyRecord,
)
from anonlib.store.memory import MemoryData, MemoryStore
from anonlib.store.rules import DEFAULT_POLICY
from anonlib.store.sqlite_file import render_sqlite_url, sqlite_database

if TYPE_CHECKING:
    from anonlib.store.lite import SqliteStore
    from anonlib.store.sql import SqlStore

__all__ = [
    "AccessEntry",
    "DeliveryRecord",
    "InstanceRecord",
    "LookupStore",
    "MemoryData",
    "MemoryStore",
    "Original",
    "PatientIdentity",
    "PatientKey",
    "PixelBox",
    "PixelFindings",
    "PseudonymPolicy",
    "Region",
    "ReviewDecision",
    "SqlStore",
    "SqliteStore",
    "StudyRecord",
    "default_store_url",
    "open_store",
]

DEFAULT_STORE_FILE = "lookup.sqlite3"


def default_store_url(create: bool = True) -> str:
    """``sqlite:///$ANONLIB_HOME/lookup.sqlite3``; creates ``ANONLIB_HOME`` if needed (unless
    ``create`` is false)."""
    path = (anonlib_home(create=create) / DEFAULT_STORE_FILE).resolve()
    return render_sqlite_url(str(path))


def open_store(url: str | None, policy: PseudonymPolicy = DEFAULT_POLICY, *,
               readonly: bool = False) -> LookupStore:
    """Open the lookup store at ``url`` (``postgresql://...`` or ``sqlite:///...``), or the
    default SQLite file (:func:`default_store_url`) when ``url`` is ``None``.

    ``readonly`` opens it for a dry run: nothing is created (no schema, no secret, no patient,
    no file or folder) and every write raises :class:`~anonlib.errors.StoreError`."""
    if url is None:
        url = default_store_url(create=not readonly)
    if sqlite_database(url) is not None:
        from anonlib.store.lite import SqliteStore

        return SqliteStore(url, policy, readonly=readonly)
    from anonlib.store.sql import SqlStore

    return SqlStore(url, policy, readonly=readonly)


def __getattr__(name: str) -> Any:
    """``SqlStore`` and ``SqliteStore``, imported on first use (SQLAlchemy is not imported
    until a store needs it)."""
    if name == "SqlStore":
        from anonlib.store.sql import SqlStore

        return SqlStore
    if name == "SqliteStore":
        from anonlib.store.lite import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
