"""Issue 11: poison instances sent by C-STORE into a real intake are stopped at the engine —
rejected with their reason, the rest of their study delivered and the study recorded partial —
and never reach (or crash) the research Orthanc.

The 50-level nesting also proves intake survives it over C-STORE: until intake's Lua
ReceivedInstanceFilter was removed (senders are now checked by Orthanc at association), Orthanc
pushed each received instance into a Lua table and 33-50 nested sequences crashed intake in
liblua5.3 before any job ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonlib.jobs.tasks import deidentify_study  # noqa: F401 - the task's module imports cleanly
from anonlib.profile import SiteProfile
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.store import open_store
from anonlib.studyjob import JobContext, process_study
from anonlib.synthetic.malformed import many_items, nested_content, un_text, with_uid
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
        "nested-50": nested_content(50, uid="2.25.1006"),  # past the depth limit (32); crashed research
        "huge-text": un_text(2 << 20, uid="2.25.1005"),  # 2 MiB of text: over the limit
    }
    for name, data in files.items():
        (folder / f"{name}.dcm").write_bytes(data)
    clear(info.intake)
    research_before = count_instances(info.research)
    storescu(info, [folder])
    [study] = wait_stable(info.intake)
    assert count_instances(info.intake) == len(files)  # intake took them all

    context = JobContext.create(info, profile=SiteProfile(burned_in=BurnedInPolicy(mode="quarantine")))
    context.audit_pixels = "off"  # OCR is not what this test is about
    result = process_study(info, study, context=context)

    assert get(info.intake, "/system")["Name"] == "intake"  # intake took 50 levels and lives
    assert result.status == "done" and result.rejected == 2 and result.released == 4
    assert result.reason.startswith("partial: 2 of 6 instances not delivered: ")
    assert "nesting too deep: sequences nested more than 32 levels" in result.reason
    assert "value too large: (0008,1030) holds 2097154 bytes of text (limit 1 MiB)" in result.reason
    assert get(info.research, "/system")["Name"]  # research is alive
    assert count_instances(info.research) == research_before + 4
    record = open_store(info.db_url).deliveries("intake")[study]
    assert record.status == "done" and record.reason == result.reason and record.released == 4
    figures.record("malformed", "C-STORE", files=len(files), rejected=result.rejected, delivered=result.released,
                   unnamed=0, research_alive=1)
