"""SQLAlchemy definitions of the lookup store's tables.

``sql/schema.sql`` is the source of truth; these definitions must produce the same schema on
PostgreSQL (a test reflects both and compares them). Constraint and index names are spelled
out so both sides agree. Defining tables connects to nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "SCHEMA_LOCK_KEY",
    "SCHEMA_VERSION",
    "access_log",
    "delivery",
    "instance",
    "metadata",
    "patient",
    "pixel_finding",
    "review",
    "schema_version",
    "secret",
    "study",
    "uid",
]

SCHEMA_VERSION = 2
"""The schema version these definitions describe (a row of ``anonlib_schema_version``).
Version 2 added ``anonlib_access_log`` and ``anonlib_uid``; a version-1 database gains them when
opened for writing."""

SCHEMA_LOCK_KEY = 7020671389173113393
"""PostgreSQL advisory lock key (``b"anonlib1"``) serializing schema creation; also in schema.sql."""

metadata = MetaData()

_NOW = text("CURRENT_TIMESTAMP")
_EMPTY = text("''")


def _timestamp(name: str) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=_NOW)


def _text(name: str, default_empty: bool = False) -> Column[Any]:
    return Column(name, Text, nullable=False, server_default=_EMPTY if default_empty else None)


schema_version = Table(
    "anonlib_schema_version",
    metadata,
    Column("version", Integer, nullable=False, autoincrement=False),
    _timestamp("applied_at"),
    PrimaryKeyConstraint("version", name="anonlib_schema_version_pkey"),
    comment="Versions of the anonlib store schema applied to this database; one row per version.",
)

secret = Table(
    "anonlib_secret",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("secret", LargeBinary, nullable=False),
    _timestamp("created_at"),
    PrimaryKeyConstraint("id", name="anonlib_secret_pkey"),
    CheckConstraint("id = 1", name="anonlib_secret_id_check"),
    CheckConstraint("length(secret) = 32", name="anonlib_secret_secret_check"),
    comment=(
        "The project secret (32 random bytes) keying the UID mapping; "
        "one row, created once, never changed."
    ),
)

patient = Table(
    "anonlib_patient",
    metadata,
    # BIGINT identity on PostgreSQL; INTEGER (the rowid alias) on SQLite.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), Identity(), nullable=False),
    _text("patient_id"),
    _text("issuer", default_empty=True),
    _text("pseudonym"),
    Column("date_shift_days", Integer, nullable=False),
    _timestamp("created_at"),
    PrimaryKeyConstraint("id", name="anonlib_patient_pkey"),
    UniqueConstraint("patient_id", "issuer", name="anonlib_patient_patient_id_issuer_key"),
    UniqueConstraint("pseudonym", name="anonlib_patient_pseudonym_key"),
    CheckConstraint("patient_id <> ''", name="anonlib_patient_patient_id_check"),
    CheckConstraint("date_shift_days <> 0", name="anonlib_patient_date_shift_days_check"),
    comment=(
        "One row per original patient (PatientID + IssuerOfPatientID): "
        "random pseudonym and date shift, reused forever. PHI."
    ),
)

study = Table(
    "anonlib_study",
    metadata,
    _text("original_study_uid"),
    _text("original_accession", default_empty=True),
    _text("pseudonym"),
    _text("new_study_uid"),
    _text("shifted_study_date", default_empty=True),
    _timestamp("first_processed_at"),
    _timestamp("last_processed_at"),
    PrimaryKeyConstraint("original_study_uid", name="anonlib_study_pkey"),
    UniqueConstraint("new_study_uid", name="anonlib_study_new_study_uid_key"),
    ForeignKeyConstraint(
        ["pseudonym"], ["anonlib_patient.pseudonym"], name="anonlib_study_pseudonym_fkey"
    ),
    Index("anonlib_study_pseudonym_idx", "pseudonym"),
    comment=(
        "One row per processed study: original UID and accession number, and what they became. PHI."
    ),
)

instance = Table(
    "anonlib_instance",
    metadata,
    _text("original_sop_uid"),
    _text("new_sop_uid"),
    _text("original_study_uid"),
    _text("status"),
    _text("output", default_empty=True),
    _text("reason", default_empty=True),
    _text("sha256", default_empty=True),
    _timestamp("processed_at"),
    PrimaryKeyConstraint("original_sop_uid", name="anonlib_instance_pkey"),
    CheckConstraint("status IN ('written', 'quarantined')", name="anonlib_instance_status_check"),
    Index("anonlib_instance_original_study_uid_idx", "original_study_uid"),
    comment=(
        "One row per processed instance: written (output path, sha256) "
        "or quarantined (PHI-free reason)."
    ),
)

delivery = Table(
    "anonlib_delivery",
    metadata,
    _text("node"),
    _text("orthanc_study_id"),
    _text("last_update", default_empty=True),
    Column("instances", Integer, nullable=False, server_default=text("0")),
    Column("released", Integer, nullable=False, server_default=text("0")),
    Column("quarantined", Integer, nullable=False, server_default=text("0")),
    _text("new_study_uid", default_empty=True),
    _text("status"),
    _text("reason", default_empty=True),
    Column("runs", Integer, nullable=False, server_default=text("1")),
    _timestamp("delivered_at"),
    PrimaryKeyConstraint("node", "orthanc_study_id", name="anonlib_delivery_pkey"),
    CheckConstraint("status IN ('done', 'held')", name="anonlib_delivery_status_check"),
    comment=(
        "One row per study taken from an Orthanc node: the state it was in (LastUpdate, instance "
        "count) when its delivery was verified (done) or held, with a PHI-free reason; runs counts "
        "the times it was processed."
    ),
)


def _boxes(name: str) -> Column[Any]:
    """A JSON array of rectangles (jsonb on PostgreSQL); written whole by the store."""
    return Column(name, JSON().with_variant(JSONB(), "postgresql"), nullable=False)


pixel_finding = Table(
    "anonlib_pixel_finding",
    metadata,
    _text("original_sop_uid"),
    _text("new_sop_uid"),
    _text("outcome"),
    _text("reason", default_empty=True),
    _boxes("boxes"),
    _timestamp("found_at"),
    PrimaryKeyConstraint("original_sop_uid", name="anonlib_pixel_finding_pkey"),
    CheckConstraint("outcome IN ('masked', 'quarantined')", name="anonlib_pixel_finding_outcome_check"),
    comment=(
        "One row per instance in which the pixel stage found text (masked) or could not look "
        "(quarantined, PHI-free reason): boxes as [{frame, x, y, width, height, score}], never the text."
    ),
)

review = Table(
    "anonlib_review",
    metadata,
    _text("original_sop_uid"),
    _text("decision"),
    _boxes("regions"),
    _text("reviewer", default_empty=True),
    _timestamp("decided_at"),
    PrimaryKeyConstraint("original_sop_uid", name="anonlib_review_pkey"),
    CheckConstraint("decision IN ('release', 'mask', 'reject')", name="anonlib_review_decision_check"),
    comment=(
        "One row per instance a reviewer decided about (release, mask the extra regions "
        "[{frame, x, y, width, height}], reject); applied whenever the instance is processed again."
    ),
)

access_log = Table(
    "anonlib_access_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), Identity(), nullable=False),
    _timestamp("accessed_at"),
    _text("accessor"),
    _text("action"),
    _text("result", default_empty=True),
    Column("entries", Integer, nullable=False, server_default=text("0")),
    _text("digest", default_empty=True),
    PrimaryKeyConstraint("id", name="anonlib_access_log_pkey"),
    CheckConstraint("action IN ('lookup', 'export')", name="anonlib_access_log_action_check"),
    CheckConstraint("entries >= 0", name="anonlib_access_log_entries_check"),
    comment=(
        "One row per use of the re-identification key (a lookup, a mapping export): who, when "
        "(UTC), what kind and how many entries it revealed, and a digest of the queried value "
        "keyed by the project secret; never a value."
    ),
)

uid = Table(
    "anonlib_uid",
    metadata,
    _text("original_uid"),
    _text("new_uid"),
    _timestamp("recorded_at"),
    PrimaryKeyConstraint("original_uid", name="anonlib_uid_pkey"),
    Index("anonlib_uid_new_uid_idx", "new_uid"),
    comment=(
        "One row per UID the engine replaced (any attribute, at any depth, also in text): the original "
        "and its new UID, recorded as instances are delivered; what re-identification reads. PHI."
    ),
)
