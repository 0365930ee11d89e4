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
    PixelBox,
    PixelFindings,
    PseudonymPolicy,
    Region,
    ReviewDecision,
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
    "PixelBox",
    "PixelFindings",
    "PseudonymPolicy",
    "Region",
    "ReviewDecision",
    "SqlStore",
    "StudyRecord",
    "default_store_url",
    "open_store",
]

DEFAULT_STORE_FILE = "lookup.sqlite3"


def default_store_url(create: bool = True) -> str:
    """``sqlite:///$ANONLIB_HOME/lookup.sqlite3``; creates ``ANONLIB_HOME`` if needed (unless
    ``create`` is false)."""
    path = (anonlib_home(create=create) / DEFAULT_STORE_FILE).resolve()
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def open_store(url: str | None, policy: PseudonymPolicy = DEFAULT_POLICY, *,
               readonly: bool = False) -> LookupStore:
    """Open the lookup store at ``url`` (``postgresql://...`` or ``sqlite:///...``), or the
    default SQLite file (:func:`default_store_url`) when ``url`` is ``None``.

    ``readonly`` opens it for a dry run: nothing is created (no schema, no secret, no patient,
    no file or folder) and every write raises :class:`~anonlib.errors.StoreError`."""
    if url is None:
        url = default_store_url(create=not readonly)
    return SqlStore(url, policy, readonly=readonly)
