"""Identifiers known beyond one instance: a value carried by one instance of a study (or of the
patient's other studies) is scrubbed from the free text of every instance of the study."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.dicomio import parse_instance
from anonlib.engine import IdentifierIndex, Identifiers, collect_identifiers, scope_key, study_key
from anonlib.engine.text import Scrubber
from anonlib.pipeline import InstanceProcessor
from anonlib.sinks.folder import FolderSink
from anonlib.store.memory import MemoryStore
from anonlib.studyjob import study_identifiers
from tests.helpers import CT, minimal, plan_of, run

OPERATOR = "Kowalczyk-Brandt^Bartholomew"
STATION = "CTSCAN01"
COMMENT = "Scanned by Kowalczyk on CTSCAN01-B (CTSCAN room), Bartholomew's shift"


def _pair() -> tuple[Dataset, Dataset]:
    """Instance A carries the operator and the station; B of the same study only its comment."""
    a = minimal(CT, OperatorsName=OPERATOR, StationName=STATION)
    b = minimal(CT, ImageComments=COMMENT)
    b.SOPInstanceUID = a.SOPInstanceUID + ".2"
    return a, b


def _leaks(text: str) -> list[str]:
    return [w for w in ("Kowalczyk", "Brandt", "Bartholomew", "CTSCAN") if w.lower() in text.lower()]


def test_without_the_study_values_the_comment_leaks() -> None:
    """The defect: B's own header does not carry the operator or the station."""
    _, b = _pair()
    assert _leaks(str(run(b).dataset.ImageComments))


def test_values_of_another_instance_of_the_study_are_scrubbed() -> None:
    a, b = _pair()
    plan = plan_of()
    known = collect_identifiers(a, plan).merged(collect_identifiers(b, plan))
    out = str(run(b, known=known).dataset.ImageComments)
    assert not _leaks(out) and out.startswith("Scanned by [NAME] on [ID]")


def test_the_index_gives_each_instance_its_study_and_its_patient() -> None:
    a, b = _pair()
    other_study = minimal(CT, OperatorsName="Quillfeather^Ottoline")  # same patient, another study
    other_study.StudyInstanceUID += ".9"
    stranger = minimal(CT, PatientID="999888777", OperatorsName="Thistlewood^Ambrose")
    stranger.StudyInstanceUID += ".8"
    index = IdentifierIndex(plan_of())
    scopes = [index.add(ds) for ds in (a, b, other_study, stranger)]
    assert scopes[0] == scopes[1] == (study_key(b), scope_key(b)[1]) and len(index) == 3
    known = index.known(scopes[1])
    assert {"Kowalczyk", "Quillfeather"} <= known.names and STATION in known.tokens
    assert "CTSCAN" in known.stems and "Thistlewood" not in known.names
    assert index.known(scopes[0]) is known  # one set (one compiled matcher) per study and patient
    assert "Kowalczyk" not in index.known(scopes[3]).names
    assert not _leaks(str(run(b, known=known).dataset.ImageComments))


def test_an_instance_without_patient_id_is_grouped_by_its_study() -> None:
    a, b = _pair()
    del a.PatientID, b.PatientID
    index = IdentifierIndex(plan_of())
    index.add(a)
    assert "Kowalczyk" in index.known(index.add(b)).names


def test_one_matcher_per_study_not_one_per_instance() -> None:
    a, b = _pair()
    plan = plan_of()
    known = collect_identifiers(a, plan).merged(collect_identifiers(b, plan))
    assert collect_identifiers(b, plan).merged(known) is known  # B's own values are in the set
    shift = lambda d: "19000101"  # noqa: E731
    first, second = Scrubber(known, shift, str), Scrubber(known.merged(None), shift, str)
    assert first._known is second._known and first._stems is second._stems


def _encoded(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT, ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_study_job_collects_every_instance_and_passes_them_on(tmp_path: Path) -> None:
    """What process_study does between fetching and de-identifying a study's instances."""
    a, b = (_encoded(ds) for ds in _pair())
    plan = plan_of()
    known = study_identifiers(plan, [a, b, b"not DICOM"])  # an unreadable one is skipped here
    assert "Kowalczyk" in known.names and STATION in known.tokens
    processor = InstanceProcessor(plan, MemoryStore(), FolderSink(tmp_path / "out"),
                                  FolderSink(tmp_path / "q"))
    outcome, encoded, _ = processor.deidentify_bytes(b, "b", known)
    assert not _leaks(str(outcome.dataset.ImageComments))
    assert not _leaks(str(parse_instance(encoded, label="out").dataset.ImageComments))
    alone, _, _ = processor.deidentify_bytes(b, "b")  # without: only B's own values
    assert _leaks(str(alone.dataset.ImageComments))


def test_merged_keeps_both_sets_apart_from_the_originals() -> None:
    one, two = Identifiers(names={"Ada"}), Identifiers(tokens={"X123"})
    both = one.merged(two)
    assert both.names == {"Ada"} and both.tokens == {"X123"} and not one.tokens and not two.names


def test_the_preview_shows_what_the_study_job_does(tmp_path: Path) -> None:
    """The preview collects the study's identifiers first too: its diff of B shows the comment
    scrubbed of A's operator and station."""
    from anonlib.preview import preview_study
    from anonlib.sources import FolderSource

    folder = tmp_path / "study"
    folder.mkdir()
    a, b = _pair()
    for name, ds in (("a.dcm", a), ("b.dcm", b)):
        (folder / name).write_bytes(_encoded(ds))
    source = FolderSource(folder)
    shown = next(key for key in source.instances(b.StudyInstanceUID) if key.endswith("b.dcm"))
    preview = preview_study(source, b.StudyInstanceUID, db_url=f"sqlite:///{tmp_path}/lookup.sqlite3",
                            instance=shown)
    row = preview.diff[preview.diff["keyword"] == "ImageComments"].to_dict("records")[0]
    assert row["original"] == COMMENT and not _leaks(str(row["deidentified"]))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_folder_run_scrubs_values_of_the_study_and_of_the_patients_other_studies(
        tmp_path: Path, workers: int) -> None:
    """The folder pipeline's pre-pass collects every header's identifiers by study and patient:
    B's comment loses A's operator and station (same study) and the operator of the patient's
    other study C; a stranger's operator, D, is not a value of this patient and stays."""
    from anonlib.folder_run import RunSettings, run_folder

    a, b = _pair()
    b.ImageComments = COMMENT + "; reviewed by Quillfeather, Thistlewood"
    c = minimal(CT, OperatorsName="Quillfeather^Ottoline")  # the same patient, another study
    c.StudyInstanceUID, c.SOPInstanceUID = a.StudyInstanceUID + ".9", a.SOPInstanceUID + ".9"
    d = minimal(CT, PatientID="999888777", OperatorsName="Thistlewood^Ambrose")  # another patient
    d.StudyInstanceUID, d.SOPInstanceUID = a.StudyInstanceUID + ".8", a.SOPInstanceUID + ".8"
    source = tmp_path / "in"
    source.mkdir()
    for name, ds in (("a.dcm", a), ("b.dcm", b), ("c.dcm", c), ("d.dcm", d)):
        (source / name).write_bytes(_encoded(ds))
    summary = run_folder(RunSettings(source, tmp_path / "out", db_url=f"sqlite:///{tmp_path}/lookup.sqlite3",
                                     workers=workers))
    assert summary.processed == 4, summary.describe()
    outputs = [pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    comment = next(str(ds.ImageComments) for ds in outputs if "ImageComments" in ds)
    assert not _leaks(comment) and "Quillfeather" not in comment
    assert "Thistlewood" in comment  # not this patient's: nothing says it identifies them
