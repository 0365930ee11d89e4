"""SQLAlchemy definitions of anonlib's own job-queue tables (beside procrastinate's).

``sql/jobs.sql`` is the source of truth; these definitions must build the same schema on
PostgreSQL (``tests/integration/test_jobs_schema.py`` reflects both and compares them).
Defining tables connects to nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

__all__ = ["QUEUE_SCHEMA_LOCK_KEY", "OUTCOME_STATES", "change_cursor", "job_outcome", "metadata", "rejected_instance",
           "upgrade"]

QUEUE_SCHEMA_LOCK_KEY = 7020671389173113457
"""PostgreSQL advisory lock key (``b"anonlibq"``) serializing the queue's schema creation."""

OUTCOME_STATES = ("running", "done", "held", "gone", "unchanged", "waiting", "error")
"""``running``: the attempt started; ``done``/``held``/``gone``: what the study job reported;
``unchanged``: already delivered as it is (nothing done); ``waiting``: the study was not stable
yet (or changed while the job worked), a later job takes it; ``error``: the attempt raised."""

metadata = MetaData()

_NOW = text("CURRENT_TIMESTAMP")
_EMPTY = text("''")


def _text(name: str, default_empty: bool = True) -> Column[Any]:
    return Column(name, Text, nullable=False, server_default=_EMPTY if default_empty else None)


change_cursor = Table(
    "anonlib_change_cursor",
    metadata,
    _text("node", default_empty=False),
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("node", name="anonlib_change_cursor_pkey"),
    CheckConstraint("last_seq >= 0", name="anonlib_change_cursor_last_seq_check"),
    comment="Per Orthanc node: the last /changes sequence number the catch-up has handled.",
)

job_outcome = Table(
    "anonlib_job_outcome",
    metadata,
    Column("job_id", BigInteger, nullable=False, autoincrement=False),
    _text("node", default_empty=False),
    _text("study_id", default_empty=False),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    _text("state", default_empty=False),
    _text("last_update"),
    Column("instances", Integer, nullable=False, server_default=text("0")),
    _text("error_class"),
    _text("error_message"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("job_id", name="anonlib_job_outcome_pkey"),
    CheckConstraint(
        "state IN (" + ", ".join(f"'{s}'" for s in OUTCOME_STATES) + ")",
        name="anonlib_job_outcome_state_check",
    ),
    Index("anonlib_job_outcome_node_study_id_idx", "node", "study_id"),
    comment=(
        "Per study job: the study state its last attempt saw (LastUpdate, instances) and how it "
        "ended, with a PHI-free error."
    ),
)


rejected_instance = Table(
    "anonlib_rejected_instance",
    metadata,
    _text("node", default_empty=False),
    _text("study_id", default_empty=False),
    _text("instance_id", default_empty=False),
    _text("reason"),
    _text("last_update"),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("node", "study_id", "instance_id", name="anonlib_rejected_instance_pkey"),
    comment=(
        "Per study: each instance not delivered (Orthanc instance ID) with its PHI-free reason, as "
        "of the study's last processing."
    ),
)


def upgrade(conn: Connection) -> None:
    """Bring tables made by an older anonlib up to these definitions (idempotent): the outcome
    states' check constraint gains the states added since."""
    name = "anonlib_job_outcome_state_check"
    wanted = "state IN (" + ", ".join(f"'{s}'" for s in OUTCOME_STATES) + ")"
    current = conn.scalar(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n"),
                          {"n": name}) or ""
    if all(f"'{s}'" in current for s in OUTCOME_STATES):
        return
    conn.execute(text(f"ALTER TABLE anonlib_job_outcome DROP CONSTRAINT IF EXISTS {name}"))
    conn.execute(text(f"ALTER TABLE anonlib_job_outcome ADD CONSTRAINT {name} CHECK ({wanted})"))
