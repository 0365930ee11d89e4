"""The job queue on a real PostgreSQL: schema creation (idempotent, concurrent, equal to
sql/jobs.sql), the change cursor, dedupe and patient locks, retries and outcomes, the listing,
manual retry, and the retry-while-a-duplicate-waits case procrastinate alone gets wrong."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import ensure_queue_schema, make_app, open_sync_app, sync_app
from anonlib.jobs.db import JobsDb
from anonlib.jobs.enqueue import StudyQueue
from anonlib.jobs.locks import patient_lock
from anonlib.jobs.retry import StudyRetry
from anonlib.jobs.status import retry_job
from anonlib.jobs.tables import QUEUE_SCHEMA_LOCK_KEY, metadata
from anonlib.store import DeliveryRecord, open_store
from anonlib.store.db import make_engine
from anonlib.studyjob import StudyJobError, TransientError
from tests.unit.test_jobs import LAST_UPDATE, PATIENT, STUDY_A, STUDY_B, FakeOutcomes, FakeProcess, FakeSource

pytestmark = pytest.mark.integration

JOBS_SQL = Path(__file__).resolve().parents[2] / "sql" / "jobs.sql"
SECRET = b"q" * 32


def _ensure(url: str) -> bool:
    return ensure_queue_schema(url)


# -- schema -----------------------------------------------------------------------------------

def test_schema_is_created_once_even_by_concurrent_processes(pg_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        applied = pool.map(_ensure, [pg_url] * 4)
    assert sorted(applied) == [False, False, False, True]
    assert ensure_queue_schema(pg_url) is False  # idempotent
    with sync_app(pg_url) as app:
        assert app.check_connection()


def _describe(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    inspector = inspect(engine)
    squash = lambda s: None if s is None else re.sub(r"\s+", " ", s).strip()  # noqa: E731
    described = {}
    for table in sorted(metadata.tables):
        described[table] = {
            "columns": [(c["name"], c["type"].compile(dialect=engine.dialect), c["nullable"],
                         squash(c.get("default"))) for c in inspector.get_columns(table)],
            "pk": inspector.get_pk_constraint(table),
            "checks": sorted((c["name"], squash(c["sqltext"])) for c in inspector.get_check_constraints(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(table)),
            "comment": inspector.get_table_comment(table)["text"],
        }
    engine.dispose()
    return described


def test_jobs_sql_and_tables_build_the_same_schema(pg_new_database: Callable[[], str]) -> None:
    from_sql, from_code = pg_new_database(), pg_new_database()
    engine = make_engine(from_sql)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for _ in range(2):  # idempotent
            cursor.execute(JOBS_SQL.read_text(encoding="utf-8"))
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    ensure_queue_schema(from_code)
    expected, actual = _describe(from_sql), _describe(from_code)
    assert set(expected) == {"anonlib_change_cursor", "anonlib_job_outcome", "anonlib_rejected_instance"}
    assert all(expected[t]["columns"] for t in expected)
    assert actual == expected
    assert f"pg_advisory_xact_lock({QUEUE_SCHEMA_LOCK_KEY})" in JOBS_SQL.read_text(encoding="utf-8")


# -- cursor -----------------------------------------------------------------------------------

def test_change_cursor_persists_and_is_exclusive(pg_url: str) -> None:
    ensure_queue_schema(pg_url)
    db, other = JobsDb(pg_url), JobsDb(pg_url)
    try:
        with db.change_cursor("intake") as cursor:
            assert cursor is not None and cursor.seq == 0
            with other.change_cursor("intake") as busy:
                assert busy is None  # another process follows the feed right now
            with other.change_cursor("research") as free:
                assert free is not None  # other nodes are independent
            cursor.advance(42)
        assert db.cursor_position("intake") == 42
        with pytest.raises(RuntimeError), db.change_cursor("intake") as cursor:
            assert cursor is not None
            cursor.advance(99)
            raise RuntimeError("the pass failed")  # the cursor must not move
        assert db.cursor_position("intake") == 42
    finally:
        db.close()
        other.close()


# -- queueing ---------------------------------------------------------------------------------

@pytest.fixture
def queue_db(pg_url: str) -> Iterator[tuple[StudyQueue, JobsDb]]:
    ensure_queue_schema(pg_url)
    app = open_sync_app(pg_url)
    db = JobsDb(pg_url)
    yield StudyQueue(app, SECRET), db
    app.close()
    db.close()


def test_dedupe_and_locks_in_postgres(queue_db: tuple[StudyQueue, JobsDb]) -> None:
    queue, db = queue_db
    first = queue.defer("intake", STUDY_A, PATIENT)
    again = queue.defer("intake", STUDY_A, PATIENT)
    other = queue.defer("intake", STUDY_B, "another-patient")
    assert first.created and not again.created and again.job_id == first.job_id and other.created
    jobs = db.jobs()
    assert [(j.id, j.study_id, j.status) for j in jobs] == [(other.job_id, STUDY_B, "todo"),
                                                            (first.job_id, STUDY_A, "todo")]
    assert db.counts() == {"todo": 2}
    locks = {j.task_kwargs["study_id"]: j.lock for j in queue.app.job_manager.list_jobs()}
    assert locks == {STUDY_A: patient_lock(SECRET, PATIENT), STUDY_B: patient_lock(SECRET, "another-patient")}
    assert db.study_jobs("intake")[STUDY_A].queued and db.study_jobs("intake", [STUDY_B])[STUDY_B].queued
    assert db.study_jobs("research") == {}


@pytest.fixture
def fake_runtime() -> Iterator[tuple[FakeSource, FakeProcess, FakeOutcomes]]:
    source, process = FakeSource(), FakeProcess()
    source.add(STUDY_A)
    source.add(STUDY_B, patient_id="another-patient")
    yield source, process, FakeOutcomes()


def _run(pg_url: str, runtime: runtime_module.Runtime, retry: StudyRetry) -> None:
    async def go() -> None:
        app = make_app(pg_url, retry=retry)
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False, listen_notify=False)

    previous = runtime_module.install(runtime)
    try:
        asyncio.run(go())
    finally:
        runtime_module.install(previous)


def test_worker_retries_records_and_lists(pg_url: str, queue_db: tuple[StudyQueue, JobsDb]) -> None:
    queue, db = queue_db
    source = FakeSource()
    source.add(STUDY_A)
    source.add(STUDY_B, patient_id="another-patient")
    process = FakeProcess(raises=[StudyJobError("intake: not a study we can use")])
    runtime = runtime_module.Runtime(info=None, process=process, source=lambda node: source, outcomes=db)
    failing = queue.defer("intake", STUDY_A, PATIENT)
    _run(pg_url, runtime, StudyRetry(max_attempts=3, base_seconds=0, cap_seconds=0))
    [row] = db.jobs(outstanding_failures=True)
    assert (row.id, row.status, row.outcome, row.error_class, row.error_message) == (
        failing.job_id, "failed", "error", "StudyJobError", "intake: not a study we can use")
    assert db.study_jobs("intake")[STUDY_A].failed_update == LAST_UPDATE

    # a transient error: back in the queue for later, attempts counted
    process.raises = [TransientError("research: HTTP 503")]
    later = queue.defer("intake", STUDY_B, "another-patient")
    _run(pg_url, runtime, StudyRetry(max_attempts=3, base_seconds=3600, cap_seconds=3600))
    waiting = db.job(int(later.job_id or 0))
    assert waiting is not None and waiting.status == "todo" and waiting.attempts == 1
    assert waiting.scheduled_at and waiting.error_class == "TransientError"

    # manual retry: a new job for the same study; the failed one is kept, superseded
    sources: dict[str, Any] = {"intake": source}
    again = retry_job(db, queue, sources, int(failing.job_id or 0))
    assert again is not None and again.created and again.job_id != failing.job_id
    assert db.jobs(outstanding_failures=True) == []
    old = db.job(int(failing.job_id or 0))
    assert old is not None and old.superseded and old.error_message == "intake: not a study we can use"
    assert retry_job(db, queue, sources, int(later.job_id or 0)) is None  # not a failed job


def test_a_retry_while_a_duplicate_waits_fails_instead_of_sticking(queue_db: tuple[StudyQueue, JobsDb],
                                                                   pg_url: str) -> None:
    """procrastinate's retry of job A (doing) while job B of the same study waits violates the
    queueing-lock index; anonlib's job manager fails A instead of leaving it 'doing' forever."""
    queue, db = queue_db
    first = queue.defer("intake", STUDY_A, PATIENT)

    async def go() -> None:
        app = make_app(pg_url)
        async with app.open_async():
            worker_id = await app.job_manager.register_worker()
            job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
            assert job is not None and job.id == first.job_id
            second = queue.defer("intake", STUDY_A, PATIENT)  # allowed: A is doing, not todo
            assert second.created
            await app.job_manager.retry_job(job)

    asyncio.run(go())
    statuses = {j.id: j.status for j in db.jobs()}
    assert statuses[first.job_id] == "failed" and sorted(statuses.values()) == ["failed", "todo"]


def test_deliveries_are_read_from_the_store(pg_url: str) -> None:
    ensure_queue_schema(pg_url)
    with open_store(pg_url) as store:
        store.record_delivery(DeliveryRecord("intake", STUDY_A, LAST_UPDATE, 3, 3, 0, "2.25.9", "done"))
    db = JobsDb(pg_url)
    try:
        assert db.deliveries("intake")[STUDY_A].last_update == LAST_UPDATE
        assert set(db.deliveries("intake", [STUDY_B])) == set()
        assert db.deliveries("intake", []) == {}
    finally:
        db.close()


def test_outcome_states_are_checked(pg_url: str) -> None:
    ensure_queue_schema(pg_url)
    db = JobsDb(pg_url)
    try:
        db.record_outcome(1, "intake", STUDY_A, 1, "running", last_update=LAST_UPDATE)
        db.record_outcome(1, "intake", STUDY_A, 2, "done", last_update=LAST_UPDATE)
        from anonlib.errors import StoreError

        with pytest.raises(StoreError):
            db.record_outcome(2, "intake", STUDY_A, 1, "bogus")
        engine = make_engine(pg_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT job_id, attempt, state FROM anonlib_job_outcome")).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == [(1, 2, "done")]
    finally:
        db.close()


def test_rejected_instances_are_kept_each_and_partial_studies_listed(pg_url: str) -> None:
    ensure_queue_schema(pg_url)
    study, other = "77777777-0000aaaa", "77777777-0000bbbb"
    with open_store(pg_url) as store:
        store.record_delivery(DeliveryRecord("intake", study, LAST_UPDATE, 14, 2, 0, "2.25.9", "done",
                                             "partial: 12 of 14 instances not delivered: ..."))
        store.record_delivery(DeliveryRecord("intake", other, LAST_UPDATE, 3, 3, 0, "2.25.8", "done"))
    db = JobsDb(pg_url)
    try:
        rejected = [(f"{n:08x}-0000", f"reason {n}") for n in range(12)]
        db.record_rejections("intake", study, LAST_UPDATE, rejected)
        db.record_rejections("intake", other, LAST_UPDATE, [("x", "a"), ("x", "b")])  # once per instance
        assert [(r.instance_id, r.reason) for r in db.rejections([("intake", study)])] == rejected
        assert [(r.instance_id, r.reason) for r in db.rejections([("intake", other)])] == [("x", "b")]
        assert study in {r.orthanc_study_id for r in db.partial()}
        assert other not in {r.orthanc_study_id for r in db.partial()}
        db.record_rejections("intake", study, LAST_UPDATE, [])  # processed again, whole
        assert db.rejections([("intake", study)]) == [] and len(db.rejections([("intake", other)])) == 1
        assert db.rejections([]) == []
    finally:
        db.close()
