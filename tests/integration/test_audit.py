"""The audit on the synthetic corpus: the engine's output passes; a naive de-identifier's fails in
every category it leaks; re-introduced original UIDs, broken references, inconsistent date
shifts and dciodvfy regressions are each caught; no value of the originals is ever printed."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from anonlib.audit.model import AuditResult
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs, tree_names
from anonlib.engine.uids import UidMapper
from anonlib.folder_run import RunSettings, run_folder
from anonlib.store import open_store
from anonlib.synthetic import Corpus
from tests.naive import naive_deidentify

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def outputs(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("audit")
    db = f"sqlite:///{base / 'store.sqlite3'}"
    run_folder(RunSettings(corpus.root, base / "engine", db_url=db))
    naive_deidentify(corpus.root, base / "naive")
    return {"engine": base / "engine", "naive": base / "naive", "db": Path(db[len("sqlite:///"):]),
            "base": base}


def _audit(outputs: dict[str, Path], corpus: Corpus, target: Path, conformance: bool = False) -> AuditResult:
    store = open_store(f"sqlite:///{outputs['db']}")
    try:
        return audit(folder_inputs(target, corpus.root, store), map_uid=UidMapper(store.secret()),
                     names=tree_names(target), options=AuditOptions(conformance=conformance))
    finally:
        store.close()


def _copy(outputs: dict[str, Path], name: str) -> Path:
    target = outputs["base"] / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(outputs["engine"], target)
    return target


def _files(root: Path, modality: str) -> list[Path]:
    return [p for p in sorted(root.rglob("*.dcm")) if f"_{modality}/" in str(p.relative_to(root)) + "/"]


def test_engine_output_passes_every_check(outputs: dict[str, Path], corpus: Corpus) -> None:
    result = _audit(outputs, corpus, outputs["engine"], conformance=True)
    assert result.passed, result.failing_categories()
    assert result.with_originals == result.instances > 50
    assert set(result.checks_run) == {"safe_harbor", "leak", "consistency", "conformance", "pixels"}
    [pixels] = [f for f in result.findings if f.check == "pixels"]  # the corpus has no burned-in text
    assert pixels.verdict == "pass" and re.search(r"pixels of [1-9]\d+ instance\(s\) \(OCR \w+\)$", pixels.detail)
    assert result.date_mode == "shift"


def test_naive_output_fails_in_every_category_it_leaks(outputs: dict[str, Path], corpus: Corpus) -> None:
    failing = set(_audit(outputs, corpus, outputs["naive"]).failing_categories())
    expected = {"leak/A names", "leak/B address", "leak/C dates", "leak/D phone", "leak/F e-mail",
                "leak/H record numbers", "leak/J accounts", "leak/N URLs", "leak/R UIDs",
                "leak/institution", "consistency/original UID", "consistency/reference",
                "consistency/pseudonym"}
    assert expected <= failing, expected - failing


def test_a_reintroduced_original_uid_is_caught(outputs: dict[str, Path], corpus: Corpus) -> None:
    target = _copy(outputs, "uid")
    path = _files(target, "CT")[0]
    ds = pydicom.dcmread(path)
    ds.ImageComments = corpus.patients[0].study_uids[0]  # an original UID, back in a free-text field
    ds.save_as(path)
    failing = _audit(outputs, corpus, target).failing_categories()
    assert "consistency/original UID" in failing


def test_a_broken_reference_is_caught(outputs: dict[str, Path], corpus: Corpus) -> None:
    target = _copy(outputs, "reference")
    path = _files(target, "RTSTRUCT")[0]
    ds = pydicom.dcmread(path)
    item = ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    item.ReferencedSOPInstanceUID = "2.25.1234567890"  # points nowhere
    ds.save_as(path)
    assert "consistency/reference" in _audit(outputs, corpus, target).failing_categories()


def test_an_inconsistent_date_shift_is_caught(outputs: dict[str, Path], corpus: Corpus) -> None:
    target = _copy(outputs, "dates")
    path = _files(target, "CT")[0]
    ds = pydicom.dcmread(path)
    day = dt.datetime.strptime(ds.StudyDate, "%Y%m%d") + dt.timedelta(days=1)
    ds.StudyDate = day.strftime("%Y%m%d")  # one instance moved by one more day (a valid date)
    ds.save_as(path)
    assert "consistency/date shift" in _audit(outputs, corpus, target).failing_categories()


def test_a_dciodvfy_regression_is_caught(outputs: dict[str, Path], corpus: Corpus) -> None:
    target = _copy(outputs, "conformance")
    keep = _files(target, "MR")[0]
    for path in sorted(target.rglob("*.dcm")):
        if path != keep:
            path.unlink()  # audit one instance only: dciodvfy is slow
    ds = pydicom.dcmread(keep)
    del ds.ImageType  # Type 1 in the MR Image module
    ds.save_as(keep)
    result = _audit(outputs, corpus, target, conformance=True)
    assert "conformance/dciodvfy" in result.failing_categories()


def test_the_cli_gates_and_never_prints_a_value(outputs: dict[str, Path], corpus: Corpus) -> None:
    env = {**os.environ, "ANONLIB_HOME": str(outputs["base"] / "home")}
    html, report = outputs["base"] / "naive.html", outputs["base"] / "naive.json"

    def cli(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonlib.cli", "audit", str(target), "--originals",
                               str(corpus.root), "--db", f"sqlite:///{outputs['db']}", "--no-conformance",
                               *extra], capture_output=True, text=True, env=env, timeout=600)

    failed = cli(outputs["naive"], "--html", str(html), "--json", str(report))
    assert failed.returncode == 1 and "FAIL" in failed.stdout
    summary = json.loads(report.read_text())
    assert summary["passed"] is False
    everything = (failed.stdout + failed.stderr + html.read_text() + report.read_text()).lower()
    leaked = [v for v in corpus.phi_values() if len(v) >= 4 and v.lower() in everything]
    assert not leaked
    passed = cli(outputs["engine"])
    assert passed.returncode == 0, passed.stdout
