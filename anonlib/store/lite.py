"""The lookup store in a SQLite file, on the standard library's ``sqlite3`` (the default store).

Same schema (:mod:`anonlib.store.sqlite_schema`), statements and behaviour as
:class:`anonlib.store.sql.SqlStore` on SQLite — both pass the same contract tests and a file
written by one is read by the other — without importing SQLAlchemy, which would cost a
one-folder run about 0.2 s of start-up (issue 12). :func:`anonlib.store.open_store` picks it
for plain ``sqlite:///`` URLs; SqlStore stays for PostgreSQL.

Writes run in ``BEGIN IMMEDIATE`` transactions, so concurrent writers (a run's workers) queue
on the busy timeout instead of failing; get-or-create is ``INSERT ... ON CONFLICT DO NOTHING``
and a read-back. Errors leave as :class:`~anonlib.errors.StoreError` naming the operation and
the driver's error class, never a key or a value (keys are PHI). ``readonly=True`` creates
nothing and opens the file with ``mode=ro`` (see :class:`~anonlib.store.sql.SqlStore`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from anonlib.errors import ConfigError, StoreError
from anonlib.store import rules
from anonlib.store.base import (
    ClosingMixin,
    DeliveryRecord,
    InstanceRecord,
    PatientIdentity,
    PatientKey,
    PixelBox,
    PixelFindings,
    PseudonymPolicy,
    Region,
    ReviewDecision,
    StudyRecord,
)
from anonlib.store.lite_keys import KeyAccessLite, sqlite_timestamp
from anonlib.store.sqlite_file import configure_connection, create_private, sqlite_database, warn_if_open
from anonlib.store.sqlite_schema import TABLES

__all__ = ["SqliteStore"]

SCHEMA_VERSION = 2  # anonlib.store.tables.SCHEMA_VERSION (a unit test keeps them equal)

_TABLE_NAMES = frozenset(name for name, _ in TABLES)
_INSTANCE_FIELDS = ("original_sop_uid", "new_sop_uid", "original_study_uid", "status", "output", "reason",
                    "sha256")
_DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryRecord))


def _error(what: str, exc: sqlite3.Error, *, connecting: bool = False) -> StoreError:
    """A PHI-free StoreError, worded as :func:`anonlib.store.db.store_error` words it: the
    driver's error class and code; its message only for a failed connection (no statement)."""
    detail = type(exc).__name__
    code = getattr(exc, "sqlite_errorname", None)
    if code:
        detail += f" [{code}]"
    if connecting:
        first_line = str(exc).strip().splitlines()[:1]
        if first_line:
            detail += f": {first_line[0]}"
    return StoreError(f"{what} ({detail})")


def _json(value: Any) -> str:
    return json.dumps(value)  # SQLAlchemy's JSON type on SQLite: json.dumps, default separators


def _boxes(text: str) -> tuple[PixelBox, ...]:
    return tuple(PixelBox(int(b["frame"]), int(b["x"]), int(b["y"]), int(b["width"]), int(b["height"]),
                          float(b["score"])) for b in json.loads(text) or ())


def _regions(text: str) -> tuple[Region, ...]:
    return tuple(Region(int(b["frame"]), int(b["x"]), int(b["y"]), int(b["width"]), int(b["height"]))
                 for b in json.loads(text) or ())


def _connect_readonly(database: str) -> sqlite3.Connection:
    """A connection that cannot write: the file opened ``mode=ro`` (``immutable`` when no
    writer is at work, so no -wal/-shm is created), or an empty in-memory database when the
    file does not exist."""
    if not database or database == ":memory:" or not Path(database).is_file():
        return sqlite3.connect(":memory:", check_same_thread=False)
    path = Path(database).resolve()
    busy = any(path.with_name(path.name + end).exists() for end in ("-wal", "-journal"))
    uri = path.as_uri() + ("?mode=ro" if busy else "?mode=ro&immutable=1")
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


class SqliteStore(KeyAccessLite, ClosingMixin):
    """:class:`~anonlib.store.base.LookupStore` in the SQLite file of a ``sqlite:///`` ``url``
    (``sqlite://`` or ``sqlite:///:memory:``: in memory). Opening creates the schema if missing
    unless ``readonly``. Raises :class:`~anonlib.errors.ConfigError` for an invalid policy or a
    URL that is not plain SQLite, :class:`~anonlib.errors.StoreError` when the file cannot be
    opened. One connection, shared by the threads of a process under a lock. Reverse lookups and
    the access log come from :class:`~anonlib.store.lite_keys.KeyAccessLite`."""

    def __init__(self, url: str, policy: PseudonymPolicy = rules.DEFAULT_POLICY, *,
                 readonly: bool = False) -> None:
        rules.validate_policy(policy)
        database = sqlite_database(url)
        if database is None:
            raise ConfigError("the lookup store URL is not a plain sqlite:/// URL")
        self.policy = policy
        self.readonly = readonly
        self._secret: bytes | None = None
        self._closed = False
        self._lock = threading.RLock()
        self._tables: frozenset[str] = _TABLE_NAMES
        try:
            if readonly:
                if database:
                    warn_if_open(database)
                self._conn = _connect_readonly(database)
                self._conn.isolation_level = None
            else:
                create_private(database)
                self._conn = sqlite3.connect(database or ":memory:", check_same_thread=False)
        except sqlite3.Error as exc:
            raise _error("could not open the lookup store", exc, connecting=True) from None
        try:
            if readonly:
                self._tables = self._existing_tables()
            else:
                configure_connection(self._conn)
                self._ensure_schema()
        except sqlite3.Error as exc:
            self._conn.close()
            raise _error("could not open the lookup store", exc) from None
        except BaseException:
            self._conn.close()
            raise

    # --- plumbing ------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        """Create the missing tables (and their indexes) and record the schema version, in one
        ``BEGIN IMMEDIATE`` transaction (processes opening a new file at once queue)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for name, statements in TABLES:
                if name not in present:
                    for statement in statements:
                        conn.execute(statement)
            conn.execute("INSERT INTO anonlib_schema_version (version) VALUES (?) ON CONFLICT DO NOTHING",
                         (SCHEMA_VERSION,))
            found = conn.execute("SELECT max(anonlib_schema_version.version) FROM anonlib_schema_version"
                                 ).fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _check_version(found)

    def _existing_tables(self) -> frozenset[str]:
        """anonlib's tables in the file; StoreError if its schema is newer than ours."""
        names = frozenset(row[0] for row in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")) & _TABLE_NAMES
        if "anonlib_schema_version" in names:
            _check_version(self._conn.execute(
                "SELECT max(anonlib_schema_version.version) FROM anonlib_schema_version").fetchone()[0])
        return names

    @contextmanager
    def _transaction(self, what: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` to write); driver errors become a StoreError
        saying ``what`` failed."""
        if self._closed:
            raise StoreError("the lookup store is closed")
        if write:
            self._check_writable(what)
        with self._lock:
            conn = self._conn
            try:
                if not self.readonly:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                if conn.in_transaction:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _error(what, exc) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    @contextmanager
    def _read(self, what: str, table: str) -> Iterator[sqlite3.Connection | None]:
        """A reading transaction, or None when ``table`` does not exist (a read-only store on
        a file anonlib never wrote to)."""
        if table not in self._tables:
            if self._closed:
                raise StoreError("the lookup store is closed")
            yield None
            return
        with self._transaction(what, write=False) as conn:
            yield conn

    def _rows(self, what: str, table: str, query: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read(what, table) as conn:
            return [] if conn is None else conn.execute(query, params).fetchall()

    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise StoreError(f"{what}: the lookup store is open read-only")

    # --- the secret and the patients -----------------------------------------------------

    def find_secret(self) -> bytes | None:
        """The project secret if it exists; never creates it (used by dry runs)."""
        if self._secret is None:
            with self._read("could not read the project secret", "anonlib_secret") as conn:
                row = None if conn is None else conn.execute(
                    "SELECT secret FROM anonlib_secret WHERE id = 1").fetchone()
            if row is None or row[0] is None:
                return None
            if len(row[0]) != rules.SECRET_BYTES:
                raise StoreError("the project secret in the lookup store is damaged")
            self._secret = bytes(row[0])
        return self._secret

    def secret(self) -> bytes:
        """The project secret (32 bytes), created once on first use and never changed."""
        if self.readonly:
            found = self.find_secret()
            if found is None:
                raise StoreError("could not create the project secret: the lookup store is open read-only")
            return found
        if self._secret is None:
            query = "SELECT secret FROM anonlib_secret WHERE id = 1"
            with self._transaction("could not read or create the project secret") as conn:
                row = conn.execute(query).fetchone()
                if row is None:
                    conn.execute("INSERT INTO anonlib_secret (id, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 (1, rules.new_secret()))
                    row = conn.execute(query).fetchone()
            value = None if row is None else row[0]
            if value is None or len(value) != rules.SECRET_BYTES:
                raise StoreError("the project secret in the lookup store is missing or damaged")
            self._secret = bytes(value)
        return self._secret

    @staticmethod
    def _select_identity(conn: sqlite3.Connection, key: PatientKey) -> PatientIdentity | None:
        row = conn.execute("SELECT pseudonym, date_shift_days FROM anonlib_patient "
                           "WHERE patient_id = ? AND issuer = ?", (key.patient_id, key.issuer)).fetchone()
        return None if row is None else PatientIdentity(row[0], row[1])

    def patient(self, key: PatientKey) -> PatientIdentity:
        """Get or create the identity of ``key`` (race-free across processes)."""
        rules.check_key(key)
        if self.readonly:
            existing = self.find_patient(key)
            if existing is None:
                raise StoreError("could not create patient identity: the lookup store is open read-only")
            return existing
        with self._transaction("could not create patient identity") as conn:
            found = self._select_identity(conn, key)
            attempts = 0
            while found is None and attempts < rules.MAX_PSEUDONYM_ATTEMPTS:
                attempts += 1
                # Conflicts on the key (a concurrent creator won) or on the pseudonym (taken:
                # try another) both do nothing; the read-back tells them apart.
                conn.execute("INSERT INTO anonlib_patient (patient_id, issuer, pseudonym, date_shift_days) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                             (key.patient_id, key.issuer, rules.new_pseudonym(self.policy),
                              rules.new_date_shift(self.policy)))
                found = self._select_identity(conn, key)
        if found is None:
            raise StoreError("could not create patient identity: no free pseudonym found")
        return found

    def find_patient(self, key: PatientKey) -> PatientIdentity | None:
        """The identity of ``key`` if it exists; never creates one."""
        rules.check_key(key)
        with self._read("could not look up patient identity", "anonlib_patient") as conn:
            return None if conn is None else self._select_identity(conn, key)

    def patients(self) -> Iterator[tuple[PatientKey, PatientIdentity]]:
        """Every patient, in order of creation."""
        rows = self._rows("could not list patients", "anonlib_patient",
                          "SELECT patient_id, issuer, pseudonym, date_shift_days FROM anonlib_patient ORDER BY id")
        return iter([(PatientKey(r[0], r[1]), PatientIdentity(r[2], r[3])) for r in rows])

    # --- studies, instances, deliveries --------------------------------------------------

    def record_study(self, record: StudyRecord) -> None:
        """Insert or update the study keyed by ``original_study_uid``."""
        self._check_writable("could not record study")
        rules.check_study(record)
        with self._transaction("could not record study") as conn:
            conn.execute(
                "INSERT INTO anonlib_study (original_study_uid, original_accession, pseudonym, new_study_uid, "
                "shifted_study_date) VALUES (?, ?, ?, ?, ?) ON CONFLICT (original_study_uid) DO UPDATE SET "
                "original_accession = excluded.original_accession, pseudonym = excluded.pseudonym, "
                "new_study_uid = excluded.new_study_uid, shifted_study_date = excluded.shifted_study_date, "
                "last_processed_at = CURRENT_TIMESTAMP",
                (record.original_study_uid, record.original_accession, record.pseudonym, record.new_study_uid,
                 record.shifted_study_date))

    def study(self, original_study_uid: str) -> StudyRecord | None:
        """The record of one processed study, if any."""
        rows = self._rows("could not read study record", "anonlib_study",
                          "SELECT original_study_uid, original_accession, pseudonym, new_study_uid, "
                          "shifted_study_date FROM anonlib_study WHERE original_study_uid = ?",
                          (original_study_uid,))
        return StudyRecord(*rows[0]) if rows else None

    def record_instance(self, record: InstanceRecord) -> None:
        """Insert or update the instance keyed by ``original_sop_uid``."""
        self.record_instances([record])

    def record_instances(self, records: Sequence[InstanceRecord]) -> None:
        """Insert or update many instances in one transaction (a run records them in batches)."""
        self._check_writable("could not record instance")
        if not records:
            return
        for record in records:
            rules.check_instance(record)
        updates = ", ".join(f"{name} = excluded.{name}" for name in _INSTANCE_FIELDS[1:])
        with self._transaction("could not record instance") as conn:
            conn.executemany(
                f"INSERT INTO anonlib_instance ({', '.join(_INSTANCE_FIELDS)}) VALUES "
                f"({', '.join('?' * len(_INSTANCE_FIELDS))}) ON CONFLICT (original_sop_uid) DO UPDATE SET "
                f"{updates}, processed_at = CURRENT_TIMESTAMP",
                [tuple(getattr(record, name) for name in _INSTANCE_FIELDS) for record in records])

    def instance(self, original_sop_uid: str) -> InstanceRecord | None:
        """The record of one processed instance, if any."""
        rows = self._rows("could not read instance record", "anonlib_instance",
                          f"SELECT {', '.join(_INSTANCE_FIELDS)} FROM anonlib_instance WHERE original_sop_uid = ?",
                          (original_sop_uid,))
        return InstanceRecord(*rows[0]) if rows else None

    def instances(self) -> Iterator[InstanceRecord]:
        """Every processed instance, ordered by original SOP Instance UID (code points)."""
        rows = self._rows("could not list instance records", "anonlib_instance",
                          f"SELECT {', '.join(_INSTANCE_FIELDS)} FROM anonlib_instance")
        return iter(sorted((InstanceRecord(*row) for row in rows), key=lambda r: r.original_sop_uid))

    def record_delivery(self, record: DeliveryRecord) -> None:
        """Insert or update the delivery keyed by (node, orthanc_study_id)."""
        self._check_writable("could not record delivery")
        if record.status not in ("done", "held") or not record.node or not record.orthanc_study_id:
            raise StoreError("delivery record needs a node, a study ID and status done or held")
        values = asdict(record)
        values["runs"] = 1
        updates = ", ".join(f"{k} = excluded.{k}" for k in values if k not in ("node", "orthanc_study_id", "runs"))
        with self._transaction("could not record delivery") as conn:
            conn.execute(
                f"INSERT INTO anonlib_delivery ({', '.join(values)}) VALUES ({', '.join('?' * len(values))}) "
                f"ON CONFLICT (node, orthanc_study_id) DO UPDATE SET {updates}, "
                "runs = (anonlib_delivery.runs + 1), delivered_at = CURRENT_TIMESTAMP",
                tuple(values.values()))

    def deliveries(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """The deliveries from ``node`` (all, or those of ``study_ids``), keyed by Orthanc study ID."""
        query = f"SELECT {', '.join(_DELIVERY_FIELDS)} FROM anonlib_delivery WHERE node = ?"
        params: list[Any] = [node]
        if study_ids is not None:
            ids = list(study_ids)
            query += f" AND orthanc_study_id IN ({', '.join('?' * len(ids))})" if ids else " AND 0"
            params += ids
        rows = self._rows("could not list deliveries", "anonlib_delivery", query, params)
        return {record.orthanc_study_id: record for record in (DeliveryRecord(*row) for row in rows)}

    # --- pixel findings and review decisions ---------------------------------------------

    def record_pixel_findings(self, findings: PixelFindings) -> None:
        """Insert or replace the pixel findings of ``findings.original_sop_uid``."""
        what = "could not record pixel findings"
        self._check_writable(what)
        rules.check_findings(findings)
        with self._transaction(what) as conn:
            conn.execute(
                "INSERT INTO anonlib_pixel_finding (original_sop_uid, new_sop_uid, outcome, reason, boxes) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (original_sop_uid) DO UPDATE SET "
                "new_sop_uid = excluded.new_sop_uid, outcome = excluded.outcome, reason = excluded.reason, "
                "boxes = excluded.boxes, found_at = CURRENT_TIMESTAMP",
                (findings.original_sop_uid, findings.new_sop_uid, findings.outcome, findings.reason,
                 _json([asdict(box) for box in findings.boxes])))

    def discard_pixel_findings(self, *original_sop_uids: str) -> None:
        """Forget the pixel findings of these instances, in one transaction."""
        what = "could not discard pixel findings"
        self._check_writable(what)
        if not original_sop_uids:
            return
        with self._transaction(what) as conn:
            conn.execute(f"DELETE FROM anonlib_pixel_finding WHERE original_sop_uid IN "
                         f"({', '.join('?' * len(original_sop_uids))})", original_sop_uids)

    def pixel_findings(self, outcome: str | None = None) -> list[PixelFindings]:
        """Every instance's pixel findings (or those with ``outcome``), by original SOP UID."""
        query = "SELECT original_sop_uid, new_sop_uid, outcome, reason, boxes FROM anonlib_pixel_finding"
        params: tuple[str, ...] = ()
        if outcome is not None:
            query, params = query + " WHERE outcome = ?", (outcome,)
        rows = self._rows("could not list pixel findings", "anonlib_pixel_finding", query, params)
        found = [PixelFindings(r[0], r[1], r[2], r[3], _boxes(r[4])) for r in rows]
        return sorted(found, key=lambda f: f.original_sop_uid)

    def record_review(self, decision: ReviewDecision) -> None:
        """Insert or replace the decision about ``decision.original_sop_uid`` (the latest wins)."""
        what = "could not record review decision"
        self._check_writable(what)
        rules.check_review(decision)
        with self._transaction(what) as conn:
            conn.execute(
                "INSERT INTO anonlib_review (original_sop_uid, decision, regions, reviewer, decided_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (original_sop_uid) DO UPDATE SET "
                "decision = excluded.decision, regions = excluded.regions, reviewer = excluded.reviewer, "
                "decided_at = excluded.decided_at",
                (decision.original_sop_uid, decision.decision,
                 _json([asdict(region) for region in decision.regions]), decision.reviewer,
                 sqlite_timestamp(rules.stamped(decision.decided_at))))

    def review(self, original_sop_uid: str) -> ReviewDecision | None:
        """The decision about one instance, if any."""
        found = self._reviews(original_sop_uid)
        return found[0] if found else None

    def reviews(self) -> list[ReviewDecision]:
        """Every decision, by original SOP Instance UID."""
        return sorted(self._reviews(None), key=lambda d: d.original_sop_uid)

    def _reviews(self, original_sop_uid: str | None) -> list[ReviewDecision]:
        query = "SELECT original_sop_uid, decision, regions, reviewer, decided_at FROM anonlib_review"
        params: tuple[str, ...] = ()
        if original_sop_uid is not None:
            query, params = query + " WHERE original_sop_uid = ?", (original_sop_uid,)
        rows = self._rows("could not read review decisions", "anonlib_review", query, params)
        return [ReviewDecision(r[0], r[1], _regions(r[2]), r[3], rules.stamped(datetime.fromisoformat(r[4])))
                for r in rows]

    def close(self) -> None:
        """Release the connection; later calls raise :class:`StoreError`."""
        self._closed = True
        with self._lock:
            self._conn.close()


def _check_version(found: int | None) -> None:
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(f"the lookup store has schema version {found}; this anonlib knows only up to "
                         f"{SCHEMA_VERSION}: upgrade anonlib")
