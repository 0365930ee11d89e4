"""Reading the re-identification key, and the access log of its use, in the SQLite store.

:class:`KeyAccessLite` is mixed into :class:`anonlib.store.lite.SqliteStore`: the statements
:class:`~anonlib.store.sql_keys.KeyAccessSql` runs, on the standard library's ``sqlite3`` (a
file written by one is read by the other). What is looked up comes from the stored tables
only: a UID is never derived again from the secret.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from anonlib.store import rules
from anonlib.store.base import AccessEntry, Original

__all__ = ["KeyAccessLite", "sqlite_timestamp"]


def sqlite_timestamp(value: datetime) -> str:
    """A time as SQLAlchemy's SQLite DateTime type stores it (fields as given, no zone)."""
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")


class KeyAccessLite:
    """Reverse lookups, the UID map and the access log (see
    :class:`~anonlib.store.base.LookupStore`)."""

    def _transaction(self, what: str, *, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # provided by SqliteStore

    def _rows(self, what: str, table: str, query: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError  # provided by SqliteStore

    def _check_writable(self, what: str) -> None:
        raise NotImplementedError  # provided by SqliteStore

    def original_patient(self, pseudonym: str) -> Original | None:
        """The original patient of ``pseudonym``, if any."""
        rows = self._rows("could not look up a pseudonym", "anonlib_patient",
                          "SELECT patient_id, issuer FROM anonlib_patient WHERE pseudonym = ?", (pseudonym,))
        return Original("patient", rows[0][0], rows[0][1]) if rows else None

    def record_uids(self, pairs: Mapping[str, str]) -> None:
        """Record each (original, new) UID pair not yet recorded."""
        what = "could not record UIDs"
        self._check_writable(what)
        if not pairs:
            return
        with self._transaction(what) as conn:
            conn.executemany("INSERT INTO anonlib_uid (original_uid, new_uid) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             list(pairs.items()))

    def original_uid(self, new_uid: str) -> Original | None:
        """The original UID that became ``new_uid``: a study's, an instance's or another one."""
        what = "could not look up a UID"
        found = self._rows(what, "anonlib_study",
                           "SELECT original_study_uid FROM anonlib_study WHERE new_study_uid = ?", (new_uid,))
        if found:
            return Original("study", found[0][0])
        found = self._rows(what, "anonlib_uid", "SELECT original_uid FROM anonlib_uid WHERE new_uid = ?", (new_uid,))
        if found:
            original = found[0][0]
            sop = self._rows(what, "anonlib_instance",
                             "SELECT 1 FROM anonlib_instance WHERE original_sop_uid = ?", (original,))
            return Original("instance" if sop else "uid", original)
        # instances recorded before anonlib_uid existed (no index on new_sop_uid: a scan)
        found = self._rows(what, "anonlib_instance",
                           "SELECT original_sop_uid FROM anonlib_instance WHERE new_sop_uid = ?", (new_uid,))
        return Original("instance", found[0][0]) if found else None

    def uid_map(self) -> list[tuple[str, str]]:
        """Every recorded (original UID, new UID) pair, once each."""
        what = "could not list the UID map"
        studies = self._rows(what, "anonlib_study", "SELECT original_study_uid, new_study_uid FROM anonlib_study")
        instances = self._rows(what, "anonlib_instance", "SELECT original_sop_uid, new_sop_uid FROM anonlib_instance")
        others = self._rows(what, "anonlib_uid", "SELECT original_uid, new_uid FROM anonlib_uid")
        return rules.merge_uid_maps(((r[0], r[1]) for r in studies), ((r[0], r[1]) for r in instances),
                                    ((r[0], r[1]) for r in others))

    def record_access(self, entry: AccessEntry) -> None:
        """Append ``entry`` to the access log."""
        what = "could not record access"
        self._check_writable(what)
        rules.check_access(entry)
        with self._transaction(what) as conn:
            conn.execute("INSERT INTO anonlib_access_log (accessed_at, accessor, action, result, entries, digest) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (sqlite_timestamp(rules.stamped(entry.accessed_at)), entry.accessor, entry.action,
                          entry.result, entry.entries, entry.digest))

    def access_log(self, limit: int | None = None) -> list[AccessEntry]:
        """The access log, newest first."""
        rows = self._rows("could not read the access log", "anonlib_access_log",
                          "SELECT accessor, action, result, entries, digest, accessed_at FROM anonlib_access_log "
                          "ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,))
        return [AccessEntry(r[0], r[1], r[2], r[3], r[4], rules.stamped(datetime.fromisoformat(r[5])))
                for r in rows]
