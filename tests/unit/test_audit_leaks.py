"""The leak and original-UID checks: no false alarm by design (each false alarm measured on real
public files has a case here), real leaks still found, in the character set the output uses;
engine and audit agree on which UIDs are kept; one pass per instance, progress, dciodvfy in
parallel."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.run import AuditOptions, audit
from anonlib.dicomvalues import is_kept_uid
from tests.helpers import encoded, run

CT = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
ROOT = "1.2.826.0.1.3680043.10.543.4242."
DCMTK_CODING_SCHEME_UID = "1.2.276.0.7230010.3.0.0.1"
LEAKS_ONLY = AuditOptions(safe_harbor=False, conformance=False)


def _instance(n: int, **values: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = f"{ROOT}{n}.3"
    ds.StudyInstanceUID = f"{ROOT}{n}.1"
    ds.SeriesInstanceUID = f"{ROOT}{n}.2"
    ds.Modality = "CT"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _output(original: Dataset, **values: object) -> Dataset:
    """A de-identified counterpart: new UIDs, a pseudonym, then ``values``."""
    ds = Dataset()
    ds.SpecificCharacterSet = original.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = original.SOPClassUID
    ds.SOPInstanceUID = "2.25.1" + original.SOPInstanceUID.replace(".", "")[-20:]
    ds.StudyInstanceUID = "2.25.2" + original.StudyInstanceUID.replace(".", "")[-20:]
    ds.SeriesInstanceUID = "2.25.3" + original.SeriesInstanceUID.replace(".", "")[-20:]
    ds.Modality = original.Modality
    ds.PatientName = ds.PatientID = "ANONQ7K2M9PX"
    if "PixelData" in values:
        ds.BitsAllocated = 8  # resolves the ambiguous VR (OB or OW) on writing
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _audit(*pairs: tuple[Dataset, Dataset | None], options: AuditOptions = LEAKS_ONLY,
           **kwargs: object) -> AuditResult:
    inputs = [AuditInput(f"#{n}", encoded(out), encoded(orig) if orig is not None else None)
              for n, (out, orig) in enumerate(pairs)]
    return audit(inputs, options=options, **kwargs)  # type: ignore[arg-type]


def _failing(result: AuditResult) -> set[str]:
    return set(result.failing_categories())


def _leak_paths(result: AuditResult, category: str = "A names") -> set[str]:
    return {f.path for f in result.findings if f.check == "leak" and f.category == category
            and f.verdict == "fail"}


# -- 1. UIDs: only valid UIDs of 10+ characters and 3+ components, on component boundaries ------

def test_a_reference_uid_of_0_does_not_make_every_0_an_original_uid() -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = "0"
    original = _instance(1, ReferencedImageSequence=Sequence([item]), ImageComments="1.2.3")
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = "0"
    output = _output(original, ReferencedImageSequence=Sequence([ref]), InstanceNumber="0",
                     ImageComments="0 1.2.3 0.0", WindowCenter="0")
    failing = _failing(_audit((output, original)))
    assert "consistency/original UID" not in failing and "leak/R UIDs" not in failing


@pytest.mark.parametrize(("text", "found"), [
    ("see {uid}.", True),
    ("{uid}", True),
    ("{uid}.5", False),  # inside a longer dotted number
    ("9.{uid}", False),
    ("{uid}5", False),
])
def test_original_uids_match_on_component_boundaries(text: str, found: bool) -> None:
    original = _instance(2)
    output = _output(original, ImageComments=text.format(uid=original.SOPInstanceUID))
    failing = _failing(_audit((output, original)))
    assert ("consistency/original UID" in failing) is found
    assert ("leak/R UIDs" in failing) is found


# -- 2. whole words, never in placeholders, coded values, short or symbol-only values ---------

def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def test_name_parts_never_match_placeholders_or_coded_values() -> None:
    original = _instance(3, PatientName="Text^Name^Perfusion", ReferringPhysicianName="Dft^Qwz")
    content = Dataset()
    content.RelationshipType, content.ValueType = "CONTAINS", "TEXT"
    content.ConceptNameCodeSequence = Sequence([_code("DFT", "DCM", "Perfusion")])
    content.TextValue = "reviewed by [NAME], see [NAME]"
    output = _output(original, ImageType=["DERIVED", "PRIMARY", "PERFUSION", "DFT"],
                     StudyDescription="CT [NAME] head", ContentSequence=Sequence([content]),
                     ConceptNameCodeSequence=Sequence([_code("TEXT", "SCT", "Name")]))
    assert "leak/A names" not in _failing(_audit((output, original)))


def test_a_name_in_free_text_or_a_private_code_meaning_is_still_found() -> None:
    original = _instance(4, PatientName="Text^Name^Perfusion")
    output = _output(original, StudyDescription="Perfusion study",
                     ConceptNameCodeSequence=Sequence([_code("X1", "99LOCAL", "Text of the note")]))
    assert _leak_paths(_audit((output, original))) == {"(0008,1030)", "(0040,A043)[0]>(0008,0104)"}


def test_short_values_and_values_without_a_letter_or_digit_are_never_searched() -> None:
    original = _instance(5, PatientName="Li^Bo", OtherPatientIDs=["--", "A1", "12345"],
                         InstitutionName="()")
    output = _output(original, StudyDescription="Li and Bo -- A1 12345 ()")
    assert not {c for c in _failing(_audit((output, original))) if c.startswith("leak/")}
    leaked = _output(original, StudyDescription="LI BO")  # the whole name is long enough
    assert "leak/A names" in _failing(_audit((leaked, original)))


def test_every_placeholder_the_engine_writes_is_masked_by_the_audit() -> None:
    from anonlib.audit.haystack import _MASK

    engine = Path(__file__).resolve().parents[2] / "anonlib" / "engine"
    placeholders = {m for path in engine.rglob("*.py") for m in re.findall(r'"(\[[A-Z]+\])"', path.read_text())}
    assert {"[NAME]", "[ID]", "[REMOVED]", "[DATE]", "[EMAIL]"} <= placeholders
    assert all(_MASK.sub("", placeholder) == "" for placeholder in placeholders)


def test_dummies_are_not_leaks_of_an_original_that_held_the_same_placeholder() -> None:
    original = _instance(6, PatientName="Anonymized", StudyDate="19000101", AccessionNumber="ANONYMOUS")
    output = _output(original, StudyDate="19000101", StudyDescription="ANONYMIZED",
                     AccessionNumber="ANONYMOUS", InstitutionName="ANONYMIZED")
    assert not {c for c in _failing(_audit((output, original))) if c.startswith("leak/")}


# -- 3. kept UIDs: one policy, engine and audit agree -------------------------------------------

def _sr() -> Dataset:
    scheme = Dataset()
    scheme.CodingSchemeDesignator = "99_OFFIS_DCMTK"
    scheme.CodingSchemeUID = DCMTK_CODING_SCHEME_UID
    evidence = Dataset()
    evidence.StudyInstanceUID = f"{ROOT}77.1"
    series = Dataset()
    series.SeriesInstanceUID = f"{ROOT}77.2"
    sop = Dataset()
    sop.ReferencedSOPClassUID = CT
    sop.ReferencedSOPInstanceUID = f"{ROOT}77.3"
    series.ReferencedSOPSequence = Sequence([sop])
    evidence.ReferencedSeriesSequence = Sequence([series])
    return _instance(7, SOPClassUID=COMPREHENSIVE_SR, Modality="SR", PatientID="PID-884422",
                     PatientName="Zorbalina^Quentavius", StudyDate="20210120", ValueType="CONTAINER",
                     CodingSchemeIdentificationSequence=Sequence([scheme]),
                     CurrentRequestedProcedureEvidenceSequence=Sequence([evidence]),
                     ConceptNameCodeSequence=Sequence([_code("T-1", "99_OFFIS_DCMTK", "Report")]))


def _uids(ds: Dataset) -> dict[str, int]:
    found: dict[str, int] = {}

    def walk(d: Dataset) -> None:
        for element in d:
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)
            elif element.VR == "UI" and element.value:
                found.setdefault(str(element.value), int(element.tag))
    walk(ds)
    return found


def test_engine_and_audit_agree_on_kept_uids() -> None:
    original = _sr()
    output = run(original).dataset
    before, after = _uids(original), set(_uids(output))
    kept = {uid for uid in before if uid in after}
    assert DCMTK_CODING_SCHEME_UID in kept
    assert kept == {uid for uid, tag in before.items() if is_kept_uid(tag, uid)}
    failing = _failing(_audit((output, original)))
    assert "consistency/original UID" not in failing and "leak/R UIDs" not in failing
    remapped = sorted(set(before) - kept)
    assert remapped
    for uid in remapped:  # each remapped UID, planted back, is reported
        planted = run(original).dataset
        planted.ImageComments = f"ref {uid}"
        failing = _failing(_audit((planted, original)))
        assert {"consistency/original UID", "leak/R UIDs"} <= failing, uid


# -- 4. no PatientID: grouped by study -----------------------------------------------------------

def test_instances_without_patient_id_are_grouped_by_study() -> None:
    first = _instance(8, StudyDate="20200101")
    second = _instance(9, StudyDate="20200101")
    result = _audit((_output(first, StudyDate="20190101", PatientID="P1"), first),
                    (_output(second, StudyDate="20200301", PatientID="P2"), second))
    assert not {c for c in _failing(result) if c.startswith("consistency/")}
    again = _instance(8, StudyDate="20200101", SOPInstanceUID=f"{ROOT}8.33")
    result = _audit((_output(first, StudyDate="20190101", PatientID="P1"), first),
                    (_output(again, StudyDate="20190102", PatientID="P1"), again))
    assert "consistency/date shift" in _failing(result)  # one study, two shifts: still caught


# -- 5. character sets: matched as the output encodes text; never shortened; no "?" ------------

NAMES = [
    ("ISO_IR 100", "Müller^Jürgen", "CT Jürgen Müller"),
    ("ISO_IR 192", "Παπαδόπουλος^Νικόλαος", "CT ΠΑΠΑΔΌΠΟΥΛΟΣ"),
    ("ISO_IR 144", "Иванов^Иван", "КТ ИВАНОВ"),
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう", "CT 山田太郎の検査"),
    ("\\ISO 2022 IR 149", "Kim^Chulsoo=김^철수", "CT 김철수의"),
    ("GB18030", "Wang^Xiaoming=王^小明", "CT 王小明"),
]


def _charset(value: str) -> str | list[str]:
    return value.split("\\") if "\\" in value else value


@pytest.mark.parametrize(("charset", "name", "text"), NAMES, ids=[n[0].strip("\\") for n in NAMES])
def test_a_name_is_matched_in_the_character_set_the_output_uses(charset: str, name: str, text: str) -> None:
    original = _instance(10, SpecificCharacterSet=_charset(charset), PatientName=name)
    encodings = convert_encodings(_charset(charset))
    pixels = bytes(range(256)) * 4 + b"^^"
    clean = _output(original, PixelData=pixels, StudyDescription="CT head")
    result = _audit((clean, original))
    assert not {c for c in _failing(result) if c.startswith("leak/")}
    leaked = _output(original, PixelData=pixels, StudyDescription=text)
    leaked.add_new(0x00090010, "LO", "ACME 1.0")
    leaked.add_new(0x00091001, "OB", b"\x00\x01" + encode_string(text, encodings) + b"\x00")
    result = _audit((leaked, original))
    assert _leak_paths(result) == {"(0008,1030)", "(0009,1001)"}
    assert all(f.category != "?" for f in result.findings)


def test_a_name_the_output_cannot_encode_is_never_shortened_to_match_pixels() -> None:
    original = _instance(11, SpecificCharacterSet="ISO_IR 192", PatientName="山田^太郎")
    output = _output(original, SpecificCharacterSet="ISO_IR 100", PixelData=b"^^^^" * 64)
    output.add_new(0x00090010, "LO", "ACME 1.0")
    output.add_new(0x00091001, "OB", b"^\x00^\x00Yamada^")
    result = _audit((output, original))
    assert not {c for c in _failing(result) if c.startswith("leak/")}
    assert all(f.category != "?" for f in result.findings)


# -- 6. name parts: hyphens, spaces, apostrophes, commas; case, accents, controls, suffixes -----

@pytest.mark.parametrize("text", [
    "CT HEAD Zorbalina", "CT HEAD Zorbalinas", "CT HEAD Zorbalina's", "CT HEAD zorbalinas'",
    "CT HEAD ZÖRBALINA", "CT HEAD Smythe", "CT HEAD Zorba\x01lina", "Quentavius, CT",
])
def test_name_parts_are_found_in_every_written_form(text: str) -> None:
    original = _instance(12, PatientName="Zorbalina-Smythe^Quentavius")
    output = _output(original, StudyDescription=text)
    assert _leak_paths(_audit((output, original))) == {"(0008,1030)"}


@pytest.mark.parametrize("name", ["Zorba\x01lina-Smythe^Quentavius", "O'Zorbalina, Smythe^Quentavius",
                                  "Zorbalina Smythe^Quentavius"])
def test_name_parts_are_split_and_controls_ignored(name: str) -> None:
    original = _instance(13, PatientName=name)
    output = _output(original, StudyDescription="CT HEAD Zorbalina")
    assert _leak_paths(_audit((output, original))) == {"(0008,1030)"}


def test_a_name_part_is_not_found_inside_a_longer_word() -> None:
    original = _instance(14, PatientName="Head^Tom^Ct1", OtherPatientIDs="123456")
    output = _output(original, StudyDescription="CT HEADNECK Tomography forehead Head2 CT1a")
    assert "leak/A names" not in _failing(_audit((output, original)))
    output = _output(original, StudyDescription="CT1-2 MRN123456")  # a number may touch letters
    assert {"leak/A names", "leak/H record numbers"} <= _failing(_audit((output, original)))


# -- where text can hide: private blobs, overlays, documents; not image frames ------------------

def test_image_frames_are_not_searched_but_private_blobs_overlays_and_documents_are() -> None:
    original = _instance(15, PatientName="Zorbalina^Quentavius", PatientID="MRN-7788123")
    text = b"\x00Patient Zorbalina MRN-7788123\x00\x00"
    clean = _output(original, PixelData=text * 100)
    assert not {c for c in _failing(_audit((clean, original))) if c.startswith("leak/")}
    hidden = _output(original, PixelData=text * 100, EncapsulatedDocument=text)
    hidden.add_new(0x60003000, "OW", text)
    hidden.add_new(0x00290010, "LO", "ACME 1.0")
    hidden.add_new(0x00291010, "UN", text)
    result = _audit((hidden, original))
    assert _leak_paths(result) == {"(6000,3000)", "(0042,0011)", "(0029,1010)"}
    assert _leak_paths(result, "H record numbers") == {"(6000,3000)", "(0042,0011)", "(0029,1010)"}


def test_random_bytes_never_spell_a_leak_but_readable_text_in_a_blob_does() -> None:
    original = _instance(18, PatientName="Zorbalina^Quentavius")
    noise = random.Random(9).randbytes(64 * 1024)
    compressed = noise[:30000] + b" Zorbalina " + noise[30000:]  # as random bytes might spell it
    readable = noise[:30000] + b"Report for Zorbalina, Quentavius. " * 150 + noise[30000:]
    for blob, found in ((compressed, set()), (readable, {"(0009,1001)"})):
        output = _output(original)
        output.add_new(0x00090010, "LO", "ACME 1.0")
        output.add_new(0x00091001, "OB", blob + b"\x00" * (len(blob) % 2))
        assert _leak_paths(_audit((output, original))) == found


def test_findings_carry_no_value() -> None:
    original = _instance(16, PatientName="Zorbalina^Quentavius", PatientID="MRN-7788123",
                         StudyDate="20210120")
    output = _output(original, ImageComments="Zorbalina MRN-7788123 2021-01-20 " + original.SOPInstanceUID)
    result = _audit((output, original))
    assert {"leak/A names", "leak/H record numbers", "leak/C dates", "leak/R UIDs"} <= _failing(result)
    text = " ".join(" ".join(f.__dict__.values()) for f in result.findings).lower()
    for value in ("zorbalina", "7788123", "2021-01-20", "20210120", original.SOPInstanceUID):
        assert value not in text


def test_file_names_and_manifests_are_searched_the_same_way() -> None:
    original = _instance(17, PatientName="Zorbalina-Smythe^Quentavius", PatientID="MRN-7788123")
    names = {"name, entry 1": "Zorbalinas_CT/0001.dcm", "name, entry 2": "ANON/[NAME]/0002.dcm",
             "content of csv file, entry 3": "file,id\n0003.dcm,MRN-7788123\n"}
    result = _audit((_output(original), original), names=names)
    leaks = {(f.category, f.path) for f in result.findings if f.check == "leak" and f.verdict == "fail"}
    assert leaks == {("A names", "name, entry 1"), ("H record numbers", "content of csv file, entry 3")}


# -- scale: progress, dciodvfy in parallel and in input order ----------------------------------

def test_progress_is_reported_after_each_instance() -> None:
    calls: list[tuple[int, int]] = []
    pairs = [(_output(_instance(20 + n)), _instance(20 + n)) for n in range(3)]
    _audit(*pairs, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_dciodvfy_runs_in_parallel_and_findings_keep_input_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.audit import conformance
    from anonlib.audit.dciodvfy import DciodvfyReport

    running, peak, lock = [0], [0], threading.Lock()

    def fake(path: Path, **_: object) -> DciodvfyReport:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        time.sleep(0.3 if str(ds.get("InstanceNumber", "")) == "0" else 0.05)  # the first finishes last
        with lock:
            running[0] -= 1
        output = "ANON" in str(ds.get("PatientName", ""))
        return DciodvfyReport(errors=[f"error {ds.InstanceNumber}"] if output else [])

    monkeypatch.setattr(conformance, "run_dciodvfy", fake)
    monkeypatch.setattr(conformance, "workers", lambda: 4)
    originals = [_instance(30 + n) for n in range(4)]
    pairs = [(_output(o, InstanceNumber=str(n)), o) for n, o in enumerate(originals)]
    result = _audit(*pairs, options=AuditOptions(safe_harbor=False, leaks=False, consistency=False))
    order = [f.detail[-1] for f in result.findings if f.category == "dciodvfy" and f.verdict == "fail"]
    assert order == ["0", "1", "2", "3"]
    assert peak[0] > 1
