"""Reading the re-identification key, and the access log of its use, in the SQL lookup store.

:class:`KeyAccessSql` is mixed into :class:`anonlib.store.sql.SqlStore` (as
:class:`~anonlib.store.sql_pixels.PixelReviewSql` is); it uses the store's transactions, so
errors leave as PHI-free :class:`~anonlib.errors.StoreError`. What is looked up comes from the
stored tables only: a UID is never derived again from the secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import insert, select

from anonlib.store import rules
from anonlib.store.base import AccessEntry, Original
from anonlib.store.db import upsert
from anonlib.store.sql_part import SqlPart
from anonlib.store.tables import access_log, instance, patient, study, uid

__all__ = ["KeyAccessSql"]


class KeyAccessSql(SqlPart):
    """Reverse lookups, the UID map and the access log (see
    :class:`~anonlib.store.base.LookupStore`)."""

    def original_patient(self, pseudonym: str) -> Original | None:
        """The original patient of ``pseudonym``, if any."""
        query = select(patient.c.patient_id, patient.c.issuer).where(patient.c.pseudonym == pseudonym)
        rows = self._rows("could not look up a pseudonym", patient, query)
        return Original("patient", rows[0].patient_id, rows[0].issuer) if rows else None

    def record_uids(self, pairs: Mapping[str, str]) -> None:
        """Record each (original, new) UID pair not yet recorded."""
        what = "could not record UIDs"
        self._check_writable(what)
        if not pairs:
            return
        with self._transaction(what) as conn:
            conn.execute(upsert(conn, uid).on_conflict_do_nothing(),
                         [{"original_uid": original, "new_uid": new} for original, new in pairs.items()])

    def original_uid(self, new_uid: str) -> Original | None:
        """The original UID that became ``new_uid``: a study's, an instance's or another one."""
        what = "could not look up a UID"
        found = self._rows(what, study, select(study.c.original_study_uid).where(study.c.new_study_uid == new_uid))
        if found:
            return Original("study", found[0][0])
        found = self._rows(what, uid, select(uid.c.original_uid).where(uid.c.new_uid == new_uid))
        if found:
            original = found[0][0]
            sop = self._rows(what, instance, select(instance.c.original_sop_uid)
                             .where(instance.c.original_sop_uid == original))
            return Original("instance" if sop else "uid", original)
        # instances recorded before anonlib_uid existed (no index on new_sop_uid: a scan)
        found = self._rows(what, instance, select(instance.c.original_sop_uid).where(instance.c.new_sop_uid == new_uid))
        return Original("instance", found[0][0]) if found else None

    def uid_map(self) -> list[tuple[str, str]]:
        """Every recorded (original UID, new UID) pair, once each."""
        what = "could not list the UID map"
        studies = self._rows(what, study, select(study.c.original_study_uid, study.c.new_study_uid))
        instances = self._rows(what, instance, select(instance.c.original_sop_uid, instance.c.new_sop_uid))
        others = self._rows(what, uid, select(uid.c.original_uid, uid.c.new_uid))
        return rules.merge_uid_maps(((r[0], r[1]) for r in studies), ((r[0], r[1]) for r in instances),
                                    ((r[0], r[1]) for r in others))

    def record_access(self, entry: AccessEntry) -> None:
        """Append ``entry`` to the access log."""
        what = "could not record access"
        self._check_writable(what)
        rules.check_access(entry)
        with self._transaction(what) as conn:
            conn.execute(insert(access_log).values(
                accessed_at=rules.stamped(entry.accessed_at), accessor=entry.accessor, action=entry.action,
                result=entry.result, entries=entry.entries, digest=entry.digest))

    def access_log(self, limit: int | None = None) -> list[AccessEntry]:
        """The access log, newest first."""
        t = access_log
        query = select(t.c.accessor, t.c.action, t.c.result, t.c.entries, t.c.digest, t.c.accessed_at
                       ).order_by(t.c.id.desc()).limit(limit)
        return [AccessEntry(r.accessor, r.action, r.result, r.entries, r.digest, rules.stamped(r.accessed_at))
                for r in self._rows("could not read the access log", t, query)]
