"""Folder runs: locations checked, bad files reported and skipped, pseudonyms stable across
runs, several processes give the same result as one, files that share a SOP Instance UID never
overwrite each other, and the manifest describes the files on disk."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.errors import ConfigError
from anonlib.folder_run import RunSettings, RunSummary, run_folder
from anonlib.sinks.folder import read_manifest, relative_path
from anonlib.synthetic import Corpus
from anonlib.synthetic.batch import write_batch

RTDOSE = Path(str(get_testdata_file("rtdose.dcm")))  # 15 frames
RTDOSE_1FRAME = Path(str(get_testdata_file("rtdose_1frame.dcm")))  # the same SOP Instance UID


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


# -- files that share a SOP Instance UID ------------------------------------------------------

def _statuses(summary: RunSummary) -> dict[str, str]:
    return {r.source: r.status for r in summary.results}


def _conflicts_csv(tmp: Path) -> list[dict[str, str]]:
    with open(tmp / "out-quarantine" / "conflicts.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_manifest_matches_disk(output: Path) -> None:
    rows = read_manifest(output / "manifest.csv")
    on_disk = {str(p.relative_to(output)) for p in output.rglob("*.dcm")}
    assert set(rows) == on_disk
    for path, row in rows.items():
        assert hashlib.sha256((output / path).read_bytes()).hexdigest() == row.sha256, path


@pytest.mark.parametrize(("names", "frames"), [(("rtdose.dcm", "rtdose_1frame.dcm"), 15),
                                               (("b.dcm", "a.dcm"), 1)])
def test_a_second_file_with_the_same_sop_uid_is_a_conflict_not_an_overwrite(
        tmp_path: Path, names: tuple[str, str], frames: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(RTDOSE, src / names[0])
    shutil.copy(RTDOSE_1FRAME, src / names[1])
    kept, other = sorted(names)
    summary = run_folder(_settings(src, tmp_path))
    assert _statuses(summary) == {kept: "written", other: "conflict"}
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert int(pydicom.dcmread(out).get("NumberOfFrames", 1)) == frames  # the first file's
    assert _conflicts_csv(tmp_path) == [{"source": other, "kept": kept, "status": "conflict",
                                         "reason": f"same SOP Instance UID as {kept}, different content"}]
    assert "1 de-identified, 0 quarantined, 0 rejected, 1 conflicts, 0 duplicates; 1 written" in summary.describe()
    _assert_manifest_matches_disk(tmp_path / "out")


def test_an_identical_copy_is_a_duplicate_and_written_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "copy").mkdir(parents=True)
    shutil.copy(RTDOSE, src / "rtdose.dcm")
    shutil.copy(RTDOSE, src / "copy" / "rtdose.dcm")
    summary = run_folder(_settings(src, tmp_path))
    assert _statuses(summary) == {"copy/rtdose.dcm": "written", "rtdose.dcm": "duplicate"}
    assert summary.results[1].kept == "copy/rtdose.dcm" and len(summary.duplicates) == 1
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1
    assert [row["status"] for row in _conflicts_csv(tmp_path)] == ["duplicate"]


def _variant(path: Path, target: Path, **changes: object) -> None:
    """A copy of ``path`` with the same SOP Instance UID and some other value changed."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)


def _conflicting_inputs(root: Path, corpus: Corpus) -> Path:
    """Four studies (12 files), with four variants that sort after their original, two that
    sort before it, two identical copies, one copy naming another study, a quarantined file."""
    studies = write_batch(root, studies=4, patients=2)
    files = sorted(root.rglob("*.dcm"))
    for n, path in enumerate(files[:4]):
        _variant(path, root / "z-later" / f"{n}.dcm", WindowCenter=n + 7)
    for n, path in enumerate(files[4:6]):
        _variant(path, root / "a-earlier" / f"{n}.dcm", InstanceNumber=n + 50)
    for n, path in enumerate(files[6:8]):
        shutil.copy(path, root / "z-later" / f"copy{n}.dcm")
    _variant(files[8], root / "z-later" / "other-study.dcm", StudyInstanceUID=studies[0].study_uid)
    quarantined = next(f.path for f in corpus.files if f.expect == "quarantine")
    shutil.copy(quarantined, root / "q.dcm")
    return root


def test_a_copy_in_another_study_is_a_conflict_too(tmp_path: Path, corpus: Corpus) -> None:
    """One original SOP UID in two studies would be two output files with one new SOP UID."""
    src = _conflicting_inputs(tmp_path / "src", corpus)
    summary = run_folder(_settings(src, tmp_path))
    assert _statuses(summary)["z-later/other-study.dcm"] == "conflict"
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for base in (tmp_path / "out", tmp_path / "out-quarantine") for p in base.rglob("*.dcm")]
    assert len(uids) == len(set(uids)) == summary.processed + summary.quarantined == 13


def test_a_rerun_reports_everything_unchanged_and_rewrites_nothing(tmp_path: Path, corpus: Corpus) -> None:
    src = _conflicting_inputs(tmp_path / "src", corpus)
    shutil.copy(RTDOSE, src / "rtdose.dcm")
    shutil.copy(RTDOSE_1FRAME, src / "rtdose_1frame.dcm")
    first = run_folder(_settings(src, tmp_path))
    lists = {p: p.read_bytes() for p in [tmp_path / "out" / "manifest.csv",
                                         *sorted((tmp_path / "out-quarantine").glob("*.csv"))]}
    again = run_folder(_settings(src, tmp_path))
    assert again.count("written", "replaced") == 0 and again.quarantined == 1
    assert {k: v.replace("written", "unchanged") for k, v in _statuses(first).items()} == _statuses(again)
    assert first.changes("written") == 14 and first.quarantined == 1
    assert again.changes("unchanged") == 14 and again.changes("written", "replaced") == 0
    assert "; 0 written, 14 unchanged, 0 replaced" in again.describe()
    assert {p: p.read_bytes() for p in lists} == lists  # manifest, quarantine.csv, conflicts.csv
    _assert_manifest_matches_disk(tmp_path / "out")


def test_workers_report_the_same_and_the_manifest_matches_the_files(tmp_path: Path, corpus: Corpus) -> None:
    src = _conflicting_inputs(tmp_path / "src", corpus)
    uid = str(pydicom.dcmread(RTDOSE, stop_before_pixels=True).SOPInstanceUID)
    for n in range(3):  # adjacent pairs, the first slower: before, two workers raced on them
        for path in (RTDOSE, RTDOSE_1FRAME):
            _variant(path, src / f"dose{n}" / path.name, SOPInstanceUID=f"{uid}.{n}")
    db = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    one = run_folder(RunSettings(src, tmp_path / "one", db_url=db, workers=1))
    two = run_folder(RunSettings(src, tmp_path / "two", db_url=db, workers=2))
    for output in (tmp_path / "one", tmp_path / "two"):
        _assert_manifest_matches_disk(output)
    assert _statuses(one) == _statuses(two)
    assert one.count("conflict") == 10 and one.count("duplicate") == 2 and len(one.results) == 28
    assert [(r.source, r.status, r.change, r.kept) for r in one.results] == \
        [(r.source, r.status, r.change, r.kept) for r in two.results]
    assert one.describe() == two.describe()
    kept = {r.kept for r in one.conflicts}
    assert {"a-earlier/0.dcm", "a-earlier/1.dcm"} <= kept  # a variant sorting first is the one kept
