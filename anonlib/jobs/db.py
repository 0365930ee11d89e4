"""SQL around the queue: anonlib's job tables, read-only views of procrastinate's jobs, and the
delivery records the study job writes. One :class:`JobsDb` per process; it connects on first
use. Errors leave as PHI-free :class:`~anonlib.errors.StoreError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Connection, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from anonlib.jobs.app import TASK_NAME
from anonlib.jobs.locks import parse_queueing_lock, study_queueing_lock
from anonlib.jobs.tables import change_cursor, job_outcome, rejected_instance
from anonlib.store.base import DeliveryRecord
from anonlib.store.db import delivery_query, delivery_records, make_engine, store_error
from anonlib.store.tables import delivery

__all__ = ["JobRow", "JobsDb", "RejectedInstance", "StudyJobs", "advisory_key"]

FAILED = ("failed", "aborted")


def advisory_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(b"anonlib-lock:" + name.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class JobRow:
    """One study job as listings show it (PHI-free)."""

    id: int
    task: str
    node: str
    study_id: str
    status: str  # procrastinate's: todo | doing | succeeded | failed | cancelled | aborted
    attempts: int
    outcome: str  # anonlib_job_outcome.state, "" if none recorded
    error_class: str
    error_message: str
    scheduled_at: str
    superseded: bool  # a later job exists for the same study
    force: bool = False  # the job processes its study even if delivered as it is
    outcome_age: float = 0.0  # seconds since its outcome was recorded

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RejectedInstance:
    """One instance a study job did not deliver (PHI-free: its Orthanc ID and the reason)."""

    node: str
    study_id: str
    instance_id: str
    reason: str


@dataclass
class StudyJobs:
    """The jobs of one study that matter to catch-up decisions."""

    queued: bool = False  # a job waits (todo, possibly scheduled for a retry)
    running_seen: list[str | None] = field(default_factory=list)  # LastUpdate each running job saw
    failed_update: str | None = None  # latest job failed: the LastUpdate it saw ("" unknown)


class CursorHandle:
    """The change cursor of one node inside the catch-up transaction."""

    def __init__(self, conn: Connection, node: str, seq: int) -> None:
        self._conn, self.node, self.seq = conn, node, seq

    def advance(self, seq: int) -> None:
        self._conn.execute(change_cursor.update().where(change_cursor.c.node == self.node)
                           .values(last_seq=seq, updated_at=func.now()))
        self.seq = seq


_JOBS_SQL = """
SELECT j.id, j.task_name, j.status::text AS status, j.attempts, j.queueing_lock,
       coalesce(to_char(j.scheduled_at, 'YYYY-MM-DD"T"HH24:MI:SSOF'), '') AS scheduled_at,
       j.id <> max(j.id) OVER (PARTITION BY j.queueing_lock) AS superseded,
       coalesce(o.state, '') AS outcome, coalesce(o.attempt, 0) AS outcome_attempt,
       o.last_update, coalesce(o.error_class, '') AS error_class,
       coalesce(o.error_message, '') AS error_message,
       coalesce((j.args->>'force')::boolean, false) AS force,
       coalesce(extract(epoch FROM now() - o.updated_at), 0)::float AS outcome_age
  FROM procrastinate_jobs j LEFT JOIN anonlib_job_outcome o ON o.job_id = j.id
 WHERE j.task_name = :task
"""


_PRUNE_SQL = """
WITH doomed AS (
    SELECT j.id FROM procrastinate_jobs j
     WHERE j.task_name = :task AND j.status IN ('succeeded', 'cancelled', 'failed', 'aborted')
       AND (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)
           < now() - make_interval(secs => :seconds)
       AND (j.status IN ('succeeded', 'cancelled')
            OR EXISTS (SELECT 1 FROM procrastinate_jobs l WHERE l.queueing_lock = j.queueing_lock AND l.id > j.id))
), gone AS (
    DELETE FROM procrastinate_jobs WHERE id IN (SELECT id FROM doomed) RETURNING id
), outcomes AS (
    DELETE FROM anonlib_job_outcome WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone
"""


class JobsDb:
    """anonlib's queue-side SQL on the database at ``db_url`` (PostgreSQL)."""

    def __init__(self, db_url: str) -> None:
        self._engine = make_engine(db_url)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _begin(self, what: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise store_error(what, exc) from None

    # -- locks and the change cursor ------------------------------------------------------

    @contextmanager
    def try_lock(self, name: str) -> Iterator[Connection | None]:
        """A transaction holding the advisory lock ``name``, or ``None`` when another process
        holds it (the caller then skips its turn)."""
        with self._begin(f"could not take the {name} lock") as conn:
            got = conn.scalar(select(func.pg_try_advisory_xact_lock(advisory_key(name))))
            yield conn if got else None

    @contextmanager
    def change_cursor(self, node: str) -> Iterator[CursorHandle | None]:
        """The cursor of ``node``'s ``/changes`` feed, locked for this transaction (``None`` if
        another process is following the feed right now). Advances commit on exit."""
        with self.try_lock(f"changes:{node}") as conn:
            if conn is None:
                yield None
                return
            conn.execute(insert(change_cursor).values(node=node).on_conflict_do_nothing())
            seq = conn.scalar(select(change_cursor.c.last_seq).where(change_cursor.c.node == node))
            yield CursorHandle(conn, node, int(seq or 0))

    def cursor_position(self, node: str) -> int:
        with self._begin("could not read the change cursor") as conn:
            seq = conn.scalar(select(change_cursor.c.last_seq).where(change_cursor.c.node == node))
        return int(seq or 0)

    # -- outcomes -----------------------------------------------------------------------------

    def record_outcome(self, job_id: int, node: str, study_id: str, attempt: int, state: str, *,
                       last_update: str = "", instances: int = 0, error_class: str = "",
                       error_message: str = "") -> None:
        """Insert or replace the outcome of job ``job_id`` (its latest attempt)."""
        values = dict(node=node, study_id=study_id, attempt=attempt, state=state,
                      last_update=last_update, instances=instances, error_class=error_class,
                      error_message=error_message)
        statement = insert(job_outcome).values(job_id=job_id, **values)
        statement = statement.on_conflict_do_update(index_elements=[job_outcome.c.job_id],
                                                    set_={**values, "updated_at": func.now()})
        with self._begin("could not record a job outcome") as conn:
            conn.execute(statement)

    # -- rejected instances ----------------------------------------------------------------------

    def record_rejections(self, node: str, study_id: str, last_update: str,
                          rejections: Sequence[tuple[str, str]]) -> None:
        """Replace the rejected instances recorded for a study (none: the study is whole now)
        with ``rejections``, (Orthanc instance ID, PHI-free reason) each."""
        rows = [dict(node=node, study_id=study_id, instance_id=instance_id, reason=reason, last_update=last_update)
                for instance_id, reason in dict(rejections).items()]
        with self._begin("could not record rejected instances") as conn:
            conn.execute(rejected_instance.delete().where(rejected_instance.c.node == node,
                                                          rejected_instance.c.study_id == study_id))
            if rows:
                conn.execute(insert(rejected_instance), rows)

    def rejections(self, studies: Sequence[tuple[str, str]] | None = None) -> list[RejectedInstance]:
        """The rejected instances of these ``(node, study)`` (of every study when None), by node,
        study and instance."""
        columns = rejected_instance.c
        query = select(columns.node, columns.study_id, columns.instance_id, columns.reason).order_by(
            columns.node, columns.study_id, columns.instance_id)
        if studies is not None:
            if not studies:
                return []
            query = query.where(tuple_(columns.node, columns.study_id).in_([tuple(s) for s in studies]))
        with self._begin("could not read the rejected instances") as conn:
            return [RejectedInstance(*row) for row in conn.execute(query).all()]

    # -- deliveries (written by the study job) -----------------------------------------------

    def deliveries(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """Delivery records of ``node`` (all, or those of ``study_ids``), by Orthanc study ID."""
        if study_ids is not None and not study_ids:
            return {}
        with self._begin("could not read delivery records") as conn:
            return delivery_records(conn.execute(delivery_query(node, study_ids)))

    def held(self) -> list[DeliveryRecord]:
        """The delivery records of every study the audit gate holds, of every node, by node and
        study."""
        query = (select(*(delivery.c[f.name] for f in fields(DeliveryRecord))).where(delivery.c.status == "held")
                 .order_by(delivery.c.node, delivery.c.orthanc_study_id))
        with self._begin("could not read the held studies") as conn:
            return list(delivery_records(conn.execute(query)).values())

    def partial(self) -> list[DeliveryRecord]:
        """The delivery records of every study delivered without some of its instances
        (``done``, reason ``partial: ...``), of every node, by node and study."""
        query = (select(*(delivery.c[f.name] for f in fields(DeliveryRecord)))
                 .where(delivery.c.status == "done", delivery.c.reason.startswith("partial:"))
                 .order_by(delivery.c.node, delivery.c.orthanc_study_id))
        with self._begin("could not read the partial studies") as conn:
            return list(delivery_records(conn.execute(query)).values())

    # -- procrastinate's jobs, read-only ------------------------------------------------------

    def jobs(self, *, status: str | None = None, limit: int | None = 200,
             outstanding_failures: bool = False, job_id: int | None = None,
             latest_of: Sequence[tuple[str, str]] | None = None) -> list[JobRow]:
        """Study jobs, newest first; ``outstanding_failures``: failed (or aborted) jobs that no
        later job of the same study superseded; ``latest_of``: the latest job of each of these
        ``(node, study)``."""
        sql = f"SELECT * FROM ({_JOBS_SQL}) s WHERE true"
        params: dict[str, Any] = {"task": TASK_NAME}
        if status is not None:
            sql += " AND s.status = :status"
            params["status"] = status
        if outstanding_failures:
            sql += " AND s.status IN ('failed', 'aborted') AND NOT s.superseded"
        if job_id is not None:
            sql += " AND s.id = :job_id"
            params["job_id"] = int(job_id)
        if latest_of is not None:
            sql += " AND s.queueing_lock = ANY(:locks) AND NOT s.superseded"
            params["locks"] = [study_queueing_lock(node, study) for node, study in latest_of]
        sql += " ORDER BY s.id DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = int(limit)
        with self._begin("could not list jobs") as conn:
            rows = conn.execute(text(sql), params).mappings().all()
        result = []
        for row in rows:
            node, study_id = parse_queueing_lock(row["queueing_lock"]) or ("", "")
            result.append(JobRow(
                id=int(row["id"]), task=row["task_name"], node=node, study_id=study_id, status=row["status"],
                attempts=int(row["attempts"]), outcome=row["outcome"],
                error_class=row["error_class"], error_message=row["error_message"],
                scheduled_at=row["scheduled_at"] if row["status"] == "todo" else "",
                superseded=bool(row["superseded"]), force=bool(row["force"]),
                outcome_age=float(row["outcome_age"] or 0)))
        return result

    def job(self, job_id: int) -> JobRow | None:
        """One study job by id."""
        found = self.jobs(job_id=job_id, limit=None)
        return found[0] if found else None

    def prune_finished(self, older_than: float) -> int:
        """Delete the study jobs (and their outcomes and events) that ended more than
        ``older_than`` seconds ago: succeeded or cancelled ones, and failed or aborted ones that
        a later job of the same study superseded. A failure nobody dealt with stays (``jobs
        wait`` and ``jobs retry --failed`` need it); delivery records are not touched. The
        number of jobs deleted."""
        with self._begin("could not prune finished jobs") as conn:
            return int(conn.scalar(text(_PRUNE_SQL), {"task": TASK_NAME, "seconds": float(older_than)}) or 0)

    def worker_heartbeats(self) -> dict[int, float]:
        """Seconds since the last heartbeat of each registered worker, by procrastinate worker id."""
        with self._begin("could not read the workers' heartbeats") as conn:
            rows = conn.execute(text("SELECT id, extract(epoch FROM now() - last_heartbeat) "
                                     "FROM procrastinate_workers")).all()
        return {int(worker_id): float(age) for worker_id, age in rows}

    def counts(self) -> dict[str, int]:
        """Number of study jobs per procrastinate status."""
        with self._begin("could not count jobs") as conn:
            rows = conn.execute(text("SELECT status::text, count(*) FROM procrastinate_jobs "
                                     "WHERE task_name = :task GROUP BY 1"), {"task": TASK_NAME}).all()
        return {str(status): int(n) for status, n in rows}

    def study_jobs(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, StudyJobs]:
        """For each study of ``node`` with jobs: is one queued, what the running ones saw, and
        whether its latest job failed (and on which LastUpdate)."""
        sql = f"SELECT * FROM ({_JOBS_SQL}) s WHERE s.queueing_lock LIKE :prefix"
        params: dict[str, Any] = {"task": TASK_NAME, "prefix": study_queueing_lock(node, "x")[:-1] + "%"}
        if study_ids is not None:
            if not study_ids:
                return {}
            sql += " AND s.queueing_lock = ANY(:locks)"
            params["locks"] = [study_queueing_lock(node, s) for s in study_ids]
        sql += " AND (s.status IN ('todo', 'doing') OR NOT s.superseded)"
        with self._begin("could not read the jobs of studies") as conn:
            rows = conn.execute(text(sql), params).mappings().all()
        result: dict[str, StudyJobs] = {}
        for row in rows:
            parsed = parse_queueing_lock(row["queueing_lock"])
            if parsed is None:
                continue
            entry = result.setdefault(parsed[1], StudyJobs())
            if row["status"] == "todo":
                entry.queued = True
            elif row["status"] == "doing":
                current = row["outcome_attempt"] == row["attempts"] + 1
                entry.running_seen.append(row["last_update"] if current else None)
            if not row["superseded"] and row["status"] in FAILED:
                entry.failed_update = row["last_update"] or ""
        return result
