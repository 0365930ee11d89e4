"""Re-identification for authorised users: what a pseudonym or a de-identified UID stood for.

The lookup store is the key. A pseudonym is random (never derived from the PatientID) and a new
UID is a keyed one-way digest of the original, so neither can be turned back without the
store's tables: :func:`reidentify` reads the original from them (``anonlib_patient``;
``anonlib_study``, ``anonlib_instance`` and ``anonlib_uid``, which holds every UID the engine
replaced), never from the secret.

Every lookup is appended to the store's access log before its answer is returned — who, when,
what kind was found, and a digest of the queried value keyed by the project secret (an auditor
holding the store can tell whether a given value was looked up; the log alone reveals nothing).
If the log cannot be written, no answer is given. Nothing here writes to a logger.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from anonlib.errors import ConfigError
from anonlib.store import AccessEntry, LookupStore, Original, default_store_url, open_store
from anonlib.store.sqlite_file import sqlite_database

__all__ = ["ACCESSOR_ENV", "SUBSTITUTE_PREFIX", "access_rows", "accessor", "open_key_store", "reidentify", "value_digest"]

ACCESSOR_ENV = "ANONLIB_USER"
"""Names who uses the key when no ``--user`` is given (else the operating-system user)."""

SUBSTITUTE_PREFIX = "~"
"""A patient key starting so stands for an instance without PatientID (``~study:<UID>``, see
:mod:`anonlib.engine.subject`): its original had no PatientID to give back."""

_DIGEST_LABEL = b"anonlib access log\x00"


def accessor(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Who is using the key: ``explicit`` (``--user``), else ``$ANONLIB_USER``, else the
    operating-system user (``unknown`` when none can be found)."""
    env = os.environ if env is None else env
    for candidate in (explicit, env.get(ACCESSOR_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def value_digest(secret: bytes | None, value: str) -> str:
    """16 hex digits of HMAC-SHA256 of ``value`` under the project ``secret`` ("" without a
    secret): the same value always gives the same digest in one store, and a guess cannot be
    checked against the log without the secret."""
    if secret is None:
        return ""
    return hmac.new(secret, _DIGEST_LABEL + value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def open_key_store(url: str | None) -> LookupStore:
    """Open the lookup store for re-identification (writable: the access log is appended to).
    An SQLite store that does not exist is a :class:`ConfigError` instead of a new, empty one:
    without the store that de-identified the data nothing can be looked up."""
    target = default_store_url(create=False) if url is None else url
    database = sqlite_database(target)
    if database is not None and (not database or database == ":memory:" or not Path(database).is_file()):
        raise ConfigError(f"no lookup store at {database or 'an in-memory database'}: re-identification needs "
                          "the store that de-identified the data (--db URL)")
    return open_store(target)


def reidentify(store: LookupStore, value: str, who: str) -> Original | None:
    """What ``value`` (a patient pseudonym, or a de-identified UID) stood for, or None; the lookup is recorded in the access log first (``who``, the kind found or
    ``not found``, the keyed digest). Raises :class:`~anonlib.errors.StoreError` when the
    store cannot be read or the log cannot be written (then nothing is returned)."""
    query = value.strip()
    found = (store.original_patient(query) or store.original_uid(query)) if query else None
    store.record_access(AccessEntry(who, "lookup", found.kind if found else "not found", int(found is not None),
                                    value_digest(store.find_secret(), query)))
    return found


def access_rows(entries: list[AccessEntry]) -> list[dict[str, str]]:
    """The access log as table rows (``when`` in UTC to the second): what the CLI and the panel
    show. There is no value in them to show."""
    return [{"when": e.accessed_at.strftime("%Y-%m-%d %H:%M:%S UTC") if e.accessed_at else "",
             "who": e.accessor, "action": e.action, "result": e.result, "entries": str(e.entries),
             "digest": e.digest} for e in entries]
