"""The constellation on the generated burned-in set: uploaded to intake, each study's job run
with the default profile (OCR and masking, the audit gate reading pixels), and nothing
identifying left readable on research — checked against the ground truth, independently of the
OCR that did the masking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from anonlib.store import open_store
from anonlib.studyjob import JobContext, process_study
from anonlib.synthetic.burnedin import write_set
from bench import burnedin as bench
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import get, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT, SEED = 12, 3


_RUN: dict[str, Any] = {}


@pytest.fixture
def delivered(constellation_factory: Factory, tmp_path: Path) -> dict[str, Any]:
    """The set through the constellation (once per session: the factory starts nothing unless
    called); the score of what research holds."""
    if not _RUN:
        _RUN.update(_deliver(constellation_factory, tmp_path))
    return _RUN


def _deliver(constellation_factory: Factory, tmp_path: Path) -> dict[str, Any]:
    _, info = constellation_factory()
    set_dir = write_set(tmp_path / "set", count=COUNT, seed=SEED).parent
    for path in sorted((set_dir / "images").iterdir()):  # REST: every transfer syntax of the set
        answer = httpx.post(f"{info.intake.url}/instances", content=path.read_bytes(),
                            auth=(info.intake.username, info.intake.password), timeout=60)
        answer.raise_for_status()
    studies = wait_stable(info.intake, timeout=120)
    context = JobContext.create(info)
    context.audit_conformance = False  # dciodvfy is tested elsewhere; the pixel check runs
    results = [process_study(info, study, context=context) for study in studies]

    # every research instance, matched to its original through the lookup store
    research = tmp_path / "research"
    research.mkdir()
    by_new: dict[str, Path] = {}
    for instance in get(info.research, "/instances", expand=""):
        uid = instance["MainDicomTags"]["SOPInstanceUID"]
        (research / f"{uid}.dcm").write_bytes(get(info.research, f"/instances/{instance['ID']}/file"))
        by_new[uid] = research / f"{uid}.dcm"
    verdicts: dict[str, bench.Verdict] = {}
    with open_store(info.db_url, readonly=True) as store:
        for record in store.instances():
            if record.status == "quarantined":
                verdicts[record.original_sop_uid] = bench.Verdict(False, reason=record.reason or "quarantined")
            elif record.new_sop_uid in by_new:
                verdicts[record.original_sop_uid] = bench.Verdict(True, by_new[record.new_sop_uid])
    return {"results": results, "summary": bench.score_run(set_dir, verdicts)}


def test_every_study_passes_the_gate_and_is_delivered(delivered: dict[str, Any]) -> None:
    results = delivered["results"]
    assert all(r.status == "done" for r in results), [(r.status, r.reason) for r in results]
    assert sum(r.released + r.quarantined for r in results) == COUNT
    summary = delivered["summary"]
    assert summary["over_free_p95"] < 0.005, summary["over_masked_files"]
    assert all(reason.startswith(("pixels: ", "RecognizableVisualFeatures")) for reason in summary["withheld"])


@pytest.mark.xfail(strict=True, reason="issue 10 open: recall 0.944 on this set, not 1.0 — two short lines "
                   "on pydicom's 128-px CT_small are not detected; the gate's OCR does not read them either")
def test_research_receives_no_readable_burned_in_phi(delivered: dict[str, Any]) -> None:
    summary = delivered["summary"]
    assert summary["recall_phi"] == 1.0, summary["missed"]
