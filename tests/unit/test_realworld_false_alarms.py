"""False alarms and gaps found by the real-world corpus (tests/integration/test_realworld_corpus.py),
each reduced to the smallest case: engine and audit run together where they must agree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anonlib.audit import conformance
from anonlib.audit.dciodvfy import parse_output
from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import tree_names
from anonlib.dicomvalues import is_standard_code
from tests.helpers import CT, encoded, minimal, run

LEAKS_ONLY = AuditOptions(safe_harbor=False, conformance=False)


def _engine_then_audit(original: Dataset, plant: dict[str, object] | None = None,
                       names: dict[str, str] | None = None) -> tuple[Dataset, AuditResult]:
    before = encoded(original.copy())
    output = run(original.copy()).dataset
    for keyword, value in (plant or {}).items():
        setattr(output, keyword, value)
    result = audit([AuditInput("#1", encoded(output), before)], options=LEAKS_ONLY, names=names)
    return output, result


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def test_standard_codes_are_told_from_private_and_local_ones() -> None:
    assert is_standard_code(_code("121106", "DCM", "Comment"))
    assert is_standard_code(_code("T-62000", "SRT", "Liver"))
    assert not is_standard_code(_code("1", "99_OFFIS_DCMTK", "Recording Observer's Name"))
    assert not is_standard_code(_code("1", "L", "Local code"))
    assert not is_standard_code(Dataset())  # no designator (a URN code): not a standard one


def test_a_private_code_meaning_is_scrubbed_by_the_engine_and_the_audit_agrees() -> None:
    """reportsi.dcm: PatientName "Last Name^First Name", a DCMTK code meaning "Recording
    Observer's Name": the audit searched it, the engine never scrubbed codes — every DCMTK SR
    failed. Now the engine scrubs known values from private/local code meanings (standard
    ones are kept) and the audit passes its output; planted back, the name fails again."""
    original = minimal(CT, PatientName="Last Name^First Name", ConceptNameCodeSequence=Sequence([
        _code("1", "99_OFFIS_DCMTK", "Recording Observer's Name")]),
        AnatomicRegionSequence=Sequence([_code("T-D1100", "SRT", "Head and Neck Name")]))
    output, result = _engine_then_audit(original)
    assert output.ConceptNameCodeSequence[0].CodeMeaning == "Recording Observer's [NAME]"
    assert output.AnatomicRegionSequence[0].CodeMeaning == "Head and Neck Name"  # standard: kept
    assert result.status == "PASS", result.failing_categories()
    _, planted = _engine_then_audit(original, {"ConceptNameCodeSequence": Sequence([
        _code("1", "99_OFFIS_DCMTK", "Recording Observer's Name")])})
    assert "leak/A names" in planted.failing_categories()


def test_a_name_in_a_private_person_name_element_is_scrubbed_from_kept_text() -> None:
    """deid-data ctbrain1.dcm: a private PN (0033,101E) "SyngoWorkflow^RIS^CCF" and
    AdditionalPatientHistory "… RIS COMMENTS …": the audit (which reads every PN) found "RIS";
    the engine collected no private names. Now it does, and the audit passes."""
    original = minimal(CT, PatientName="Doe^John", AdditionalPatientHistory="see RIS COMMENTS for Syngoworkflow")
    original.private_block(0x0033, "ACME PRIVATE", create=True).add_new(0x1E, "PN", "SyngoWorkflow^RIS^CCF")
    output, result = _engine_then_audit(original)
    assert "RIS" not in str(output.AdditionalPatientHistory)
    assert "syngoworkflow" not in str(output.AdditionalPatientHistory).lower()
    assert result.status == "PASS", result.failing_categories()


def test_the_deidentification_method_is_not_searched() -> None:
    """deid-data: InstitutionalDepartmentName "DEFAULT" matched "profile default" in the
    engine's own DeidentificationMethod."""
    original = minimal(CT, InstitutionalDepartmentName="DEFAULT")
    output, result = _engine_then_audit(original)
    assert "default" in str(output.DeidentificationMethod).lower()
    assert result.status == "PASS", result.failing_categories()
    _, planted = _engine_then_audit(original, {"ImageComments": "DEFAULT"})
    assert planted.failing_categories() == ["leak/institution"]


def test_a_csv_header_row_is_not_searched_but_its_rows_are(tmp_path: Path) -> None:
    """pydicom-data mlut_18.dcm: PatientName "Modality^LUT^Test" matched the ``modality``
    column of the quarantine manifest."""
    (tmp_path / "quarantine.csv").write_text("path,modality,status\nA/1.dcm,CT,quarantined\n")
    original = minimal(CT, PatientName="Modality^LUT^Test")
    _, result = _engine_then_audit(original, names=tree_names(tmp_path))
    assert result.status == "PASS", result.failing_categories()
    (tmp_path / "quarantine.csv").write_text("path,modality,status\nA/1.dcm,Modality,quarantined\n")
    _, leaked = _engine_then_audit(original, names=tree_names(tmp_path))
    assert leaked.failing_categories() == ["leak/A names"]


def test_shifted_dates_in_names_are_not_matched_against_every_original_date() -> None:
    """One patient's shifted StudyDate equal to another patient's original date (32 of pydicom's
    files share one date) made the folder names 'leak' dates in about 1 run in 8."""
    first = minimal(CT, StudyDate="20080504")
    second = minimal(CT, PatientID="7654321", StudyDate="20040826")
    second.SOPInstanceUID, second.StudyInstanceUID = first.SOPInstanceUID + ".2", first.StudyInstanceUID + ".2"
    inputs = []
    for ds in (first, second):
        inputs.append(AuditInput(ds.PatientID, encoded(run(ds.copy()).dataset), encoded(ds.copy())))
    names = {"file or folder name, entry 1 of the output tree": "ANON1/20040826_abc/1_CT"}
    # (the test lookup gives both patients one pseudonym: the consistency check is not the point)
    result = audit(inputs, options=AuditOptions(safe_harbor=False, conformance=False, consistency=False),
                   names=names)
    assert result.date_mode == "shift" and result.status == "PASS", result.failing_categories()


def test_a_carriage_return_in_a_value_never_reaches_a_dciodvfy_finding() -> None:
    """deid-data RGB_IMAGE.dcm: ReasonForStudy "test\\rRIS COMMENTS-" split dciodvfy's line
    there, so the message kept "<test" (a value) and differed from the output's."""
    line = "Error - Value invalid for this VR - (0x0032,0x1030) LO Reason for Study LO [1] = <{}> - bad"
    original = parse_output(line.format("test\rRIS COMMENTS-"))
    output = parse_output(line.format("[NAME]"))
    assert original.errors == output.errors
    assert "test" not in original.errors[0] and "NAME" not in output.errors[0]


def test_a_deflated_file_is_validated_inflated(tmp_path: Path) -> None:
    """dciodvfy reads the Deflated transfer syntax as garbage (different garbage for original
    and output: "introduced" errors by chance)."""
    report = conformance._report(Path(get_testdata_file("image_dfl.dcm")), tmp_path, "x.dcm")
    assert not any("read failed" in e for e in report.errors), report.errors
    assert report.iods


def test_a_dciodvfy_that_does_not_finish_makes_the_instance_incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_slow(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired("dciodvfy", 1)

    monkeypatch.setattr("anonlib.audit.dciodvfy.subprocess.run", too_slow)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data = encoded(run(ds).dataset)
    findings = conformance.check_conformance(data, None, study="s", instance="i")
    assert [(f.verdict, f.category) for f in findings] == [("incomplete", "dciodvfy")]
