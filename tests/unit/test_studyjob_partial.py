"""The study job on a partial study, without servers (:mod:`tests.fake_orthanc`): what it
keeps on intake, which per-instance failures reject one instance instead of failing the study,
which delivery failures are not worth eight attempts, and where every rejection reason ends
up (issue 11, Deliver items 2 and 4)."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.engine import Outcome
from anonlib.pipeline import InstanceProcessor
from anonlib.profile import SiteProfile, build_plan
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.sinks.folder import FolderSink
from anonlib.store.memory import MemoryStore
from anonlib.studyjob import JobContext, StudyResult, TransientError, _quarantine_dir, process_study
from tests.fake_orthanc import FakeNode, info_for, install

STUDY = "0a0a0a0a-0a0a0a0a-0a0a0a0a-0a0a0a0a-0a0a0a0a"
CT = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))


def _instance(uid: str, **values: str) -> bytes:
    ds = copy.deepcopy(CT)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


GOOD = {f"i{n}": _instance(f"2.25.90{n}") for n in range(1, 4)}
POISON = {"i9": b"DICM but not really"}  # rejected by the engine: cannot be read
FACE = {"i8": _instance("2.25.908", RecognizableVisualFeatures="YES")}  # quarantined


@pytest.fixture()
def context(tmp_path: Path) -> JobContext:
    info = info_for(str(tmp_path / "home"), str(tmp_path / "export"), "memory://")
    export = Path(info.export_dir)
    processor = InstanceProcessor(build_plan(SiteProfile(burned_in=BurnedInPolicy(mode="allow"))), MemoryStore(),
                                  FolderSink(export), FolderSink(_quarantine_dir(export)))
    return JobContext(info, processor, delete_after_delivery=True, audit=False)


def _run(monkeypatch: pytest.MonkeyPatch, context: JobContext, instances: dict[str, bytes],
         research: FakeNode | None = None) -> tuple[StudyResult, FakeNode, FakeNode]:
    intake, research = FakeNode("intake"), research or FakeNode("research")
    intake.add_study(STUDY, instances)
    install(monkeypatch, intake, research)
    return process_study(context.info, STUDY, context=context), intake, research


# -- 1. delete after delivery never deletes what was not delivered --------------------------------

def test_a_whole_study_is_deleted_from_intake_after_delivery(monkeypatch: pytest.MonkeyPatch,
                                                             context: JobContext) -> None:
    result, intake, research = _run(monkeypatch, context, GOOD)
    assert result.status == "done" and result.released == 3
    assert len(research.sop_uids()) == 3
    assert intake.deleted_studies == [STUDY] and not intake.studies


@pytest.mark.parametrize("extra, rejected, quarantined", [(POISON, 1, 0), (FACE, 0, 1), ({**POISON, **FACE}, 1, 1)])
def test_a_study_with_rejected_or_quarantined_instances_stays_whole_on_intake(
        monkeypatch: pytest.MonkeyPatch, context: JobContext, extra: dict[str, bytes], rejected: int,
        quarantined: int) -> None:
    """With delete-after-delivery on, the released instances are on research, and the study on
    intake is left as it is: the rejected or quarantined instance is nowhere else (or only in
    the quarantine tree, de-identified), and a later run needs the whole study around it."""
    result, intake, research = _run(monkeypatch, context, {**GOOD, **extra})
    assert result.status == "done" and result.released == 3
    assert (result.rejected, result.quarantined) == (rejected, quarantined)
    assert len(research.sop_uids()) == 3
    assert intake.deleted_studies == [] and intake.deleted_instances == []
    assert intake.studies[STUDY].keys() == {*GOOD, *extra}


# -- 2. every step per instance before delivery rejects that instance, not the study --------------

@pytest.mark.parametrize("method", ["place", "record_placed"])
def test_an_unexpected_error_placing_one_instance_rejects_only_that_one(
        monkeypatch: pytest.MonkeyPatch, context: JobContext, tmp_path: Path, method: str) -> None:
    processor = context.processor
    real = getattr(processor, method)
    bad = ""

    def failing(outcome: Outcome, *args: object) -> object:
        nonlocal bad
        if outcome.keys.original_sop_uid == "2.25.902":
            bad = outcome.keys.new_sop_uid
            raise TypeError("value 'Doe^John' is not a str")  # a value in the message: never shown
        return real(outcome, *args)

    monkeypatch.setattr(processor, method, failing)
    result, intake, research = _run(monkeypatch, context, GOOD)
    assert result.status == "done" and (result.released, result.rejected) == (2, 1)
    assert result.reason == "partial: 1 of 3 instances not delivered: i2: internal error (TypeError) (placing it)"
    assert bad and len(research.sop_uids()) == 2 and bad not in research.sop_uids()
    exported = {p.stem for p in (tmp_path / "export").rglob("*.dcm")}
    assert len(exported) == 2 and bad not in exported
    assert processor.store.instance("2.25.902") is None  # no record of an instance never delivered
    assert processor.store.deliveries("intake")[STUDY].reason == result.reason
    assert intake.studies[STUDY].keys() == GOOD.keys()  # partial: kept on intake


# -- 3. a node that accepts an upload and keeps none of it: one retry, not eight --------------------

def test_an_upload_research_accepts_and_does_not_keep_is_tried_again_once_only(
        monkeypatch: pytest.MonkeyPatch, context: JobContext) -> None:
    """Research answers "Success" to every upload and holds nothing (as for a UID it cannot
    look up): UploadNotKept, which the queue retries once — like a node that dropped the
    connection — while a node that is down is retried up to the budget."""
    from procrastinate.jobs import Job

    from anonlib.jobs.app import TASK_NAME
    from anonlib.jobs.retry import StudyRetry
    from anonlib.orthanc.client import UploadNotKept

    research = FakeNode("research", drop_uploads=True)
    with pytest.raises(UploadNotKept, match="research: the uploaded study is not there") as raised:
        _run(monkeypatch, context, GOOD, research)
    assert research.uploads == 3

    def job(attempts: int) -> Job:
        return Job(id=1, queue="studies", lock=None, queueing_lock=None, task_name=TASK_NAME, attempts=attempts)

    strategy = StudyRetry(max_attempts=8, base_seconds=0, cap_seconds=0)
    assert strategy.get_retry_decision(exception=raised.value, job=job(0)) is not None  # tried again once
    assert strategy.get_retry_decision(exception=raised.value, job=job(1)) is None  # then failed for good
    assert strategy.get_retry_decision(exception=TransientError("research: down"), job=job(6)) is not None


def test_some_instances_missing_after_an_upload_are_not_kept_either(
        monkeypatch: pytest.MonkeyPatch, context: JobContext) -> None:
    from anonlib.orthanc.client import UploadNotKept

    research = FakeNode("research", keep_at_most=2)
    with pytest.raises(UploadNotKept, match="research: 1 of 3 uploaded instances are missing"):
        _run(monkeypatch, context, GOOD, research)


# -- 4. every rejection reason is kept, not only the five the reason names -------------------------

def test_every_rejected_instance_leaves_the_study_job_with_its_reason(monkeypatch: pytest.MonkeyPatch,
                                                                      context: JobContext, tmp_path: Path) -> None:
    poison = {f"p{n}": b"DICM but not really %d" % n for n in range(7)}
    result, _, research = _run(monkeypatch, context, {**GOOD, **poison})
    assert result.status == "done" and (result.released, result.rejected) == (3, 7)
    assert sorted(i for i, _ in result.rejections) == sorted(poison)  # all seven, not five
    assert {r for _, r in result.rejections} == {"not a DICOM instance (no valid SOP Class and SOP Instance UID)"}
    assert result.reason.endswith("and 2 more (anonlib jobs list --status partial)")


def test_a_kept_result_keeps_its_rejections(tmp_path: Path) -> None:
    from anonlib.spool import Prepared, Spool

    spool = Spool(tmp_path / "spool")
    prepared = Prepared(9, 7, (), (), "partial: ...", tuple((f"p{n}", "cannot read") for n in range(7)))
    spool.save("intake", STUDY, "k", prepared)
    assert spool.load("intake", STUDY, "k") == prepared
