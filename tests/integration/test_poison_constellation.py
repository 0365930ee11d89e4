"""Issue 11: poison instances sent by C-STORE into a real intake are stopped at the engine —
rejected with their reason, the rest of their study delivered and the study recorded partial —
and never reach (or crash) the research Orthanc.

Nesting past the engine's depth limit (32) but within intake's guard (40) is taken by intake and
rejected by the study job; deeper nesting, which would crash Orthanc 1.10.1 whenever a REST call
parses it (48 levels and more), is refused at C-STORE with a failure status for the sender, and
intake lives on. (Until intake's Lua ReceivedInstanceFilter was removed, Orthanc pushed each
received instance into a Lua table and 33-50 nested sequences crashed intake in liblua5.3.)"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import httpx
import pydicom
import pytest

from anonlib.jobs.tasks import deidentify_study  # noqa: F401 - the task's module imports cleanly
from anonlib.profile import SiteProfile
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.store import open_store
from anonlib.studyjob import JobContext, process_study
from anonlib.synthetic.malformed import many_items, nested_content, path_like, un_text, with_uid
from tests.fixtures.figures import Figures
from tests.orthanc_helpers import clear, count_instances, get, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_poison_instances_are_rejected_and_the_rest_of_the_study_delivered(constellation, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          figures: Figures) -> None:
    _, info = constellation
    folder = tmp_path / "send"
    folder.mkdir()
    files = {
        "good-1": with_uid("2.25.1001"), "good-2": with_uid("2.25.1002"),
        "text-as-un": un_text(70_000, uid="2.25.1003"),  # handled: de-identified and delivered
        "many-items": many_items(3000, uid="2.25.1004"),  # 3000 references: handled
        "nested-36": nested_content(36, uid="2.25.1006"),  # past the engine's depth limit (32)
        "huge-text": un_text(2 << 20, uid="2.25.1005"),  # 2 MiB of text: over the limit
    }
    for name, data in files.items():
        (folder / f"{name}.dcm").write_bytes(data)
    clear(info.intake)
    research_before = count_instances(info.research)
    storescu(info, [folder])
    [study] = wait_stable(info.intake)
    assert count_instances(info.intake) == len(files)  # intake took them all

    context = JobContext.create(info, profile=SiteProfile(burned_in=BurnedInPolicy(mode="quarantine")),
                                delete_after_delivery=True)
    context.audit_pixels = "off"  # OCR is not what this test is about
    result = process_study(info, study, context=context)

    assert get(info.intake, "/system")["Name"] == "intake"  # intake took 36 levels and lives
    assert result.status == "done" and result.rejected == 2 and result.released == 4
    assert result.reason.startswith("partial: 2 of 6 instances not delivered: ")
    assert "nesting too deep: sequences nested more than 32 levels" in result.reason
    assert "value too large: (0008,1030) holds 2097154 bytes of text (limit 1 MiB)" in result.reason
    assert count_instances(info.intake) == len(files)  # partial: kept whole on intake, deletion asked or not
    assert get(info.research, "/system")["Name"]  # research is alive
    assert count_instances(info.research) == research_before + 4
    record = open_store(info.db_url).deliveries("intake")[study]
    assert record.status == "done" and record.reason == result.reason and record.released == 4
    figures.record("malformed", "C-STORE", files=len(files), rejected=result.rejected, delivered=result.released,
                   unnamed=0, research_alive=1)


def test_nesting_that_would_crash_orthanc_is_refused_at_c_store(constellation, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 figures: Figures) -> None:
    settings, info = constellation
    clear(info.intake)
    deep, fine = tmp_path / "deep.dcm", tmp_path / "fine.dcm"
    deep.write_bytes(nested_content(50, uid="2.25.2001"))
    fine.write_bytes(with_uid("2.25.2002"))
    intake = info.intake
    sent = subprocess.run(["storescu", "-v", "--no-halt", "-aet", info.scu_aet, "-aec", intake.aet, "-R", intake.dicom_host,
                           str(intake.dicom_port), str(deep), str(fine)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TCP_NODELAY": "1"})
    told = [line for line in (sent.stdout + sent.stderr).splitlines() if "Received Store Response" in line]
    assert len(told) == 2 and "Refused" in told[0] and "Success" in told[1], told  # the sender is told
    for _ in range(3):  # what would parse a stored instance again: there is none to parse
        assert get(intake, "/system")["Name"] == "intake"
        [instance] = get(intake, "/instances")
        assert get(intake, f"/instances/{instance}/tags")["0008,0018"]["Value"] == "2.25.2002"
    log = (settings.home / "intake" / "orthanc.log").read_text(errors="replace")
    assert "refused: nesting too deep: sequences nested more than 40 levels" in log
    assert "2.25.2001" not in log  # the refusal names the limit, never the instance
    figures.record("malformed", "C-STORE refused at intake", files=1, unnamed=0, intake_alive=1)


def test_a_study_whose_uid_is_a_path_is_delivered_on_the_first_attempt(constellation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """StudyInstanceUID ``..\\..\\windows`` (a backslash: three values of a single-valued UID)
    was uploaded, never found on research by its UID and retried 8 times as transient; the
    engine maps it to one UID, so research holds the study after the job's first run."""
    _, info = constellation
    clear(info.intake)
    path = tmp_path / "windows.dcm"
    path.write_bytes(path_like("StudyInstanceUID", "..\\..\\windows", uid="2.25.3001"))
    storescu(info, [path])
    [study] = wait_stable(info.intake)
    context = JobContext.create(info)
    context.audit_pixels = "off"
    result = process_study(info, study, context=context)  # UploadNotKept here would mean a retry
    assert result.status == "done" and result.released == 1 and result.rejected == 0
    assert result.new_study_uid.startswith("2.25.") and "\\" not in result.new_study_uid
    research = info.research
    found = httpx.post(f"{research.url}/tools/lookup", content=result.new_study_uid.encode(),
                       auth=(research.username, research.password), timeout=60).json()
    [research_study] = [item["ID"] for item in found if item["Type"] == "Study"]
    assert len(get(research, f"/studies/{research_study}/instances")) == 1


def test_one_study_uid_under_two_patients_is_delivered_twice(constellation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A damaged PatientID (a flipped byte) puts one StudyInstanceUID under two patients: intake
    and research each hold two Orthanc studies with that UID; each job verifies its own upload
    (found in the research study that holds it, not whichever study the UID finds first)."""
    _, info = constellation
    folder = tmp_path / "two"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(with_uid("2.25.4001"))
    other = pydicom.dcmread(io.BytesIO(with_uid("2.25.4002")))
    other.PatientID = str(other.PatientID) + "X"
    other.save_as(folder / "b.dcm", enforce_file_format=True)
    clear(info.intake)
    research_before = count_instances(info.research)
    storescu(info, [folder])
    studies = wait_stable(info.intake)
    assert len(studies) == 2
    context = JobContext.create(info, profile=SiteProfile(burned_in=BurnedInPolicy(mode="quarantine")))
    context.audit_pixels = "off"
    for study in studies:
        result = process_study(info, study, context=context)
        assert result.status == "done" and result.released == 1, result
    assert count_instances(info.research) == research_before + 2
