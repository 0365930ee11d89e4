"""Held studies against a real constellation: the workers run a site profile that keeps the
patient's name, so the audit gate holds every study; ``anonlib jobs wait`` exits 5 and says how
many and how to see them, ``jobs list --status held`` lists them with the reason (categories and
counts, no value), ``constellation status`` counts them; after the fix (the workers restarted
with the default profile) ``jobs retry --held`` re-runs them and they are delivered. And the
gate fails closed: without dciodvfy on PATH a study's audit is INCOMPLETE and the study held. And
the gate reads pixels: a study released with the patient's name burned in is held."""

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

SEED = 23


def _env(settings: ConstellationSettings, **extra: str) -> dict[str, str]:
    return {**os.environ, "ANONLIB_HOME": str(settings.home), "TCP_NODELAY": "1",
            "ANONLIB_RETRY_BASE_SECONDS": "1", **extra}


def _cli(settings: ConstellationSettings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True,
                          env=_env(settings), timeout=timeout)


def _start_worker(settings: ConstellationSettings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "anonlib.cli", "worker", "--interval", "1",
                                 "--reconcile-interval", "5"], stdout=out, stderr=subprocess.STDOUT,
                                env=_env(settings, **extra))


def _stop_worker(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=60)


def test_held_studies_are_reported_listed_counted_and_retried(constellation_factory: Factory,
                                                              tmp_path: Path) -> None:
    settings, info = constellation_factory()
    keeps_names = tmp_path / "keeps-names.yaml"
    keeps_names.write_text("name: keeps-names\nactions:\n  PatientName: K\n")
    batch = write_batch(tmp_path / "batch", studies=2, patients=2, instances=2, seed=SEED)
    storescu(info, [s.folder for s in batch])
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log, ANONLIB_PROFILE=str(keeps_names))
    try:
        waited = _cli(settings, "jobs", "wait", "--timeout", "240")
    finally:
        assert _stop_worker(worker) == 0
    assert waited.returncode == 5, waited.stdout + waited.stderr + log.read_text(errors="replace")
    assert "2 studies held by the audit gate" in waited.stderr
    assert "anonlib jobs list --status held" in waited.stderr and "nothing pending, but 2 held" in waited.stdout
    assert count_instances(info.research) == 0  # nothing left intake

    listing = _cli(settings, "jobs", "list", "--status", "held")
    assert listing.returncode == 0, listing.stderr
    lines = [line for line in listing.stdout.splitlines() if line.startswith("held ")]
    assert len(lines) == 2 and all("audit failed: " in line and "leak/A names (" in line for line in lines)
    status = _cli(settings, "constellation", "status")
    assert "2 studies held by the audit gate" in status.stdout, status.stdout + status.stderr

    # the fix: the workers run the default profile again; the held studies are re-run, forced
    worker = _start_worker(settings, log)
    try:
        retried = _cli(settings, "jobs", "retry", "--held")
        assert retried.returncode == 0 and "2 of 2 held studies queued again" in retried.stdout, retried.stderr
        waited_again = _cli(settings, "jobs", "wait", "--timeout", "240")
    finally:
        assert _stop_worker(worker) == 0
    assert waited_again.returncode == 0, waited_again.stdout + waited_again.stderr + log.read_text(errors="replace")
    assert count_instances(info.research) == 4
    assert "no study held" in _cli(settings, "jobs", "list", "--status", "held").stdout

    everything = waited.stdout + waited.stderr + listing.stdout + status.stdout + log.read_text(errors="replace")
    for study in batch:
        assert study.patient_id not in everything and study.study_uid not in everything
    assert "BATCH^" not in everything and "PATIENT0000" not in everything


def test_the_gate_holds_a_study_whose_audit_is_incomplete(constellation_factory: Factory, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.store import open_store
    from anonlib.studyjob import JobContext, process_study

    _, info = constellation_factory()
    [study] = write_batch(tmp_path / "batch", studies=1, patients=1, instances=2, seed=SEED + 1)
    storescu(info, [study.folder])
    [study_id] = wait_stable(info.intake)
    context = JobContext.create(info)
    monkeypatch.setenv("PATH", str(tmp_path))  # dciodvfy is not on it: the gate cannot check conformance
    held = process_study(info, study_id, context=context)
    assert held.status == "held" and held.released == 0
    assert held.reason == "audit incomplete: conformance/dciodvfy (1)"
    assert count_instances(info.research) == 0
    with open_store(info.db_url) as store:
        record = store.deliveries("intake")[study_id]
    assert record.status == "held" and record.reason == held.reason


def test_the_gate_holds_a_study_released_with_the_patients_name_burned_in(constellation_factory: Factory,
                                                                          tmp_path: Path) -> None:
    """A site that trusts its pixels (``burned_in: allow``) releases a screen capture unread; the
    gate's own OCR reads the patient's name and ID in it and holds the study (boxes and categories
    in the reason, never the text). Under the default profile the engine masks the text and the
    same study is delivered."""
    from anonlib.profile import parse_site_profile
    from anonlib.studyjob import JobContext, process_study
    from tests.burned_in import burned_in_dataset

    _, info = constellation_factory()
    ds = burned_in_dataset("gate")
    ds.PatientName, ds.PatientID = "DOE^JANE", "4471902"  # the text burned into its pixels
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "burned.dcm", enforce_file_format=True)
    storescu(info, [tmp_path / "in"])
    [study_id] = wait_stable(info.intake)
    trusting = JobContext.create(info, profile=parse_site_profile({"name": "trusts-pixels", "burned_in": "allow"}))
    trusting.audit_conformance = False
    held = process_study(info, study_id, context=trusting)
    assert held.status == "held" and held.released == 0 and count_instances(info.research) == 0
    assert held.reason.startswith("audit failed: ") and "pixels/A names (" in held.reason, held.reason
    assert "DOE" not in held.reason and "4471902" not in held.reason
    masking = JobContext.create(info)
    masking.audit_conformance = False
    done = process_study(info, study_id, context=masking, force=True)
    assert done.status == "done" and done.released == 1, done.reason
    assert count_instances(info.research) == 1


def test_a_partial_study_is_counted_and_every_rejection_listed(constellation_factory: Factory,
                                                               tmp_path: Path) -> None:
    """Issue 11: a study of 2 good and 6 poison instances (nested past the engine's limit) is
    delivered partially by a worker deleting after delivery: ``jobs wait`` says so (exit 0),
    ``jobs list --status partial`` names all 6 rejected instances with their reason (the study's
    reason names 5), ``constellation status`` counts it, and intake keeps the whole study."""
    from anonlib.synthetic.malformed import nested_content, with_uid
    from tests.orthanc_helpers import get

    settings, info = constellation_factory()
    folder = tmp_path / "send"
    folder.mkdir()
    for n in range(2):
        (folder / f"good-{n}.dcm").write_bytes(with_uid(f"2.25.4100{n}"))
    for n in range(6):
        (folder / f"deep-{n}.dcm").write_bytes(nested_content(36, uid=f"2.25.4200{n}"))
    storescu(info, [folder])
    wait_stable(info.intake)
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log, ANONLIB_DELETE_AFTER_DELIVERY="1", ANONLIB_AUDIT_PIXELS="off")
    try:
        waited = _cli(settings, "jobs", "wait", "--timeout", "240")
    finally:
        assert _stop_worker(worker) == 0
    assert waited.returncode == 0, waited.stdout + waited.stderr + log.read_text(errors="replace")
    assert "nothing pending, 1 delivered partially" in waited.stdout
    assert "1 study delivered partially" in waited.stderr and "anonlib jobs list --status partial" in waited.stderr
    assert count_instances(info.research) == 2 and count_instances(info.intake) == 8  # kept whole

    listing = _cli(settings, "jobs", "list", "--status", "partial")
    assert listing.returncode == 0, listing.stderr
    rejected = [line.split()[1] for line in listing.stdout.splitlines() if line.startswith("  rejected ")]
    deep = {i for i in get(info.intake, "/instances")
            if get(info.intake, f"/instances/{i}/simplified-tags")["SOPInstanceUID"].startswith("2.25.4200")}
    assert sorted(rejected) == sorted(deep) and len(deep) == 6  # every one, by Orthanc ID
    assert listing.stdout.count("nesting too deep") == 6
    assert "2 of 8 instances released, 6 rejected" in listing.stdout
    status = _cli(settings, "constellation", "status")
    assert "1 study delivered partially" in status.stdout, status.stdout + status.stderr
    everything = waited.stdout + waited.stderr + listing.stdout + status.stdout
    assert "2.25.4200" not in everything and "2.25.4100" not in everything  # Orthanc IDs only
