"""The job queue against a real constellation (intake with the anonlib plugin, research, dest):
the plugin queues a study on STABLE_STUDY, its REST routes, catch-up from ``/changes``, and
reconcile of a study that became stable while intake Orthanc was down. The study job itself is
not run here (no worker): these tests look at the queue only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from anonlib.constellation import ConstellationInfo, ConstellationSettings, manage
from anonlib.constellation.processes import stop_pidfile
from anonlib.jobs.app import open_sync_app
from anonlib.jobs.catchup import CatchUp
from anonlib.jobs.db import JobRow, JobsDb
from anonlib.jobs.enqueue import StudyQueue
from anonlib.jobs.intake import HttpSource
from anonlib.jobs.locks import patient_lock
from anonlib.store import DeliveryRecord, open_store
from anonlib.store.db import make_engine
from anonlib.synthetic.batch import BatchStudy, write_batch
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import get, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLUGIN_WAIT = 30.0


def _secret(info: ConstellationInfo) -> bytes:
    with open_store(info.db_url) as store:
        return store.secret()


def _study_id(info: ConstellationInfo, study: BatchStudy) -> str:
    answer = httpx.post(f"{info.intake.url}/tools/find", auth=(info.intake.username, info.intake.password),
                        json={"Level": "Study", "Query": {"StudyInstanceUID": study.study_uid}}, timeout=30)
    answer.raise_for_status()
    [found] = answer.json()
    return str(found)


def _wait_for_job(db: JobsDb, study_id: str, timeout: float = PLUGIN_WAIT) -> JobRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [j for j in db.jobs(limit=None) if j.study_id == study_id]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no job for study {study_id} after {timeout} s")


def _clear_jobs(info: ConstellationInfo) -> None:
    """Forget every queued job (as if the plugin had missed the events)."""
    engine = make_engine(info.db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM procrastinate_jobs"))
        conn.execute(text("DELETE FROM anonlib_change_cursor"))
    engine.dispose()


@pytest.fixture(scope="module")
def studies(constellation: tuple[ConstellationSettings, ConstellationInfo],
            tmp_path_factory: pytest.TempPathFactory) -> list[BatchStudy]:
    """Three studies of two patients, C-STOREd into intake and stable."""
    _, info = constellation
    made = write_batch(tmp_path_factory.mktemp("batch"), studies=3, patients=2, instances=2, seed=7)
    storescu(info, [s.folder for s in made])
    wait_stable(info.intake)
    return made


@pytest.fixture
def db(constellation: tuple[ConstellationSettings, ConstellationInfo]) -> Iterator[JobsDb]:
    jobs_db = JobsDb(constellation[1].db_url)
    yield jobs_db
    jobs_db.close()


@pytest.fixture
def catchup(constellation: tuple[ConstellationSettings, ConstellationInfo], db: JobsDb) -> Iterator[CatchUp]:
    info = constellation[1]
    app = open_sync_app(info.db_url)
    source = HttpSource(info.intake)
    yield CatchUp(db, StudyQueue(app, _secret(info)), {"intake": source})
    source.close()
    app.close()


def test_plugin_queues_each_stable_study(constellation: tuple[ConstellationSettings, ConstellationInfo],
                                         studies: list[BatchStudy], db: JobsDb) -> None:
    settings, info = constellation
    secret = _secret(info)
    for study in studies:
        study_id = _study_id(info, study)
        job = _wait_for_job(db, study_id)
        assert (job.node, job.status, job.attempts) == ("intake", "todo", 0)
        patient = get(info.intake, f"/studies/{study_id}")["ParentPatient"]
        [raw] = [j for j in open_sync_app(info.db_url).job_manager.list_jobs() if j.id == job.id]
        assert raw.lock == patient_lock(secret, patient) and raw.task_kwargs == {"node": "intake",
                                                                                  "study_id": study_id}
        listing = repr(db.jobs(limit=None))
        assert study.patient_id not in listing and "BATCH^" not in listing
    assert len([j for j in db.jobs(limit=None)]) == len(studies)  # one job per study
    log = (settings.home / "intake" / "orthanc.log").read_text(errors="replace")
    assert "anonlib plugin loaded" in log and "could not queue" not in log


def test_plugin_rest_routes(constellation: tuple[ConstellationSettings, ConstellationInfo],
                            studies: list[BatchStudy], db: JobsDb) -> None:
    _, info = constellation
    intake = info.intake
    auth = (intake.username, intake.password)
    study_id = _study_id(info, studies[0])
    _wait_for_job(db, study_id)
    answer = httpx.post(f"{intake.url}/anonlib/enqueue", json={"study": study_id}, auth=auth, timeout=30)
    assert answer.status_code == 200
    [queued] = answer.json()["queued"]
    assert queued["study"] == study_id and queued["created"] is False  # the plugin queued it already
    patient = get(intake, f"/studies/{study_id}")["ParentPatient"]
    answer = httpx.post(f"{intake.url}/anonlib/enqueue", json={"patient": patient}, auth=auth, timeout=30)
    assert answer.status_code == 200 and study_id in {q["study"] for q in answer.json()["queued"]}
    for body, code in (({"study": "no-such-study"}, 404), ({"series": "x"}, 400)):
        assert httpx.post(f"{intake.url}/anonlib/enqueue", json=body, auth=auth, timeout=30).status_code == code
    assert httpx.get(f"{intake.url}/anonlib/enqueue", auth=auth, timeout=30).status_code == 405
    assert httpx.post(f"{intake.url}/anonlib/enqueue", json={"study": study_id}, timeout=30).status_code == 401
    listing = httpx.get(f"{intake.url}/anonlib/jobs", params={"status": "todo"}, auth=auth, timeout=30)
    assert listing.status_code == 200
    payload = listing.json()
    assert payload["counts"]["todo"] == len(studies)
    assert {j["study_id"] for j in payload["jobs"]} == {_study_id(info, s) for s in studies}
    assert studies[0].patient_id not in listing.text
    assert httpx.get(f"{intake.url}/anonlib/jobs", params={"status": "bogus"}, auth=auth,
                     timeout=30).status_code == 400


def test_catch_up_follows_the_changes_feed(constellation: tuple[ConstellationSettings, ConstellationInfo],
                                           studies: list[BatchStudy], db: JobsDb, catchup: CatchUp) -> None:
    _, info = constellation
    ids = [_study_id(info, s) for s in studies]
    for study_id in ids:
        _wait_for_job(db, study_id)
    _clear_jobs(info)  # as if the plugin had missed every event
    delivered = get(info.intake, f"/studies/{ids[0]}")  # ...and one study was delivered as it is
    with open_store(info.db_url) as store:
        store.record_delivery(DeliveryRecord("intake", ids[0], delivered["LastUpdate"], studies[0].instances,
                                             studies[0].instances, 0, "2.25.1", "done"))
    report = catchup.follow_changes("intake")
    assert report.queued == len(ids) - 1 and report.changes_read > 0
    assert {j.study_id for j in db.jobs(limit=None)} == set(ids[1:])
    last = get(info.intake, "/changes", last="")["Last"]
    assert db.cursor_position("intake") == last
    again = catchup.follow_changes("intake")
    assert (again.changes_read, again.queued) == (0, 0)
    # a feed that restarted (new index database): the cursor goes back to the start
    engine = make_engine(info.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE anonlib_change_cursor SET last_seq = :s"), {"s": last + 1000})
    engine.dispose()
    restarted = catchup.follow_changes("intake")
    assert restarted.changes_read > 0 and restarted.queued == 0  # all queued already
    assert db.cursor_position("intake") == last


def test_reconcile_finds_a_study_that_became_stable_while_intake_was_down(
        constellation_factory: Factory, tmp_path: Path) -> None:
    """Restarted before StableAge, Orthanc calls the study stable at once and no StableStudy ever
    comes: the plugin queues it when Orthanc starts (the study job waits for its quiet time), and
    the workers' reconcile would find it too — once its quiet time is over, not before."""
    settings, info = constellation_factory(ANONLIB_STABLE_AGE="6")
    [study] = write_batch(tmp_path, studies=1, patients=1, instances=2, seed=11)
    storescu(info, [study.folder])
    assert stop_pidfile(settings.home / "intake" / "orthanc.pid")  # before StableAge elapses
    info = manage.up(settings)  # restarts intake; no STABLE_STUDY will ever come for it
    [study_id] = wait_stable(info.intake, timeout=60)  # Orthanc's word, at once
    db = JobsDb(info.db_url)
    app = open_sync_app(info.db_url)
    source = HttpSource(info.intake)
    try:
        job = _wait_for_job(db, study_id)  # queued by the plugin on ORTHANC_STARTED
        assert job.status == "todo"
        _clear_jobs(info)  # as if the plugin had missed that too
        deadline = time.monotonic() + 30
        while not (state := source.study(study_id)) or not state.stable:  # its quiet time
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert not [c for c in get(info.intake, "/changes", since=0, limit=1000)["Changes"]
                    if c["ChangeType"] == "StableStudy"]
        catchup = CatchUp(db, StudyQueue(app, _secret(info)), {"intake": source})
        assert catchup.follow_changes("intake").queued == 0
        report = catchup.reconcile("intake")
        assert (report.considered, report.queued) == (1, 1)
        [job] = db.jobs(limit=None)
        assert (job.study_id, job.status) == (study_id, "todo")
        assert catchup.reconcile("intake").queued == 0  # it waits already
    finally:
        source.close()
        app.close()
        db.close()
