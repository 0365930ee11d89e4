"""The synthetic corpus: reproducible, complete, PHI really planted, references intact."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anonlib.audit.references import Reference, identities, references
from anonlib.synthetic import Corpus, CorpusFile

KINDS = {"CT", "MR", "RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "SR", "GSPS", "SC", "US", "bad"}
QUARANTINED = {"US"}  # a face (RecognizableVisualFeatures); the SC's banner is masked
REFERRING_KINDS = {"RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "SR", "GSPS"}
RESOLVABLE = {"sop", "series", "study", "frame_of_reference"}
FULL_CATEGORIES = {
    "A_names", "B_address", "C_dates", "D_phone", "F_email", "H_mrn", "J_accession", "R_ids",
    "R_uids", "N_url", "institution", "physicians", "device",
}
UID_ROOT = "1.2.826.0.1.3680043.10.543."
PRIVATE_CREATOR = "ACME_PRIVATE 1.0"


def _read(f: CorpusFile) -> Dataset:
    return pydicom.dcmread(f.path)


def _dicom(corpus: Corpus, patient: str | None = None, kind: str | None = None) -> list[CorpusFile]:
    return [f for f in corpus.files if f.kind != "bad"
            and (patient is None or f.patient == patient) and (kind is None or f.kind == kind)]


def _texts(ds: Dataset) -> Iterator[str]:
    """Every value of ``ds`` (file meta, nested and private elements too) as text."""
    elements = list(ds.file_meta.iterall()) if hasattr(ds, "file_meta") else []
    for elem in elements + list(ds.iterall()):
        if elem.VR == "SQ" or isinstance(elem.value, bytes) or elem.value is None:
            continue
        if isinstance(elem.value, (list, MultiValue)):
            yield from (str(v) for v in elem.value)
        else:
            yield str(elem.value)


def _patient(corpus: Corpus, label: str):  # noqa: ANN202 - PlantedPatient
    return next(p for p in corpus.patients if p.label == label)


def _strictly_unreadable(path: Path) -> bool:
    """pydicom stops quietly at the end of a truncated file, so read every element, as a
    de-identifier must, and require an instance (SOP Class and Instance UIDs)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            for elem in ds.iterall():
                _ = elem.value
        return not (ds.get("SOPClassUID") and ds.get("SOPInstanceUID"))
    except Exception:  # noqa: BLE001
        return True


# --- reproducibility ---------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_values(corpus: Corpus, corpus_factory) -> None:
    again = corpus_factory(0)
    assert [f.path.relative_to(corpus.root) for f in corpus.files] == \
        [f.path.relative_to(again.root) for f in again.files]
    for mine, theirs in zip(corpus.files, again.files):
        assert mine.path.read_bytes() == theirs.path.read_bytes(), mine.path
    assert corpus.patients == again.patients


def test_another_seed_gives_other_people_and_uids(corpus: Corpus, corpus_factory) -> None:
    other = corpus_factory(1, bad_files=False)
    assert not any(f.kind == "bad" for f in other.files)
    mine, theirs = _patient(corpus, "patient-1"), _patient(other, "patient-1")
    assert mine.values["A_names"][0] != theirs.values["A_names"][0]
    assert not set(mine.values["R_uids"]) & set(theirs.values["R_uids"])
    assert mine.patient_id != theirs.patient_id


# --- contents ----------------------------------------------------------------------------


def test_every_kind_is_present_with_its_expectation(corpus: Corpus) -> None:
    assert {f.kind for f in corpus.files} == KINDS
    assert 60 <= len(corpus.files) <= 120
    for f in corpus.files:
        expected = "reject" if f.kind == "bad" else \
            "quarantine" if f.kind in QUARANTINED else "deidentify"
        assert f.expect == expected, f
        assert (f.patient == "") == (f.kind == "bad"), f


def test_kind_matches_the_object(corpus: Corpus) -> None:
    modality = {"GSPS": "PR", "SC": "OT", "SEG": "SEG", "SR": "SR"}
    for f in _dicom(corpus):
        ds = _read(f)
        assert ds.Modality == modality.get(f.kind, f.kind), f
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_names_are_neutral_but_one_folder(corpus: Corpus) -> None:
    family, given = _patient(corpus, "patient-1").values["A_names"][1:3]
    planted = set()
    for f in corpus.files:
        parts = f.path.relative_to(corpus.root).parts
        assert re.fullmatch(r"\d{2}", parts[0]) and re.fullmatch(r"\d{3}\.dcm", parts[-1]), parts
        planted.update(parts[1:-1])
    assert planted == {f"{family}_{given}"}
    assert f"{family}_{given}" in _patient(corpus, "patient-1").values["A_names"]


def test_ct_series_are_consistent_volumes(corpus: Corpus) -> None:
    by_series: dict[str, list[Dataset]] = {}
    for f in _dicom(corpus, kind="CT"):
        ds = _read(f)
        by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    assert len(by_series) >= 6
    for slices in by_series.values():
        assert 3 <= len(slices) <= 5
        assert len({ds.FrameOfReferenceUID for ds in slices}) == 1
        assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
        assert [int(ds.InstanceNumber) for ds in slices] == list(range(1, len(slices) + 1))
        z = [float(ds.ImagePositionPatient[2]) for ds in slices]
        assert all(b > a for a, b in zip(z, z[1:]))


def test_patients_are_the_planned_cases(corpus: Corpus) -> None:
    one, two, three, four, five = (_patient(corpus, f"patient-{n}") for n in range(1, 6))
    first = [_read(f) for f in _dicom(corpus, "patient-1", "CT")]
    assert len({ds.StudyDate for ds in first}) == 2 == len(one.study_uids)
    assert five.patient_id == one.patient_id and five.issuer != one.issuer
    assert len(one.patient_id) >= 7 and one.patient_id.isdigit()
    assert two.values["C_age"] == ["093Y"]
    for f in _dicom(corpus, "patient-2"):
        ds = _read(f)
        born, seen = (dt.datetime.strptime(v, "%Y%m%d").date() for v in
                      (ds.PatientBirthDate, ds.StudyDate))
        assert ds.PatientAge == "093Y"
        assert seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day)) == 93
    for f in _dicom(corpus, "patient-3"):
        ds = _read(f)
        with pytest.raises(ValueError):
            dt.datetime.strptime(ds.SeriesDate, "%Y%m%d")
        assert ds.SeriesDate in three.values["C_dates"]
    assert four.patient_id == "" and four.issuer == ""
    assert "A_names" not in four.values and "H_mrn" not in four.values
    for f in _dicom(corpus, "patient-4"):
        ds = _read(f)
        assert "PatientID" not in ds and ds.PatientName == ""


# --- planted PHI -------------------------------------------------------------------------


def test_every_planted_value_occurs_in_the_originals(corpus: Corpus) -> None:
    for patient in corpus.patients:
        haystack = []
        for f in _dicom(corpus, patient.label):
            haystack.extend(_texts(_read(f)))
            haystack.append(str(f.path.relative_to(corpus.root)))
        text = "\n".join(haystack)
        missing = {c: [v for v in vs if v not in text] for c, vs in patient.values.items()}
        assert not {c: v for c, v in missing.items() if v}, patient.label


def test_categories_cover_safe_harbor(corpus: Corpus) -> None:
    one = _patient(corpus, "patient-1")
    assert set(one.values) >= FULL_CATEGORIES
    assert all(v for v in one.values.values())
    assert corpus.phi_values() == {v for p in corpus.patients for vs in p.values.values()
                                   for v in vs}


def test_names_addresses_and_dates_are_recorded_in_parts(corpus: Corpus) -> None:
    one = _patient(corpus, "patient-1")
    ds = _read(_dicom(corpus, "patient-1", "CT")[0])
    family, given, middle = str(ds.PatientName).split("^")
    assert [family, given, middle] == one.values["A_names"][1:4]
    for keyword in ("OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"):
        assert str(ds[keyword].value) in one.values["A_names"]
    street, rest = ds.PatientAddress.split(", ", 1)
    assert street in one.values["B_address"]
    assert rest.split(", ")[0] in one.values["B_address"]
    assert rest.split()[-1] in one.values["B_address"]
    born = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
    for form in ("%Y%m%d", "%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%d/%m/%Y"):
        assert born.strftime(form) in one.values["C_dates"]
    assert ds.OtherPatientIDsSequence[0].PatientID in one.values["H_mrn"]
    assert ds.PatientTelecomInformation in one.values["F_email"]
    assert "@" in ds.PatientTelecomInformation


def test_free_text_and_private_block_carry_phi(corpus: Corpus) -> None:
    one = _patient(corpus, "patient-1")
    family, mrn = one.values["A_names"][1], one.patient_id
    ds = _read(_dicom(corpus, "patient-1", "CT")[0])
    for text in (ds.StudyDescription, ds.ImageComments, ds.PatientComments):
        assert family in text and mrn in text
    request = ds.RequestAttributesSequence[0]
    assert family in request.RequestedProcedureDescription
    assert request.AccessionNumber == ds.AccessionNumber
    assert request.RequestedProcedureID and request.ScheduledProcedureStepID
    assert ds.ReferencedPatientSequence[0].ReferencedSOPInstanceUID in one.values["R_uids"]
    assert one.values["N_url"][1] in ds.RetrieveURL and ds.StudyInstanceUID in ds.RetrieveURL
    block = ds.private_block(0x0011, PRIVATE_CREATOR)
    assert family in block[0x01].value and block[0x02].value == mrn
    nested = block[0x03].value[0].private_block(0x0011, PRIVATE_CREATOR)
    assert nested[0x10].VR == "PN" and family in str(nested[0x10].value)
    assert nested[0x11].VR == "UI" and nested[0x11].value == ds.StudyInstanceUID


def test_uids_sit_under_the_vendor_root_and_are_all_recorded(corpus: Corpus) -> None:
    for patient in corpus.patients:
        recorded = set(patient.values["R_uids"])
        for uid in recorded:
            assert uid.startswith(UID_ROOT) and len(uid) <= 64, uid
            assert re.fullmatch(r"[0-9]+(\.(0|[1-9][0-9]*))+", uid), uid
            if patient.patient_id:
                assert f".{patient.patient_id}." in uid
        for f in _dicom(corpus, patient.label):
            assert set(identities(_read(f)).values()) <= recorded, f
        assert set(patient.study_uids) <= recorded


def test_sr_gsps_sc_and_us_carry_what_they_should(corpus: Corpus) -> None:
    one = _patient(corpus, "patient-1")
    family, mrn, phone = one.values["A_names"][1], one.patient_id, one.values["D_phone"][0]
    sr = _read(_dicom(corpus, "patient-1", "SR")[0])
    items = list(sr.ContentSequence)
    types = [item.ValueType for item in items]
    assert {"PNAME", "DATE", "DATETIME", "TEXT", "NUM"} <= set(types)
    texts = " ".join(item.TextValue for item in items if item.ValueType == "TEXT")
    assert family in texts and mrn in texts and phone in texts
    assert any(family in str(item.PersonName) for item in items if item.ValueType == "PNAME")
    images = [ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
              for item in items if item.ValueType == "NUM" for ref in item.ContentSequence]
    evidence = {r.uid for r in references(sr) if r.path.startswith(("(0040,A375)", "(0040,A385)"))
                and r.kind == "sop"}
    assert images and set(images) <= evidence
    assert "PertinentOtherEvidenceSequence" in sr
    gsps = _read(_dicom(corpus, "patient-1", "GSPS")[0])
    annotation = gsps.GraphicAnnotationSequence[0]
    assert family in annotation.TextObjectSequence[0].UnformattedTextValue
    assert annotation.GraphicObjectSequence[0].GraphicType == "POLYLINE"
    sc, us = (_read(_dicom(corpus, "patient-1", k)[0]) for k in ("SC", "US"))
    assert sc.BurnedInAnnotation == "YES"
    assert us.Modality == "US" and "BurnedInAnnotation" not in us


# --- references --------------------------------------------------------------------------


def test_references_of_derived_objects_resolve_in_the_corpus(corpus: Corpus) -> None:
    known: dict[str, set[str]] = {}
    for f in _dicom(corpus):
        for kind, uid in identities(_read(f)).items():
            known.setdefault(kind, set()).add(uid)
    checked = 0
    for f in _dicom(corpus):
        if f.kind not in REFERRING_KINDS:
            continue
        refs = [r for r in references(_read(f)) if r.kind in RESOLVABLE]
        assert refs, f
        unresolved = [r for r in refs if r.uid not in known[r.kind]]
        assert not unresolved, (f.kind, unresolved)
        checked += 1
    assert checked == len(REFERRING_KINDS)


def test_the_rt_chain_points_at_the_right_objects(corpus: Corpus) -> None:
    ds = {k: _read(_dicom(corpus, "patient-1", k)[0]) for k in ("RTSTRUCT", "RTPLAN", "RTDOSE")}
    cts = [_read(f) for f in _dicom(corpus, "patient-1", "CT")]
    cts = [ct for ct in cts if ct.StudyInstanceUID == ds["RTSTRUCT"].StudyInstanceUID]
    contoured = {r.uid for r in references(ds["RTSTRUCT"]) if r.kind == "sop"}
    assert contoured == {ct.SOPInstanceUID for ct in cts}
    frame = cts[0].FrameOfReferenceUID
    assert {r.uid for r in references(ds["RTSTRUCT"]) if r.kind == "frame_of_reference"} == {frame}
    assert [r.uid for r in references(ds["RTPLAN"]) if r.kind == "sop"] == \
        [ds["RTSTRUCT"].SOPInstanceUID]
    assert [r.uid for r in references(ds["RTDOSE"]) if r.kind == "sop"] == \
        [ds["RTPLAN"].SOPInstanceUID]
    assert ds["RTDOSE"].FrameOfReferenceUID == frame


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def test_references_classifies_and_names_paths_without_values() -> None:
    ds = _item(SOPInstanceUID="1.2.3.1", StudyInstanceUID="1.2.3.2", FrameOfReferenceUID="1.2.3.3",
               SOPClassUID="1.2.840.10008.5.1.4.1.1.481.3")
    series = _item(SeriesInstanceUID="1.2.3.5")
    study = _item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.2",
                  ReferencedSOPInstanceUID="1.2.3.4", RTReferencedSeriesSequence=[series])
    frame = _item(FrameOfReferenceUID="1.2.3.3", RTReferencedStudySequence=[study])
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence = [_item(ReferencedFrameOfReferenceUID="1.2.3.3")]
    coded = _item(CodeValue="1", CodingSchemeDesignator="DCM", CodeMeaning="x",
                  CodingSchemeUID="1.2.840.10008.2.16.4")
    ds.ConceptNameCodeSequence = [coded]
    ds.ReferencedImageSequence = [_item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                                        ReferencedSOPInstanceUID="1.2.3.6")]
    block = ds.private_block(0x0011, "X", create=True)
    block.add_new(0x01, "SQ", [Dataset()])
    block[0x01].value[0].add_new(0x00111010, "UI", "1.2.3.7")
    assert identities(ds) == {"sop": "1.2.3.1", "study": "1.2.3.2", "frame_of_reference": "1.2.3.3"}
    assert references(ds) == [
        Reference("(0008,1140)[0]>(0008,1155)", "sop", "1.2.3.6"),
        Reference("(0011,1001)[0]>(0011,1010)", "other", "1.2.3.7"),
        Reference("(3006,0010)[0]>(0020,0052)", "frame_of_reference", "1.2.3.3"),
        Reference("(3006,0010)[0]>(3006,0012)[0]>(0008,1155)", "study", "1.2.3.4"),
        Reference("(3006,0010)[0]>(3006,0012)[0]>(3006,0014)[0]>(0020,000E)", "series",
                  "1.2.3.5"),
        Reference("(3006,0020)[0]>(3006,0024)", "frame_of_reference", "1.2.3.3"),
    ]


# --- bad files ---------------------------------------------------------------------------


def test_bad_files_are_unreadable(corpus: Corpus) -> None:
    bad = [f.path for f in corpus.files if f.kind == "bad"]
    assert len(bad) == 4
    text, empty, truncated, garbage = bad
    assert empty.stat().st_size == 0
    for path in (text, empty):
        with pytest.raises(pydicom.errors.InvalidDicomError):
            pydicom.dcmread(path)
    assert truncated.read_bytes()[128:132] == b"DICM" == garbage.read_bytes()[128:132]
    complete = corpus.files[0].path.read_bytes()
    assert complete.startswith(truncated.read_bytes()) and truncated.stat().st_size < len(complete)
    for path in bad:
        assert _strictly_unreadable(path), path
    assert not _strictly_unreadable(corpus.files[0].path)
