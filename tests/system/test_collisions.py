"""Headline scenarios of the constellation, end to end with real processes:

* collisions — 20 studies of overlapping patients arrive by C-STORE (automatic path: plugin
  on STABLE_STUDY) while a batch of 20 more is enqueued by `anonlib enqueue`, with two workers:
  40/40 delivered, 0 failed, each exactly once;
* a study that arrives while the workers are stopped is processed after they restart;
* a study that becomes stable while intake Orthanc is down (no STABLE_STUDY is ever emitted for
  it) is still processed after intake restarts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from anonlib.constellation import ConstellationInfo, ConstellationSettings, manage
from anonlib.constellation.processes import stop_pidfile
from anonlib.store import open_store
from anonlib.synthetic.batch import write_batch
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import count_instances, get, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def anonlib(settings: ConstellationSettings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_PG_ADMIN": settings.pg_admin_url,
           "ANONLIB_DB_PREFIX": settings.db_prefix}
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def job_statuses(db_url: str) -> dict[str, int]:
    """Job counts by status, straight from the queue's table."""
    url = make_url(db_url).set(drivername="postgresql+psycopg2")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select status::text, count(*) from procrastinate_jobs group by 1"))
            return {status: count for status, count in rows}
    finally:
        engine.dispose()


def upload(info: ConstellationInfo, folder: Path) -> None:
    intake = info.intake
    for path in sorted(folder.iterdir()):
        httpx.post(f"{intake.url}/instances", content=path.read_bytes(),
                   auth=(intake.username, intake.password), timeout=60).raise_for_status()


def intake_study_id(info: ConstellationInfo, study_uid: str) -> str:
    intake = info.intake
    found = httpx.post(f"{intake.url}/tools/lookup", content=study_uid.encode(),
                       auth=(intake.username, intake.password)).json()
    return next(item["ID"] for item in found if item["Type"] == "Study")


def test_automatic_and_batch_runs_never_collide(constellation_factory: Factory, tmp_path: Path) -> None:
    settings, info = constellation_factory(ANONLIB_STABLE_AGE="3")
    auto = write_batch(tmp_path / "auto", studies=20, patients=8, seed=1)
    batch = write_batch(tmp_path / "batch", studies=20, patients=8, seed=1, first=20)  # same patients
    for study in batch:
        upload(info, study.folder)  # already on intake; their STABLE_STUDY events will come too
    info = manage.up(settings, workers=2)
    assert len(info.workers) == 2

    arrivals = threading.Thread(target=lambda: storescu(info, [s.folder for s in auto]))
    arrivals.start()
    for study in batch:  # the batch run, overlapping the automatic one
        enqueued = anonlib(settings, "enqueue", "--study", intake_study_id(info, study.study_uid))
        assert enqueued.returncode == 0, enqueued.stderr
    arrivals.join()

    waited = anonlib(settings, "jobs", "wait", "--timeout", "420")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "failed" not in job_statuses(info.db_url)

    deliveries = open_store(info.db_url).deliveries("intake")
    assert len(deliveries) == 40 and {d.status for d in deliveries.values()} == {"done"}
    assert Counter(d.runs for d in deliveries.values()) == {1: 40}  # each exactly once
    assert count_instances(info.research) == sum(s.instances for s in auto + batch)
    pseudonyms = {s["MainDicomTags"]["PatientID"] for s in get(info.research, "/patients", expand="")}
    assert len(pseudonyms) == 8  # one pseudonym per patient, whichever path came first
    manage.down(settings)


def test_a_study_arriving_while_workers_are_stopped_is_processed_later(
        constellation_factory: Factory, tmp_path: Path) -> None:
    settings, info = constellation_factory()
    (study,) = write_batch(tmp_path / "s", studies=1, patients=1, seed=2)
    storescu(info, [study.folder])
    wait_stable(info.intake)
    time.sleep(2)  # the plugin has enqueued it by now; nobody is working
    assert open_store(info.db_url).deliveries("intake") == {}
    info = manage.up(settings, workers=1)
    waited = anonlib(settings, "jobs", "wait", "--timeout", "180")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert count_instances(info.research) == study.instances


def test_a_study_that_became_stable_while_intake_was_down_is_processed(
        constellation_factory: Factory, tmp_path: Path) -> None:
    settings, info = constellation_factory(ANONLIB_STABLE_AGE="5")
    (study,) = write_batch(tmp_path / "s", studies=1, patients=1, seed=3)
    storescu(info, [study.folder])
    stop_pidfile(settings.home / "intake" / "orthanc.pid")  # before StableAge: no event, ever
    time.sleep(6)
    info = manage.up(settings, workers=1)  # intake back (it reports the study stable), a worker
    waited = anonlib(settings, "jobs", "wait", "--timeout", "180")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert count_instances(info.research) == study.instances
    deliveries = open_store(info.db_url).deliveries("intake")
    assert [d.status for d in deliveries.values()] == ["done"]
