"""The lookup store: the longitudinal pseudonymization key (patients, secret, processed work).

Open one with :func:`open_store`; nothing connects until then.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from anonlib.settings import anonlib_home
from anonlib.store.base import (
    DeliveryRecord,
    InstanceRecord,
    LookupStore,
    PatientIdentity,
    PatientKey,
    PseudonymPolicy,
    StudyRecord,
)
from anonlib.store.memory import MemoryData, MemoryStore
from anonlib.store.rules import DEFAULT_POLICY
from anonlib.store.sql import SqlStore

__all__ = [
    "DeliveryRecord",
    "InstanceRecord",
    "LookupStore",
    "MemoryData",
    "MemoryStore",
    "PatientIdentity",
    "PatientKey",
    "PseudonymPolicy",
    "SqlStore",
    "StudyRecord",
    "default_store_url",
    "open_store",
]

DEFAULT_STORE_FILE = "lookup.sqlite3"


def default_store_url() -> str:
    """``sqlite:///$ANONLIB_HOME/lookup.sqlite3``; creates ``ANONLIB_HOME`` if needed."""
    path = (anonlib_home(create=True) / DEFAULT_STORE_FILE).resolve()
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def open_store(url: str | None, policy: PseudonymPolicy = DEFAULT_POLICY) -> LookupStore:
    """Open the lookup store at ``url`` (``postgresql://...`` or ``sqlite:///...``), or the
    default SQLite file (:func:`default_store_url`) when ``url`` is ``None``."""
    return SqlStore(url if url is not None else default_store_url(), policy)
