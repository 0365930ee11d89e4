"""Folder runs: locations checked, bad files reported and skipped, pseudonyms stable across
runs, several processes give the same result as one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pydicom
import pytest

from anonlib.errors import ConfigError
from anonlib.pipeline import RunSettings, run_folder
from anonlib.sinks.folder import relative_path
from anonlib.synthetic import Corpus


def _settings(src: Path, tmp: Path, **kw: object) -> RunSettings:
    return RunSettings(source=src, output=tmp / "out", db_url=f"sqlite:///{tmp / 'store.sqlite3'}", **kw)  # type: ignore[arg-type]


def test_store_inside_the_output_is_refused(corpus: Corpus, tmp_path: Path) -> None:
    settings = RunSettings(corpus.root, tmp_path / "out", db_url=f"sqlite:///{tmp_path}/out/k.sqlite3")
    with pytest.raises(ConfigError, match="re-identification key"):
        run_folder(settings)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["output inside source", "quarantine inside output", "same"])
def test_overlapping_folders_are_refused(corpus: Corpus, tmp_path: Path, where: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(corpus.root / "01", src)
    settings = {
        "output inside source": RunSettings(src, src / "out", db_url=f"sqlite:///{tmp_path}/s.db"),
        "quarantine inside output": RunSettings(src, tmp_path / "o", db_url=f"sqlite:///{tmp_path}/s.db",
                                                quarantine=tmp_path / "o" / "q"),
        "same": RunSettings(src, src, db_url=f"sqlite:///{tmp_path}/s.db"),
    }[where]
    with pytest.raises(ConfigError):
        run_folder(settings)


def test_bad_files_are_reported_and_the_rest_goes_on(corpus: Corpus, tmp_path: Path) -> None:
    summary = run_folder(_settings(corpus.root, tmp_path))
    bad = {str(f.path.relative_to(corpus.root)) for f in corpus.files if f.expect == "reject"}
    assert {r.source for r in summary.rejected} == bad
    assert all(r.reason for r in summary.rejected)
    assert summary.processed == sum(1 for f in corpus.files if f.expect == "deidentify")
    listed = (tmp_path / "out-quarantine" / "rejected.csv").read_text()
    assert all(source in listed for source in bad)
    assert not any(p.name == "rejected.csv" for p in (tmp_path / "out").rglob("*"))


def test_pseudonym_and_shift_are_reused_in_a_later_run(corpus: Corpus, tmp_path: Path) -> None:
    """Two studies of one patient, de-identified in separate runs, share pseudonym and shift."""
    labels = [p for p in corpus.patients if len(p.study_uids) >= 2]
    patient = labels[0]
    files = [f for f in corpus.files if f.patient == patient.label and f.kind == "CT"]
    first = tmp_path / "a"
    second = tmp_path / "b"
    for folder, study in ((first, patient.study_uids[0]), (second, patient.study_uids[1])):
        folder.mkdir()
        for item in files:
            if str(pydicom.dcmread(item.path, stop_before_pixels=True).StudyInstanceUID) == study:
                shutil.copy(item.path, folder / item.path.name)
    db = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    run_folder(RunSettings(first, tmp_path / "out", db_url=db))
    run_folder(RunSettings(second, tmp_path / "out", db_url=db))
    ids = {str(pydicom.dcmread(p).PatientID) for p in (tmp_path / "out").rglob("*.dcm")}
    studies = {p.parent.parent.name for p in (tmp_path / "out").rglob("*.dcm")}
    assert len(ids) == 1 and len(studies) == 2


def test_worker_processes_give_the_same_bytes_as_one(corpus: Corpus, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    one = run_folder(RunSettings(corpus.root, tmp_path / "one", db_url=db, workers=1))
    two = run_folder(RunSettings(corpus.root, tmp_path / "two", db_url=db, workers=2))
    assert one.describe() == two.describe()
    for path in (tmp_path / "one").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


def test_no_log_line_carries_phi(corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run_folder(_settings(corpus.root, tmp_path))
    logged = caplog.text.lower()
    for value in corpus.phi_values():
        if len(value) >= 4:
            assert value.lower() not in logged


def test_relative_path_is_built_from_deidentified_values_only() -> None:
    path = relative_path("ANON1234ABCD", "20190101", "2.25.1", "3", "CT", "2.25.99")
    assert path.startswith("ANON1234ABCD/20190101_") and path.endswith("/3_CT/2.25.99.dcm")
    assert relative_path("A", "", "2.25.1", "", "", "2.25.9").split("/")[1].startswith("nodate_")
    assert ".." not in relative_path("../x", "2019", "u", "1/2", "C T", "a/b")
