"""The lookup store on PostgreSQL or SQLite, through SQLAlchemy Core.

Get-or-create is race-free across processes: a missing row is inserted with
``INSERT ... ON CONFLICT DO NOTHING`` and then read back, so whoever inserts first wins and every
caller returns the winner's row. Errors leave as :class:`~anonlib.errors.StoreError` whose
messages name the operation, never a key (keys are PHI).

``readonly=True`` (dry runs such as the preview) creates nothing: no schema, no secret, no
patient, and no SQLite file; a database without anonlib's tables reads as empty. Every write
raises :class:`~anonlib.errors.StoreError`, and the database enforces it too (PostgreSQL
sessions whose transactions are READ ONLY; SQLite opened with ``mode=ro``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from anonlib.errors import StoreError
from anonlib.store import rules
from anonlib.store.base import (
    ClosingMixin,
    DeliveryRecord,
    InstanceRecord,
    PatientIdentity,
    PatientKey,
    PseudonymPolicy,
    StudyRecord,
)
from anonlib.store.db import (
    check_schema_version,
    delivery_query,
    delivery_records,
    ensure_schema,
    make_engine,
    store_error,
    upsert,
)
from anonlib.store.sql_keys import KeyAccessSql
from anonlib.store.sql_pixels import PixelReviewSql
from anonlib.store.tables import (
    delivery,
    instance,
    metadata,
    patient,
    schema_version,
    secret,
    study,
)

__all__ = ["SqlStore", "readonly_engine"]


def readonly_engine(url: str) -> Engine:
    """An engine that cannot write: PostgreSQL sessions default to read-only transactions;
    an SQLite file is opened with ``mode=ro`` (a missing file, or ``:memory:``, is an empty
    in-memory database, so nothing is created)."""
    engine = make_engine(url)  # validates the URL (ConfigError), connects to nothing
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.close()
            dbapi_connection.commit()

        return engine
    engine.dispose()
    database = make_url(url).database
    if not database or database == ":memory:" or not Path(database).is_file():
        return create_engine("sqlite://")
    path = Path(database).resolve()
    # Without a WAL (or rollback journal) there is nothing to recover: open the file immutable,
    # so SQLite creates no -wal/-shm companion either. With one, a writer is at work: mode=ro.
    busy = any(path.with_name(path.name + end).exists() for end in ("-wal", "-journal"))
    uri = path.as_uri() + ("?mode=ro" if busy else "?mode=ro&immutable=1")
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))


def _existing_tables(engine: Engine) -> frozenset[str]:
    """anonlib's tables present in the database; StoreError if its schema is newer than ours."""
    with engine.connect() as conn:
        names = frozenset(inspect(conn).get_table_names()) & frozenset(metadata.tables)
        if schema_version.name in names:
            check_schema_version(conn.scalar(select(func.max(schema_version.c.version))))
    return names


class SqlStore(PixelReviewSql, KeyAccessSql, ClosingMixin):
    """:class:`~anonlib.store.base.LookupStore` on ``postgresql://`` or ``sqlite:///`` ``url``.

    Opening creates the schema if missing (safe when many processes open a fresh database at
    once), unless ``readonly`` (see the module docstring). Raises
    :class:`~anonlib.errors.ConfigError` for an invalid policy or URL and
    :class:`~anonlib.errors.StoreError` when the database cannot be opened. Pixel findings and
    review decisions come from :class:`~anonlib.store.sql_pixels.PixelReviewSql`; reverse lookups
    and the access log from :class:`~anonlib.store.sql_keys.KeyAccessSql`.
    """

    def __init__(self, url: str, policy: PseudonymPolicy = rules.DEFAULT_POLICY, *,
                 readonly: bool = False) -> None:
        rules.validate_policy(policy)
        self.policy = policy
        self.readonly = readonly
        self._engine = readonly_engine(url) if readonly else make_engine(url)
        self._secret: bytes | None = None
        self._closed = False
        self._tables: frozenset[str] = frozenset(metadata.tables)
        try:
            if readonly:
                self._tables = _existing_tables(self._engine)
            else:
                ensure_schema(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise store_error("could not open the lookup store", exc) from None
        except BaseException:
            self._engine.dispose()
            raise

    @contextmanager
    def _transaction(self, what: str, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; SQLAlchemy errors become a StoreError saying ``what`` failed."""
        if self._closed:
            raise StoreError("the lookup store is closed")
        if write:
            self._check_writable(what)
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise store_error(what, exc) from None

    @contextmanager
    def _read(self, what: str, table: Table) -> Iterator[Connection | None]:
        """A reading transaction, or None when ``table`` does not exist (a read-only store on
        a database anonlib never wrote to)."""
        if table.name not in self._tables:
            if self._closed:
                raise StoreError("the lookup store is closed")
            yield None
            return
        with self._transaction(what, write=False) as conn:
            yield conn

    def _rows(self, what: str, table: Table, query: Select[Any]) -> list[Any]:
        """Every row ``query`` selects from ``table`` (none when the table does not exist)."""
        with self._read(what, table) as conn:
            return [] if conn is None else list(conn.execute(query).all())

    def _check_writable(self, what: str) -> None:
        if self.readonly:
            raise StoreError(f"{what}: the lookup store is open read-only")

    def find_secret(self) -> bytes | None:
        """The project secret if it exists; never creates it (used by dry runs)."""
        if self._secret is None:
            with self._read("could not read the project secret", secret) as conn:
                value = None if conn is None else conn.scalar(select(secret.c.secret).where(secret.c.id == 1))
            if value is None:
                return None
            if len(value) != rules.SECRET_BYTES:
                raise StoreError("the project secret in the lookup store is damaged")
            self._secret = bytes(value)
        return self._secret

    def secret(self) -> bytes:
        """The project secret (32 bytes), created once on first use and never changed."""
        if self.readonly:
            found = self.find_secret()
            if found is None:
                raise StoreError("could not create the project secret: the lookup store is open read-only")
            return found
        if self._secret is None:
            query = select(secret.c.secret).where(secret.c.id == 1)
            with self._transaction("could not read or create the project secret") as conn:
                value = conn.scalar(query)
                if value is None:
                    insert = upsert(conn, secret).values(id=1, secret=rules.new_secret())
                    conn.execute(insert.on_conflict_do_nothing())
                    value = conn.scalar(query)
            if value is None or len(value) != rules.SECRET_BYTES:
                raise StoreError("the project secret in the lookup store is missing or damaged")
            self._secret = bytes(value)
        return self._secret

    @staticmethod
    def _select_identity(conn: Connection, key: PatientKey) -> PatientIdentity | None:
        row = conn.execute(
            select(patient.c.pseudonym, patient.c.date_shift_days).where(
                patient.c.patient_id == key.patient_id, patient.c.issuer == key.issuer
            )
        ).first()
        return None if row is None else PatientIdentity(row.pseudonym, row.date_shift_days)

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
                insert = upsert(conn, patient).values(
                    patient_id=key.patient_id,
                    issuer=key.issuer,
                    pseudonym=rules.new_pseudonym(self.policy),
                    date_shift_days=rules.new_date_shift(self.policy),
                )
                # Conflicts on the key (a concurrent creator won) or on the pseudonym (taken:
                # try another) both do nothing; the read-back tells them apart.
                conn.execute(insert.on_conflict_do_nothing())
                found = self._select_identity(conn, key)
        if found is None:
            raise StoreError("could not create patient identity: no free pseudonym found")
        return found

    def find_patient(self, key: PatientKey) -> PatientIdentity | None:
        """The identity of ``key`` if it exists; never creates one."""
        rules.check_key(key)
        with self._read("could not look up patient identity", patient) as conn:
            return None if conn is None else self._select_identity(conn, key)

    def patients(self) -> Iterator[tuple[PatientKey, PatientIdentity]]:
        """Every patient, in order of creation."""
        query = select(
            patient.c.patient_id, patient.c.issuer, patient.c.pseudonym, patient.c.date_shift_days
        ).order_by(patient.c.id)
        rows = self._rows("could not list patients", patient, query)
        return iter(
            [
                (
                    PatientKey(r.patient_id, r.issuer),
                    PatientIdentity(r.pseudonym, r.date_shift_days),
                )
                for r in rows
            ]
        )

    def record_study(self, record: StudyRecord) -> None:
        """Insert or update the study keyed by ``original_study_uid``."""
        self._check_writable("could not record study")
        rules.check_study(record)
        with self._transaction("could not record study") as conn:
            insert = upsert(conn, study).values(
                original_study_uid=record.original_study_uid,
                original_accession=record.original_accession,
                pseudonym=record.pseudonym,
                new_study_uid=record.new_study_uid,
                shifted_study_date=record.shifted_study_date,
            )
            changed = ("original_accession", "pseudonym", "new_study_uid", "shifted_study_date")
            updates: dict[str, Any] = {name: insert.excluded[name] for name in changed}
            updates["last_processed_at"] = func.current_timestamp()
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[study.c.original_study_uid], set_=updates
                )
            )

    def study(self, original_study_uid: str) -> StudyRecord | None:
        """The record of one processed study, if any."""
        query = select(
            study.c.original_study_uid,
            study.c.original_accession,
            study.c.pseudonym,
            study.c.new_study_uid,
            study.c.shifted_study_date,
        ).where(study.c.original_study_uid == original_study_uid)
        with self._read("could not read study record", study) as conn:
            row = None if conn is None else conn.execute(query).first()
        return None if row is None else StudyRecord(*row)

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
        with self._transaction("could not record instance") as conn:
            insert = upsert(conn, instance)
            updates: dict[str, Any] = {name: insert.excluded[name] for name in _INSTANCE_FIELDS[1:]}
            updates["processed_at"] = func.current_timestamp()
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[instance.c.original_sop_uid], set_=updates
                ),
                [_instance_values(record) for record in records],
            )

    def instance(self, original_sop_uid: str) -> InstanceRecord | None:
        """The record of one processed instance, if any."""
        query = select(*(instance.c[name] for name in _INSTANCE_FIELDS)).where(
            instance.c.original_sop_uid == original_sop_uid
        )
        with self._read("could not read instance record", instance) as conn:
            row = None if conn is None else conn.execute(query).first()
        return None if row is None else InstanceRecord(*row)

    def instances(self) -> Iterator[InstanceRecord]:
        """Every processed instance, ordered by original SOP Instance UID (code points)."""
        query = select(*(instance.c[name] for name in _INSTANCE_FIELDS))
        records = [InstanceRecord(*row) for row in self._rows("could not list instance records", instance, query)]
        return iter(sorted(records, key=lambda r: r.original_sop_uid))

    def record_delivery(self, record: DeliveryRecord) -> None:
        """Insert or update the delivery keyed by (node, orthanc_study_id)."""
        self._check_writable("could not record delivery")
        if record.status not in ("done", "held") or not record.node or not record.orthanc_study_id:
            raise StoreError("delivery record needs a node, a study ID and status done or held")
        values = asdict(record)
        values["runs"] = 1
        with self._transaction("could not record delivery") as conn:
            insert = upsert(conn, delivery).values(**values)
            updates: dict[str, Any] = {k: insert.excluded[k] for k in values
                                       if k not in ("node", "orthanc_study_id", "runs")}
            updates["runs"] = delivery.c.runs + 1
            updates["delivered_at"] = func.current_timestamp()
            conn.execute(insert.on_conflict_do_update(index_elements=[delivery.c.node, delivery.c.orthanc_study_id],
                                                      set_=updates))

    def deliveries(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """The deliveries from ``node`` (all, or those of ``study_ids``), keyed by Orthanc study ID."""
        with self._read("could not list deliveries", delivery) as conn:
            return {} if conn is None else delivery_records(conn.execute(delivery_query(node, study_ids)))

    def close(self) -> None:
        """Release connections; later calls raise :class:`StoreError`."""
        self._closed = True
        self._engine.dispose()


_INSTANCE_FIELDS = (
    "original_sop_uid",
    "new_sop_uid",
    "original_study_uid",
    "status",
    "output",
    "reason",
    "sha256",
)


def _instance_values(record: InstanceRecord) -> dict[str, str]:
    return {name: getattr(record, name) for name in _INSTANCE_FIELDS}
