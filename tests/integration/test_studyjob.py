"""The study job against a real constellation: C-STORE into intake, de-identify, upload and
verify on research, write the disk tree, forward to a destination, record the delivery."""

from __future__ import annotations

import copy
import io
import re
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest

from anonlib.constellation import ConstellationInfo, manage
from anonlib.constellation.processes import stop_pidfile
from anonlib.folder_run import RunSettings, run_folder
from anonlib.store import open_store
from anonlib.studyjob import JobContext, NotStable, StudyJobError, TransientError, process_study
from anonlib.synthetic import Corpus
from tests.orthanc_helpers import clear, count_instances, get, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _valid(corpus: Corpus) -> list[Path]:
    return [f.path for f in corpus.files if f.expect != "reject"]


@pytest.fixture(scope="module")
def delivered(constellation, corpus: Corpus):  # type: ignore[no-untyped-def]
    """The corpus C-STOREd into intake and every study processed once."""
    settings, info = constellation
    storescu(info, _valid(corpus))
    studies = wait_stable(info.intake)
    results = {sid: process_study(info, sid) for sid in studies}
    return settings, info, results


def test_every_study_is_delivered_and_verified(delivered, corpus: Corpus) -> None:  # type: ignore[no-untyped-def]
    _, info, results = delivered
    expected_released = sum(1 for f in corpus.files if f.expect == "deidentify")
    expected_quarantined = sum(1 for f in corpus.files if f.expect == "quarantine")
    assert all(r.status == "done" and r.rejected == 0 for r in results.values())
    assert sum(r.released for r in results.values()) == expected_released
    assert sum(r.quarantined for r in results.values()) == expected_quarantined
    assert count_instances(info.research) == expected_released
    assert count_instances(info.node("dest")) == expected_released  # forwarded by C-STORE
    assert all(r.forwarded == ["dest"] for r in results.values())
    deliveries = open_store(info.db_url).deliveries("intake")
    assert set(deliveries) == set(results) and {d.status for d in deliveries.values()} == {"done"}


def test_same_result_as_the_folder_cli(delivered, corpus: Corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Given the same lookup database, `anonlib deidentify` on the original files gives the same
    pseudonyms, UIDs and paths as the constellation."""
    _, info, _ = delivered
    export = Path(info.export_dir)
    folder = tmp_path / "cli"
    source = tmp_path / "src"
    source.mkdir()
    for index, path in enumerate(_valid(corpus)):
        (source / f"{index:03d}.dcm").write_bytes(path.read_bytes())
    run_folder(RunSettings(source, folder, db_url=info.db_url))
    ours = sorted(p.relative_to(export) for p in export.rglob("*.dcm"))
    theirs = sorted(p.relative_to(folder) for p in folder.rglob("*.dcm"))
    assert ours == theirs and len(ours) == sum(1 for f in corpus.files if f.expect == "deidentify")
    columns = lambda p: sorted(line.split(",")[:9] for line in p.read_text().splitlines())  # noqa: E731
    assert columns(export / "manifest.csv") == columns(folder / "manifest.csv")


def test_research_node_holds_no_planted_value(delivered, corpus: Corpus) -> None:  # type: ignore[no-untyped-def]
    _, info, _ = delivered
    needles = [re.compile(re.escape(v.lower().encode())) for v in corpus.phi_values()
               if len(v) >= 6 or (len(v) >= 3 and not v.replace(".", "").isdigit())]
    for instance in get(info.research, "/instances"):
        blob = get(info.research, f"/instances/{instance}/file").lower()
        assert not [n.pattern for n in needles if n.search(blob)]


def test_running_again_changes_nothing(delivered) -> None:  # type: ignore[no-untyped-def]
    _, info, results = delivered
    before = count_instances(info.research), count_instances(info.node("dest"))
    manifest = (Path(info.export_dir) / "manifest.csv").read_bytes()
    study = next(iter(results))
    assert process_study(info, study).status == "unchanged"  # already delivered as it is
    again = process_study(info, study, force=True)
    assert again.status == "done" and again.released == results[study].released
    assert open_store(info.db_url).deliveries("intake")[study].runs == 2
    assert (count_instances(info.research), count_instances(info.node("dest"))) == before
    assert (Path(info.export_dir) / "manifest.csv").read_bytes() == manifest


def test_audit_of_the_research_node_against_intake(delivered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`anonlib audit research --originals intake` on the delivered studies passes, selecting a
    study or a patient of research by its Orthanc ID."""
    import json
    import os
    import subprocess
    import sys

    settings, info, _ = delivered
    env = {**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_PG_ADMIN": settings.pg_admin_url,
           "ANONLIB_DB_PREFIX": settings.db_prefix}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonlib.cli", "audit", "research", "--originals", "intake",
                               "--db", info.db_url, *args], capture_output=True, text=True, env=env, timeout=600)

    everything = cli("--no-conformance", "--json", str(tmp_path / "all.json"))
    assert everything.returncode == 0, everything.stdout + everything.stderr
    summary = json.loads((tmp_path / "all.json").read_text())
    assert summary["passed"] and summary["instances"] == count_instances(info.research)
    assert summary["with_originals"] == summary["instances"]  # every original found on intake
    patient = get(info.research, "/patients")[0]
    one = cli("--patient", patient)
    assert one.returncode == 0, one.stdout
    study = get(info.research, f"/patients/{patient}/studies")[0]["ID"]
    assert cli("--study", study, "--no-conformance").returncode == 0


def test_a_late_instance_joins_the_same_deidentified_study(delivered) -> None:  # type: ignore[no-untyped-def]
    _, info, results = delivered
    study = next(s for s, r in results.items() if r.released >= 3)
    first = get(info.intake, f"/studies/{study}/instances")[0]["ID"]
    late = pydicom.dcmread(io.BytesIO(get(info.intake, f"/instances/{first}/file")))
    late = copy.deepcopy(late)
    late.SOPInstanceUID = late.SOPInstanceUID + ".999"
    late.file_meta.MediaStorageSOPInstanceUID = late.SOPInstanceUID
    buffer = io.BytesIO()
    late.save_as(buffer, enforce_file_format=True)
    import httpx

    intake = info.intake
    httpx.post(f"{intake.url}/instances", content=buffer.getvalue(),
               auth=(intake.username, intake.password)).raise_for_status()
    research_before = count_instances(info.research)
    with pytest.raises(NotStable, match="not yet stable"):  # still arriving: nothing delivered
        process_study(info, study)
    assert count_instances(info.research) == research_before
    wait_stable(info.intake)
    grown = process_study(info, study)
    assert grown.released == results[study].released + 1
    assert grown.new_study_uid == results[study].new_study_uid  # the same de-identified study
    assert count_instances(info.research) == research_before + 1  # no duplicates
    record = open_store(info.db_url).deliveries("intake")[study]
    assert record.instances == grown.instances


def test_an_unknown_destination_is_a_permanent_error(delivered) -> None:  # type: ignore[no-untyped-def]
    _, info, results = delivered
    with pytest.raises(StudyJobError, match="not configured"):
        process_study(replace(info, destinations=["nowhere"]), next(iter(results)), force=True)


def test_a_destination_that_is_down_is_transient_and_recovers(delivered) -> None:  # type: ignore[no-untyped-def]
    settings, info, results = delivered
    study = next(iter(results))
    before = open_store(info.db_url).deliveries("intake")[study]
    stop_pidfile(settings.home / "dest" / "orthanc.pid")
    with pytest.raises(TransientError, match="forward to dest"):
        process_study(info, study, force=True)
    assert open_store(info.db_url).deliveries("intake")[study] == before  # not marked again
    restarted = manage.up(settings)  # brings dest back on the same ports
    assert restarted.node("dest").url == info.node("dest").url
    assert process_study(restarted, study, force=True).forwarded == ["dest"]


def test_a_deleted_study_is_gone_not_failed(constellation) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    assert process_study(info, "00000000-00000000-00000000-00000000-00000000").status == "gone"


def test_delete_after_delivery_removes_the_identified_study(constellation, corpus: Corpus) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    one = next(f.path for f in corpus.files if f.kind == "MR")
    clear(info.intake)
    storescu(info, [one])
    study = wait_stable(info.intake)[0]
    context = JobContext.create(info, delete_after_delivery=True)
    assert process_study(info, study, context=context).status == "done"
    assert get(info.intake, "/studies") == []


def test_info_is_required_for_unknown_nodes(constellation) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    from anonlib.errors import ConfigError

    with pytest.raises(ConfigError):
        process_study(info, "x", node="nosuchnode")


def test_constellation_description_round_trips(constellation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = constellation
    loaded = ConstellationInfo.load(settings.info_path)
    loaded.save(tmp_path / "copy.json")
    assert ConstellationInfo.load(tmp_path / "copy.json") == loaded
    assert set(loaded.nodes) == {"intake", "research", "dest"} and loaded.destinations == ["dest"]


def test_a_study_that_fails_the_audit_is_held(constellation, corpus: Corpus) -> None:  # type: ignore[no-untyped-def]
    """A profile that keeps the patient's name produces output the audit refuses: the study is
    held — not uploaded, not written, not forwarded — and the reason is recorded."""
    from anonlib.profile import parse_site_profile

    _, info = constellation
    one = next(f.path for f in corpus.files if f.kind == "CT" and f.patient == "patient-2")
    clear(info.intake)
    storescu(info, [one])
    study = wait_stable(info.intake)[0]
    before = (count_instances(info.research), count_instances(info.node("dest")),
              sorted(Path(info.export_dir).rglob("*.dcm")))
    context = JobContext.create(info, profile=parse_site_profile({"actions": {"PatientName": "K"}}))
    held = process_study(info, study, context=context)
    assert held.status == "held" and "leak/A names" in held.reason
    assert held.released == 0 and held.forwarded == []
    after = (count_instances(info.research), count_instances(info.node("dest")),
             sorted(Path(info.export_dir).rglob("*.dcm")))
    assert after == before
    record = open_store(info.db_url).deliveries("intake")[study]
    assert record.status == "held" and record.reason == held.reason
    planted = next(p for p in corpus.patients if p.label == "patient-2").values["A_names"]
    assert not [name for name in planted if name.lower() in held.reason.lower()]  # categories only



def test_research_is_verified_first_and_a_retry_reuses_the_kept_result(constellation, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Research down: nothing reaches the export folder, and the result that passed the gate is
    kept (0700); a retry delivers it without de-identifying (or auditing) again; once delivered
    it is gone."""
    import stat

    from anonlib.synthetic.batch import write_batch

    settings, info = constellation
    [made] = write_batch(tmp_path / "batch", studies=1, patients=1, instances=2, seed=61)
    clear(info.intake)
    storescu(info, [made.folder])
    [study] = wait_stable(info.intake)
    context = JobContext.create(info)
    exported = sorted(Path(info.export_dir).rglob("*.dcm"))
    kept = Path(info.home) / "spool" / "intake" / study
    stop_pidfile(settings.home / "research" / "orthanc.pid")
    try:
        with pytest.raises(TransientError, match="research"):
            process_study(info, study, context=context)
        assert sorted(Path(info.export_dir).rglob("*.dcm")) == exported  # research comes first
        assert kept.is_dir() and stat.S_IMODE(kept.stat().st_mode) == 0o700

        def again(*args: object, **kwargs: object) -> None:
            raise AssertionError("the study was de-identified again")

        monkeypatch.setattr(context.processor, "deidentify_bytes", again)
        with pytest.raises(TransientError, match="research"):
            process_study(info, study, context=context)
    finally:
        restarted = manage.up(settings)
    done = process_study(restarted, study, context=context)
    assert (done.status, done.released, done.forwarded) == ("done", 2, ["dest"])
    assert len(sorted(Path(info.export_dir).rglob("*.dcm"))) == len(exported) + 2 and not kept.exists()


def test_a_destination_that_drops_instances_silently_is_a_permanent_error(constellation, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Orthanc answers "Success" to a C-STORE its filter drops: a forward that "succeeded" is
    checked against the destination when it is a node of the constellation."""
    import anonlib.studyjob as studyjob
    from anonlib.synthetic.batch import write_batch

    _, info = constellation
    [made] = write_batch(tmp_path / "batch", studies=1, patients=1, instances=2, seed=67)
    clear(info.intake)
    storescu(info, [made.folder])
    [study] = wait_stable(info.intake)
    monkeypatch.setattr(studyjob, "forward", lambda *args, **kwargs: None)  # "sent", never arrived
    with pytest.raises(StudyJobError, match="dest: holds 0 of 2 instances after a forward"):
        process_study(info, study)
    assert study not in open_store(info.db_url).deliveries("intake")  # not recorded as delivered
