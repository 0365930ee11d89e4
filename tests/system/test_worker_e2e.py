"""End to end with real processes: C-STORE into intake, ``anonlib worker`` as a subprocess runs
the real study job, ``anonlib jobs wait`` returns 0 once everything is delivered; a study that
arrives while the worker is stopped is processed after it restarts; SIGTERM stops the worker
cleanly. Nothing identifying appears in the listings or the worker's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from anonlib.constellation import ConstellationSettings
from anonlib.synthetic.batch import write_batch
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import count_instances, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 21


def _env(settings: ConstellationSettings) -> dict[str, str]:
    return {**os.environ, "ANONLIB_HOME": str(settings.home), "TCP_NODELAY": "1",
            "ANONLIB_RETRY_BASE_SECONDS": "1"}


def _cli(settings: ConstellationSettings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True,
                          env=_env(settings), timeout=timeout)


def _start_worker(settings: ConstellationSettings, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "anonlib.cli", "worker", "--interval", "1",
                                 "--reconcile-interval", "5"], stdout=out, stderr=subprocess.STDOUT,
                                env=_env(settings))


def _stop_worker(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=60)


def test_worker_delivers_everything_and_jobs_wait_says_so(constellation_factory: Factory, tmp_path: Path) -> None:
    settings, info = constellation_factory()
    batch = write_batch(tmp_path / "batch", studies=3, patients=2, instances=2, seed=SEED)
    storescu(info, [s.folder for s in batch])
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log)
    try:
        waited = _cli(settings, "jobs", "wait", "--timeout", "240")
        assert waited.returncode == 0, waited.stdout + waited.stderr + log.read_text(errors="replace")
        assert count_instances(info.research) == 6
        listing = _cli(settings, "jobs", "list")
        assert listing.returncode == 0
        lines = [line for line in listing.stdout.splitlines() if "succeeded" in line]
        assert len(lines) >= 3 and "failed" not in listing.stdout
    finally:
        assert _stop_worker(worker) == 0  # SIGTERM: clean exit

    # a study arriving while no worker runs waits in the queue (the plugin queued it) ...
    [late] = write_batch(tmp_path / "late", studies=1, patients=2, instances=2, seed=SEED, first=3)
    storescu(info, [late.folder])
    wait_stable(info.intake)
    pending = _cli(settings, "jobs", "wait", "--timeout", "3", "--poll", "0.5")
    assert pending.returncode == 1 and "timeout" in pending.stderr
    # ... and is delivered once a worker runs again
    worker = _start_worker(settings, log)
    try:
        waited = _cli(settings, "jobs", "wait", "--timeout", "240")
        assert waited.returncode == 0, waited.stdout + waited.stderr + log.read_text(errors="replace")
        assert count_instances(info.research) == 8
    finally:
        assert _stop_worker(worker) == 0

    everything = listing.stdout + pending.stdout + pending.stderr + log.read_text(errors="replace")
    for study in [*batch, late]:
        assert study.patient_id not in everything and study.study_uid not in everything
    assert "BATCH^" not in everything
