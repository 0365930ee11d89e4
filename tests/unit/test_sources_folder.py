"""FolderSource on the synthetic corpus: the documented tables, filters, ordering, keys, bad and
duplicate files; open_source's choice between folder, URL and constellation node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from anonlib.constellation import ConstellationInfo, NodeInfo
from anonlib.errors import ConfigError
from anonlib.sources import (
    PATIENT_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    FolderSource,
    OrthancSource,
    UnknownKey,
    open_source,
)
from anonlib.synthetic import Corpus

PATIENTS = 5  # patient-1 and patient-5 share a PatientID under two issuers: two patients here
STUDIES = 6
BAD_FILES = 4


@pytest.fixture(scope="module")
def source(corpus: Corpus) -> FolderSource:
    return FolderSource(corpus.root)


def _valid(corpus: Corpus) -> list[Path]:
    return [f.path for f in corpus.files if f.expect != "reject"]


def _study_of(corpus: Corpus, label: str, index: int = 0) -> str:
    return next(p for p in corpus.patients if p.label == label).study_uids[index]


def _assert_typed(frame: pd.DataFrame, columns: list[str], counts: set[str]) -> None:
    assert list(frame.columns) == columns
    for column in columns:
        if column in counts:
            assert frame[column].dtype == "int64", column
        else:
            assert all(isinstance(v, str) for v in frame[column]), column


def test_patients_table(source: FolderSource, corpus: Corpus) -> None:
    patients = source.patients()
    _assert_typed(patients, PATIENT_COLUMNS, {"studies"})
    assert len(patients) == PATIENTS and patients["patient"].is_unique
    assert list(patients["patient_id"]) == sorted(patients["patient_id"])
    assert set(patients["patient_id"]) == {p.patient_id for p in corpus.patients}
    assert patients["studies"].sum() == STUDIES
    first = next(p for p in corpus.patients if p.label == "patient-1")
    row = patients[patients["patient"] == f"{first.patient_id}|{first.issuer}"].iloc[0]
    assert row["studies"] == 2 and row["patient_name"].count("^") >= 1


def test_studies_table(source: FolderSource, corpus: Corpus) -> None:
    studies = source.studies()
    _assert_typed(studies, STUDY_COLUMNS, {"series", "instances"})
    assert len(studies) == STUDIES
    assert set(studies["study"]) == {uid for p in corpus.patients for uid in p.study_uids}
    assert list(studies["study_date"]) == sorted(studies["study_date"])
    assert studies["instances"].sum() == len(_valid(corpus))
    follow_up = studies[studies["study"] == _study_of(corpus, "patient-1", 1)].iloc[0]
    assert follow_up["modalities"] == "CT/MR/OT/PR/RTDOSE/RTPLAN/RTSTRUCT/SEG/SR/US"
    assert (follow_up["series"], follow_up["instances"]) == (10, 16)
    unidentified = studies[studies["study"] == _study_of(corpus, "patient-4")].iloc[0]
    assert unidentified["patient_id"] == "" and unidentified["patient"].startswith("~study:")


def test_bad_files_are_skipped_and_counted(source: FolderSource) -> None:
    assert source.skipped == BAD_FILES and source.duplicates == 0


@pytest.mark.parametrize(("filters", "expected"), [
    ({"modality": "seg"}, {("patient-1", 1)}),
    ({"modality": "MR"}, {("patient-1", 1), ("patient-2", 0)}),
    ({"modality": "XA"}, set()),
])
def test_modality_filter(source: FolderSource, corpus: Corpus, filters: dict[str, str],
                         expected: set[tuple[str, int]]) -> None:
    found = set(source.studies(**filters)["study"])
    assert found == {_study_of(corpus, label, i) for label, i in expected}


def test_date_and_patient_filters(source: FolderSource, corpus: Corpus) -> None:
    everything = source.studies()
    dates = sorted(everything["study_date"])
    middle = source.studies(date_from=dates[1], date_to=dates[-2])
    assert list(middle["study_date"]) == dates[1:-1]
    last = dates[-1]
    assert list(source.studies(date_from=f"{last[:4]}-{last[4:6]}-{last[6:]}")["study_date"]) == [last]
    first = next(p for p in corpus.patients if p.label == "patient-1")
    by_id = source.studies(patient=first.patient_id)  # patient-1 and patient-5 share it
    assert set(by_id["study"]) == set(first.study_uids) | {_study_of(corpus, "patient-5")}
    by_key = source.studies(patient=f"{first.patient_id}|{first.issuer}")
    assert set(by_key["study"]) == set(first.study_uids)
    with pytest.raises(ConfigError, match="date_from"):
        source.studies(date_from="last week")


def test_series_and_instances_in_order(source: FolderSource, corpus: Corpus) -> None:
    study = _study_of(corpus, "patient-1", 1)
    series = source.series(study)
    _assert_typed(series, SERIES_COLUMNS, {"instances"})
    assert [int(n) for n in series["number"]] == list(range(1, 11))
    assert series["instances"].sum() == 16 and set(series["study"]) == {study}
    keys = source.instances(study)
    numbers = [(int(d.SeriesNumber), int(d.InstanceNumber))
               for d in (pydicom.dcmread(k, stop_before_pixels=True) for k in keys)]
    assert numbers == sorted(numbers) and len(keys) == 16
    ct = str(series["series"].iloc[0])
    assert source.instances(study, ct) == keys[:5]
    assert source.read(keys[0]) == Path(keys[0]).read_bytes()


def test_unknown_keys(source: FolderSource, corpus: Corpus, tmp_path: Path) -> None:
    with pytest.raises(UnknownKey):
        source.series("1.2.3.4")
    with pytest.raises(UnknownKey):
        source.instances(_study_of(corpus, "patient-2"), "1.2.3.4")
    outside = tmp_path / "x.dcm"
    outside.write_bytes(b"x")
    with pytest.raises(UnknownKey):
        source.read(str(outside))  # only indexed files can be read
    bad = next(f.path for f in corpus.files if f.expect == "reject")
    with pytest.raises(UnknownKey):
        source.read(str(bad))


def test_duplicates_and_refresh(corpus: Corpus, tmp_path: Path) -> None:
    files = [f.path for f in corpus.files if f.patient == "patient-3"][:3]
    for index, path in enumerate(files):
        shutil.copy(path, tmp_path / f"{index}.dcm")
    shutil.copy(files[0], tmp_path / "copy-of-0.dcm")
    source = FolderSource(tmp_path)
    assert source.duplicates == 1 and source.studies()["instances"].sum() == 3
    shutil.copy(next(f.path for f in corpus.files if f.patient == "patient-2"), tmp_path / "new.dcm")
    assert len(source.studies()) == 1  # the index is read once...
    source.refresh()
    assert len(source.studies()) == 2  # ...until refreshed


def test_empty_folder_gives_empty_tables(tmp_path: Path) -> None:
    source = FolderSource(tmp_path)
    _assert_typed(source.studies(), STUDY_COLUMNS, {"series", "instances"})
    assert source.patients().empty and source.studies(modality="CT", date_from="20200101").empty


# -- open_source ------------------------------------------------------------------------------

def _constellation_home(home: Path) -> None:
    node = NodeInfo("intake", "intake", "http://127.0.0.1:1", "u", "p", "127.0.0.1", 1, "AET")
    ConstellationInfo(str(home), {"intake": node}, str(home / "export"), "sqlite://").save(
        home / "constellation.json")


def test_open_source_folder_and_errors(corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANONLIB_INTAKE_URL", raising=False)
    source = open_source(str(corpus.root))
    assert isinstance(source, FolderSource) and source.kind == "folder"
    with pytest.raises(ConfigError, match="no such folder"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="not a file"):
        open_source(str(_valid(corpus)[0]))
    with pytest.raises(ConfigError, match="no constellation description"):
        open_source("intake")
    with pytest.raises(ConfigError):
        open_source("")
    assert not (tmp_path / "home").exists()  # looking for the constellation created nothing


def test_open_source_node_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _constellation_home(tmp_path)
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))
    source = open_source("intake")
    assert isinstance(source, OrthancSource) and source.kind == "orthanc" and source.name == "intake"
    with pytest.raises(ConfigError, match="nor a node"):
        open_source("research")


def test_open_source_url(monkeypatch: pytest.MonkeyPatch) -> None:
    source = open_source("http://alice:s%40cret@orthanc.example:8042/")
    assert isinstance(source, OrthancSource)
    node = source.node
    assert (node.url, node.username, node.password) == ("http://orthanc.example:8042", "alice", "s@cret")
    assert source.name == "orthanc.example:8042" and "cret" not in source.name
    assert open_source("https://host").node.url == "https://host:443"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="port"):
        open_source("http://host:99999")


def test_open_source_node_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without constellation.json (docker), the nodes come from ANONLIB_*_URL variables."""
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))
    for name, value in {"ANONLIB_DB_URL": "sqlite://", "ANONLIB_INTAKE_URL": "http://intake:8042",
                        "ANONLIB_RESEARCH_URL": "http://research:8042", "ANONLIB_INTAKE_USER": "u",
                        "ANONLIB_INTAKE_PASSWORD": "p", "ANONLIB_RESEARCH_USER": "v",
                        "ANONLIB_RESEARCH_PASSWORD": "q", "ANONLIB_EXPORT_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    source = open_source("research")
    assert isinstance(source, OrthancSource) and source.node.url == "http://research:8042"
