"""The HIPAA Safe Harbor scan: each verdict rule on hand-built datasets (each rule shown able to
fail), then the real engine's output of the corpus (no fail) and a naive copy (fails where the
corpus plants identifiers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from anonlib.audit.model import Finding
from anonlib.audit.safe_harbor import detect_date_mode, regulatory_status, scan_safe_harbor
from anonlib.audit.safe_harbor.table import (
    categories,
    keyword_letters,
    label,
    letters_for,
    unresolved_keywords,
)
from anonlib.audit.safe_harbor.values import is_dummy
from anonlib.folder_run import RunSettings, run_folder
from anonlib.profile.options import DEFAULT_OPTIONS, Option
from anonlib.profile.site import SiteProfile
from anonlib.synthetic import Corpus
from tests.naive import naive_copies

PSEUDONYM = "ANONQ7K2M9PX"
NEW_UID = "2.25.302215337219843757451281950924451826318"
CT = "1.2.840.10008.5.1.4.1.1.2"
US = "1.2.840.10008.5.1.4.1.1.6.1"
#: pydicom 3.0.2 predates these keywords of the table (they are caught by VR where possible).
UNRESOLVED = {"NameToUse", "DisplayURI", "SexParametersForClinicalUseCategoryReference",
              "EffectiveStartDateTime", "EffectiveStopDateTime", "AnnotationDateTime",
              "SegmentDefinitionDateTime"}


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", "x"
    return item


def deidentified(mode: str = "MODIFIED", **values: object) -> Dataset:
    """A small de-identified CT header: pseudonym, markers, remapped UIDs, then ``values``."""
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = NEW_UID
    ds.StudyInstanceUID = NEW_UID + "1"
    ds.Modality = "CT"
    ds.PatientName = PSEUDONYM
    ds.PatientID = PSEUDONYM
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethodCodeSequence = [_code("113100"), _code("113107")]
    if mode:
        ds.LongitudinalTemporalInformationModified = mode
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def scan(ds: Dataset) -> dict[str, Finding]:
    findings = scan_safe_harbor(ds, study="study-1", instance="instance-1")
    by_path = {f.path: f for f in findings}
    assert len(by_path) == len(findings), "one finding per path"
    return by_path


def verdict(ds: Dataset, path: str) -> tuple[str, str]:
    finding = scan(ds)[path]
    return finding.category, finding.verdict


# -- the table -------------------------------------------------------------------------------
def test_the_table_has_eighteen_categories_resolved_by_pydicom() -> None:
    assert sorted(categories()) == [chr(c) for c in range(ord("A"), ord("R") + 1)]
    assert categories()["C"].cfr == "164.514(b)(2)(i)(C)"
    assert keyword_letters()["PatientID"] == {"G", "H"}
    assert keyword_letters()["OverlayData"] == {"Q"}  # a repeating-group keyword
    assert unresolved_keywords() == UNRESOLVED
    assert letters_for("", "PN") == {"A"} and letters_for("", "DT") == {"C"}
    assert label({"R"}, uid=True) == "R UIDs" and label({"H", "G"}) == "G/H SSN, MRN"


def test_known_dummies() -> None:
    for value, vr in (("ANONYMIZED", "LO"), ("[NAME]^[NAME]", "PN"), ("19000101", "DA"),
                      ("000000", "TM"), ("000Y", "AS"), ("0", "DS"), (b"\0\0", "OB"),
                      ("urn:anonymized", "UR")):
        assert is_dummy(value, vr), value
    for value, vr in (("Smith^Ann", "PN"), ("19000102", "DA"), ("101500", "TM"), ("2", "IS")):
        assert not is_dummy(value, vr), value


# -- date mode and regulatory status ---------------------------------------------------------
@pytest.mark.parametrize(("flag", "codes", "mode"), [
    ("MODIFIED", [], "shift"), ("UNMODIFIED", [], "keep"), ("REMOVED", [], "remove"),
    ("", ["113100", "113107"], "shift"), ("", ["113100", "113106"], "keep"),
    ("", ["113100"], "remove"), ("", [], "unknown"),
])
def test_date_mode_from_the_markers(flag: str, codes: list[str], mode: str) -> None:
    ds = deidentified(flag)
    ds.DeidentificationMethodCodeSequence = [_code(c) for c in codes]
    assert detect_date_mode(ds) == mode


def test_regulatory_status_per_mode() -> None:
    shift, keep, remove = (regulatory_status(m) for m in ("shift", "keep", "remove"))
    assert "not de-identified under the HIPAA Safe Harbor" in shift and "164.514(b)(1)" in shift
    assert "164.514(e)" in shift and "data use agreement" in shift
    assert "Full Dates" in keep and "164.514(e)" in keep
    assert "consistent with the date rule" in remove and "no other finding fails" in remove
    assert regulatory_status("mixed") == regulatory_status("unknown") != remove


# -- A names, G/H IDs ------------------------------------------------------------------------
def test_pseudonym_is_expected_and_cites_the_re_identification_code_rule() -> None:
    findings = scan(deidentified())
    name, pid = findings["(0010,0010)"], findings["(0010,0020)"]
    assert (name.category, name.verdict) == ("A names", "expected")
    assert (pid.category, pid.verdict) == ("G/H SSN, MRN", "expected")
    assert "164.514(c)" in name.detail and "164.514(c)" in pid.detail


def test_names_and_ids_other_than_the_pseudonym_fail() -> None:
    ds = deidentified(OtherPatientNames="Thistlewood^Imogen", ReferringPhysicianName="Dr^Who",
                      IssuerOfPatientID="HOSP_MRN")
    assert verdict(ds, "(0010,1001)") == ("A names", "fail")
    assert verdict(ds, "(0008,0090)") == ("A names", "fail")
    assert verdict(ds, "(0010,0021)") == ("G/H SSN, MRN", "fail")
    ds.PatientID = "83046040"  # an ID that is not the name's pseudonym: cannot be told from an MRN
    assert verdict(ds, "(0010,0020)") == ("G/H SSN, MRN", "fail")
    assert verdict(ds, "(0010,0010)") == ("A names", "fail")


def test_dummy_names_pass_and_the_pseudonym_elsewhere_is_expected() -> None:
    item = Dataset()
    item.PersonName = PSEUDONYM
    ds = deidentified(OperatorsName="ANONYMIZED", PerformingPhysicianName="[NAME]^[NAME]",
                      ContentSequence=[item])
    assert verdict(ds, "(0008,1070)") == ("A names", "pass")
    assert verdict(ds, "(0008,1050)") == ("A names", "pass")
    assert verdict(ds, "(0040,A730)[0]>(0040,A123)") == ("A names", "expected")


# -- C dates, times, ages --------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "expected_date", "expected_time"), [
    ("MODIFIED", "expected", "expected"), ("UNMODIFIED", "fail", "expected"),
    ("REMOVED", "fail", "fail"), ("", "fail", "fail"),
])
def test_dates_and_times_by_mode(flag: str, expected_date: str, expected_time: str) -> None:
    ds = deidentified(flag, StudyDate="20190731", StudyTime="101500", AcquisitionDateTime="20190731101500")
    if not flag:
        del ds.DeidentificationMethodCodeSequence
    assert verdict(ds, "(0008,0020)") == ("C dates", expected_date)
    assert verdict(ds, "(0008,002A)") == ("C dates", expected_date)
    assert verdict(ds, "(0008,0030)") == ("C dates", expected_time)
    if flag == "MODIFIED":
        assert "Expert Determination" in scan(ds)["(0008,0020)"].detail


def test_dummy_dates_pass_and_year_only_datetime_passes_in_any_mode() -> None:
    ds = deidentified("REMOVED", StudyDate="19000101", StudyTime="000000", AcquisitionDateTime="2019")
    assert verdict(ds, "(0008,0020)") == ("C dates", "pass")
    assert verdict(ds, "(0008,0030)") == ("C dates", "pass")
    assert verdict(ds, "(0008,002A)") == ("C dates", "pass")


def test_dates_are_judged_by_vr_at_any_depth() -> None:
    item = Dataset()
    item.Date = "20190731"  # SR DATE content item
    ds = deidentified("REMOVED", ContentSequence=[item], DateOfLastCalibration="20190101")
    assert verdict(ds, "(0040,A730)[0]>(0040,A121)") == ("C dates", "fail")
    assert verdict(ds, "(0018,1200)") == ("C dates", "fail")


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")
@pytest.mark.parametrize(("age", "expected"), [("093Y", "fail"), ("090Y", "expected"),
                                               ("045Y", "pass"), ("006M", "pass"), ("93", "fail")])
def test_ages(age: str, expected: str) -> None:
    assert verdict(deidentified(PatientAge=age), "(0010,1010)") == ("C dates", expected)


def test_birth_date_of_a_patient_aged_90_fails_even_when_shifted() -> None:
    ds = deidentified(PatientBirthDate="19290101", StudyDate="20190731")
    assert verdict(ds, "(0010,0030)") == ("C dates", "fail")
    ds.PatientBirthDate = "19600101"
    assert verdict(ds, "(0010,0030)") == ("C dates", "expected")
    ds.PatientAge = "090Y"
    assert verdict(ds, "(0010,0030)") == ("C dates", "fail")


# -- R UIDs ----------------------------------------------------------------------------------
def test_uids_remapped_are_expected_and_registry_uids_are_not_reported() -> None:
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.543.1"
    ds = deidentified(ReferencedImageSequence=[ref])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT
    ds.file_meta.MediaStorageSOPInstanceUID = NEW_UID
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    findings = scan(ds)
    assert (findings["(0008,0018)"].category, findings["(0008,0018)"].verdict) == ("R UIDs", "expected")
    assert findings["(0008,1140)[0]>(0008,1155)"].verdict == "expected"
    assert findings["(0002,0003)"].verdict == "expected"
    assert "consistency check" in findings["(0008,0018)"].detail
    for registry in ("(0008,0016)", "(0008,1140)[0]>(0008,1150)", "(0002,0002)", "(0002,0010)"):
        assert registry not in findings


# -- free text, other categories, sequences, private -----------------------------------------
def test_free_text_is_a_warning_whatever_its_category() -> None:
    ds = deidentified(StudyDescription="CT CHEST [NAME]", PatientComments="seen by [NAME]",
                      ImageComments="ANONYMIZED")
    assert verdict(ds, "(0008,1030)") == ("free text", "warn")
    assert verdict(ds, "(0010,4000)") == ("R other IDs", "warn")
    assert "(0020,4000)" not in scan(ds)  # dummy text outside every category


def test_structured_values_of_a_category_fail_and_their_dummies_pass() -> None:
    ds = deidentified(PatientTelecomInformation="ann@example.net", PatientTelephoneNumbers="555-0101",
                      PatientAddress="12 Wrenfield Lane", StationName="CT01", AccessionNumber="RA123",
                      RetrieveURL="https://pacs.example.org/x", DeviceSerialNumber="ANONYMIZED")
    assert verdict(ds, "(0010,2155)") == ("D/E/F phone, fax, e-mail", "fail")
    assert verdict(ds, "(0010,2154)") == ("D phone", "fail")
    assert verdict(ds, "(0010,1040)") == ("B geography", "fail")
    assert verdict(ds, "(0008,1010)") == ("M device", "fail")
    assert verdict(ds, "(0008,0050)") == ("J/R account, other IDs", "fail")
    assert verdict(ds, "(0008,1190)") == ("N/O URL, IP", "fail")
    assert verdict(ds, "(0018,1000)") == ("M device", "pass")


def test_a_category_sequence_with_values_fails_and_its_content_is_judged() -> None:
    other = Dataset()
    other.PatientID = "S1234567"
    other.TypeOfPatientID = "TEXT"
    ds = deidentified(OtherPatientIDsSequence=[other])
    assert verdict(ds, "(0010,1002)") == ("G/H SSN, MRN", "fail")
    assert verdict(ds, "(0010,1002)[0]>(0010,0020)") == ("G/H SSN, MRN", "fail")
    other.PatientID = "ANONYMIZED"
    other.TypeOfPatientID = ""
    assert verdict(ds, "(0010,1002)") == ("G/H SSN, MRN", "pass")


def test_private_elements_are_warnings_at_any_depth_and_their_content_is_judged() -> None:
    ds = deidentified()
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "whatever")
    item = Dataset()
    item.private_block(0x0011, "ACME 1.0", create=True).add_new(0x10, "LO", "x")
    item.PatientName = "Thistlewood^Imogen"
    block.add_new(0x02, "SQ", [item])
    findings = scan(ds)
    for path in ("(0011,0010)", "(0011,1001)", "(0011,1002)", "(0011,1002)[0]>(0011,1010)"):
        assert (findings[path].category, findings[path].verdict) == ("private", "warn")
    assert findings["(0011,1002)[0]>(0010,0010)"].verdict == "fail"


# -- pixels and markers ----------------------------------------------------------------------
@pytest.mark.parametrize(("sop", "modality", "burned", "body", "expected"), [
    (CT, "CT", "YES", "", "fail"), (US, "US", None, "", "warn"), (US, "US", "NO", "", "pass"),
    (CT, "OT", None, "", "warn"), (CT, "CT", None, "CHEST", "pass"), (CT, "CT", None, "HEAD", "warn"),
])
def test_pixels_at_risk(sop: str, modality: str, burned: str | None, body: str, expected: str) -> None:
    ds = deidentified(SOPClassUID=sop, Modality=modality, PixelData=b"\0\1" * 8)
    if burned:
        ds.BurnedInAnnotation = burned
    if body:
        ds.BodyPartExamined = body
    pixels = [f for f in scan_safe_harbor(ds, study="s", instance="i") if f.category == "P/Q pixels"]
    assert [f.verdict for f in pixels] == [expected]


def test_no_pixel_finding_without_pixel_data() -> None:
    assert all(f.category != "P/Q pixels" for f in scan_safe_harbor(deidentified(), study="s", instance="i"))


def test_markers() -> None:
    assert verdict(deidentified(), "(0012,0062)") == ("markers", "pass")
    ds = deidentified(PatientIdentityRemoved="NO")
    del ds.DeidentificationMethodCodeSequence
    assert verdict(ds, "(0012,0062)") == ("markers", "fail")
    assert verdict(ds, "(0012,0064)") == ("markers", "fail")


def test_findings_never_hold_a_value_from_the_dataset() -> None:
    secrets = {"Thistlewood", "Imogen", "83046040", "20190731", "Wrenfield", "555-0101", "093Y",
               "ann@example.net", "RA123", "HOSP_MRN", "1.2.826.0.1.3680043.10.543"}
    ds = deidentified("", PatientID="83046040", OtherPatientNames="Thistlewood^Imogen",
                      StudyDate="20190731", PatientAddress="12 Wrenfield Lane", PatientAge="093Y",
                      PatientTelephoneNumbers="555-0101", PatientTelecomInformation="ann@example.net",
                      AccessionNumber="RA123", IssuerOfPatientID="HOSP_MRN",
                      StudyDescription="Thistlewood 83046040", FrameOfReferenceUID="1.2.826.0.1.3680043.10.543.9")
    text = " ".join(" ".join(map(str, f.__dict__.values())) for f in scan_safe_harbor(ds, study="s", instance="i"))
    assert not [s for s in secrets if s in text]


# -- real outputs ----------------------------------------------------------------------------
def _outputs(root: Path) -> Iterator[Dataset]:
    for path in sorted(root.rglob("*.dcm")):
        yield pydicom.dcmread(path)


def _scan_all(datasets: Iterator[Dataset]) -> list[Finding]:
    findings: list[Finding] = []
    for number, ds in enumerate(datasets):
        findings += scan_safe_harbor(ds, study="study", instance=f"instance-{number}")
    return findings


@pytest.fixture(scope="module")
def engine_output(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sh-engine")
    run_folder(RunSettings(corpus.root, tmp / "out", db_url=f"sqlite:///{tmp / 'store.sqlite3'}"))
    return tmp / "out"


def test_engine_output_of_the_corpus_has_no_failure(engine_output: Path) -> None:
    findings = _scan_all(_outputs(engine_output))
    assert findings and not [f for f in findings if f.verdict == "fail"]
    expected = {f.category for f in findings if f.verdict == "expected"}
    assert {"A names", "G/H SSN, MRN", "C dates", "R UIDs"} <= expected
    assert not [f for f in findings if f.category == "private"]


def test_engine_output_with_dates_removed_has_no_failure_and_no_kept_date(
        corpus: Corpus, tmp_path: Path) -> None:
    options = frozenset(DEFAULT_OPTIONS - {Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})
    run_folder(RunSettings(corpus.root, tmp_path / "out", db_url=f"sqlite:///{tmp_path / 's.sqlite3'}",
                           profile=SiteProfile(options=options)))
    findings = _scan_all(_outputs(tmp_path / "out"))
    assert {detect_date_mode(ds) for ds in _outputs(tmp_path / "out")} == {"remove"}
    assert not [f for f in findings if f.verdict == "fail"]
    assert not [f for f in findings if f.category == "C dates" and f.verdict != "pass"]


def test_naive_copy_fails_in_every_category_the_corpus_plants(corpus: Corpus) -> None:
    findings = _scan_all(naive_copies(corpus))
    failing = {f.category.split(" ")[0] for f in findings if f.verdict == "fail"}
    letters = {letter for category in failing for letter in category.split("/")}
    assert {"A", "B", "C", "D", "F", "M", "N"} <= letters
    assert {"H", "J"} & letters
    assert "markers" in failing
    assert any(f.category == "private" and f.verdict == "warn" for f in findings)
    text = "\n".join(" ".join(map(str, f.__dict__.values())) for f in findings)
    assert not [value for value in corpus.phi_values() if value in text]
