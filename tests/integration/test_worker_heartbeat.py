"""Heartbeats and stalled jobs on a real PostgreSQL queue: a job is put back in the queue only
when its worker's heartbeat is older than ``stalled_after`` and never when this very process
runs it; the dead workers are forgotten; a heartbeat reports whether it landed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from anonlib.jobs.app import QUEUE, TASK_NAME, StudyJobManager, ensure_queue_schema, make_app
from anonlib.jobs.db import JobsDb
from anonlib.jobs.heartbeat import Heartbeat
from anonlib.jobs.worker import _recover_stalled
from anonlib.store.db import make_engine

pytestmark = pytest.mark.integration


def _age(db_url: str, worker_id: int, seconds: int) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now() - make_interval(secs => :s) "
                          "WHERE id = :id"), {"s": seconds, "id": worker_id})
    engine.dispose()


def test_only_jobs_of_really_dead_workers_are_requeued(pg_url: str) -> None:
    ensure_queue_schema(pg_url)

    async def scenario() -> tuple[int, dict[int, str], set[int], bool, str]:
        app = make_app(pg_url)
        manager = app.job_manager
        assert isinstance(manager, StudyJobManager)
        async with app.open_async():
            for index in range(3):
                await app.configure_task(TASK_NAME, queue=QUEUE, lock=f"patient:{index}",
                                         queueing_lock=f"study:intake:s{index}").defer_async(
                    node="intake", study_id=f"s{index}")
            own = await manager.register_worker()  # this process: alive whatever its heartbeat says
            dead = await manager.register_worker()
            busy = await manager.register_worker()
            manager.worker_ids.discard(dead)
            manager.worker_ids.discard(busy)
            jobs = {}
            for worker_id in (own, dead, busy):
                job = await manager.fetch_job([QUEUE], worker_id)
                assert job is not None and job.id is not None
                jobs[worker_id] = job.id
            _age(pg_url, own, 120)
            _age(pg_url, dead, 120)
            _age(pg_url, busy, 20)  # late, but well within stalled_after: still alive
            recovered = await _recover_stalled(app, stalled_after=60)
            db = JobsDb(pg_url)
            try:
                statuses = {worker_id: db.job(job_id).status for worker_id, job_id in jobs.items()}  # type: ignore[union-attr]
                registered = set(db.worker_heartbeats())
            finally:
                db.close()
            # a heartbeat that lands is recorded; one for a registration that is gone says so
            manager.heartbeat = heartbeat = Heartbeat()
            before = heartbeat.age()
            await asyncio.sleep(0.05)
            await manager.update_heartbeat(own)
            landed = heartbeat.age() < before + 0.05 and not heartbeat.lost
            await manager.update_heartbeat(dead)
            return recovered, {k: v for k, v in statuses.items()}, registered, landed, heartbeat.lost

    recovered, statuses, registered, landed, lost = asyncio.run(scenario())
    assert recovered == 1
    assert list(statuses.values()) == ["doing", "todo", "doing"]  # own, dead, busy
    assert len(registered) == 2  # the dead worker was forgotten
    assert landed
    assert "registration is gone" in lost


def test_finished_jobs_are_pruned_but_open_failures_stay(pg_url: str) -> None:
    ensure_queue_schema(pg_url)
    # study: statuses of its jobs, oldest first
    plan = {"a": ["succeeded"], "b": ["failed"], "c": ["failed", "succeeded"], "d": ["aborted", "failed"],
            "e": ["failed", "todo"], "f": ["doing"], "g": ["succeeded"]}
    app = make_app(pg_url, sync=True)
    ids: dict[tuple[str, int], int] = {}
    engine = make_engine(pg_url)
    with app.open():
        for study, statuses in plan.items():
            for n, status in enumerate(statuses):
                job_id = app.configure_task(TASK_NAME, queue=QUEUE, queueing_lock=f"study:intake:{study}").defer(
                    node="intake", study_id=study)
                ids[(study, n)] = job_id
                with engine.begin() as conn:
                    conn.execute(text("UPDATE procrastinate_jobs SET status = CAST(:s AS procrastinate_job_status) "
                                      "WHERE id = :id"), {"s": status, "id": job_id})
                    conn.execute(text("INSERT INTO anonlib_job_outcome (job_id, node, study_id, state) "
                                      "VALUES (:id, 'intake', :study, 'done')"), {"id": job_id, "study": study})
    with engine.begin() as conn:  # everything ended two days ago, except study g (just now)
        conn.execute(text("UPDATE procrastinate_events SET at = now() - interval '2 days' "
                          "WHERE job_id <> :g"), {"g": ids[("g", 0)]})
    db = JobsDb(pg_url)
    try:
        assert db.prune_finished(older_than=86400) == 5
        left = {(j.study_id, j.status) for j in db.jobs(limit=None)}
        assert left == {("b", "failed"), ("d", "failed"), ("e", "todo"), ("f", "doing"), ("g", "succeeded")}
        assert [j.study_id for j in db.jobs(outstanding_failures=True, limit=None)] == ["d", "b"]
        with engine.connect() as conn:
            outcomes = conn.scalar(text("SELECT count(*) FROM anonlib_job_outcome"))
            events = conn.scalar(text("SELECT count(*) FROM procrastinate_events e "
                                      "LEFT JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.id IS NULL"))
        assert outcomes == 5 and events == 0
        assert db.prune_finished(older_than=86400) == 0
    finally:
        db.close()
        engine.dispose()
