"""The dciodvfy wrapper against the real dicom3tools binary, and the corpus's conformance."""

from __future__ import annotations

import stat
import warnings
from pathlib import Path

import pydicom
import pytest

from anonlib.audit.dciodvfy import (
    DciodvfyNotFoundError,
    DciodvfyReport,
    introduced_errors,
    normalize,
    run_dciodvfy,
)
from anonlib.errors import AnonlibError
from anonlib.synthetic import Corpus
from anonlib.synthetic.conformance import expected_dciodvfy_errors

pytestmark = pytest.mark.integration

MISSING_PATIENT_ID = "Missing attribute Type 2 Required Element=<PatientID> Module=<Patient>"
MISSING_IMAGE_TYPE = "Missing attribute Type 1 Required Element=<ImageType> Module=<CTImage>"
BAD_SERIES_DATE = ("Value invalid for this VR - (0x0008,0x0021) DA Series Date DA [#] = <*> - "
                   "Character invalid for this VR = '*' (#)")
LONG_NAME = ("Value invalid for this VR - (0x0010,0x0010) PN Patient's Name PN [#] = <*> - "
             "Length invalid for this VR = #, expected <= #")


@pytest.fixture
def ct(corpus: Corpus) -> Path:
    return next(f.path for f in corpus.files if f.patient == "patient-1" and f.kind == "CT")


def _variant(source: Path, target: Path, **changes: object) -> Path:
    """A copy of ``source`` with attributes set (or deleted, for ``None``); invalid values
    are wanted here, so pydicom's warnings about them are silenced."""
    ds = pydicom.dcmread(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
    ds.save_as(target)
    return target


def _fake(tmp_path: Path, script: str) -> str:
    program = tmp_path / "dciodvfy"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(program)


def test_missing_executable_is_a_clear_anonlib_error(ct: Path) -> None:
    with pytest.raises(DciodvfyNotFoundError, match="dicom3tools") as raised:
        run_dciodvfy(ct, executable="dciodvfy-not-installed")
    assert isinstance(raised.value, AnonlibError)


def test_a_clean_original_has_no_errors_but_its_warnings(ct: Path) -> None:
    report = run_dciodvfy(ct)
    assert report.iods == ["CTImage"]
    assert report.errors == []
    assert "Attribute is not present in standard DICOM IOD - (0x0010,0x1040) LO Patient's Address" \
        in report.warnings


def test_parses_real_errors_into_kinds(ct: Path, tmp_path: Path) -> None:
    broken = _variant(ct, tmp_path / "broken.dcm", PatientID=None, SeriesDate="20231345")
    report = run_dciodvfy(broken)
    assert MISSING_PATIENT_ID in report.errors
    assert BAD_SERIES_DATE in report.errors
    assert not any("20231345" in m or "1345" in m for m in report.errors + report.warnings)


def test_same_error_with_different_values_compares_equal(ct: Path, tmp_path: Path) -> None:
    one = _variant(ct, tmp_path / "one.dcm", SeriesDate="20231345",
                   PatientName="Quennell^" + "Marguerite" * 7)
    two = _variant(ct, tmp_path / "two.dcm", SeriesDate="19991399",
                   PatientName="Abernathy^" + "Thaddeus" * 9)
    first, second = run_dciodvfy(one), run_dciodvfy(two)
    assert BAD_SERIES_DATE in first.errors and LONG_NAME in first.errors
    assert sorted(first.errors) == sorted(second.errors)
    messages = "\n".join(first.errors + first.warnings + second.errors + second.warnings)
    for value in ("Quennell", "Abernathy", "Marguerite", "20231345", "19991399"):
        assert value not in messages


def test_normalize_keeps_the_kind_and_drops_values() -> None:
    assert normalize("Unrecognized enumerated value <X> for value 1 of attribute <Patient's Sex>") \
        == "Unrecognized enumerated value <*> for value # of attribute <Patient's Sex>"
    assert normalize('Illegal root for UID - "9.8.7.6" in (0x0008,0x1155) Referenced SOP '
                     "Instance UID") == \
        'Illegal root for UID - "*" in (0x0008,0x1155) Referenced SOP Instance UID'
    assert normalize("Missing attribute Type 1C Conditional Element=<X> Module=<Y>") == \
        "Missing attribute Type 1C Conditional Element=<X> Module=<Y>"
    assert normalize("have 3 items - but 1 frames") == normalize("have 7 items - but 2 frames")
    assert "Smith" not in normalize("PN [1] = <Smith>John - Retired Person Name form")


def test_introduced_errors_is_a_multiset_difference() -> None:
    original = DciodvfyReport(errors=["a", "b", "b"])
    output = DciodvfyReport(errors=["b", "c", "b", "b", "a"])
    assert introduced_errors(original, output) == ["c", "b"]
    assert introduced_errors(output, original) == []
    assert introduced_errors(original, original) == []


def test_introduced_errors_on_real_files(ct: Path, tmp_path: Path) -> None:
    original = run_dciodvfy(_variant(ct, tmp_path / "orig.dcm", PatientID=None))
    output = run_dciodvfy(_variant(ct, tmp_path / "out.dcm", PatientID=None, ImageType=None))
    assert introduced_errors(original, original) == []
    introduced = introduced_errors(original, output)
    assert MISSING_IMAGE_TYPE in introduced
    assert MISSING_PATIENT_ID not in introduced


def test_a_crash_of_dciodvfy_is_an_error(ct: Path, tmp_path: Path) -> None:
    program = _fake(tmp_path, 'echo "CTImage" >&2\nkill -ABRT $$')
    report = run_dciodvfy(ct, executable=program)
    assert report.errors == ["Abort: dciodvfy terminated by signal SIGABRT"]


def test_a_hanging_dciodvfy_times_out(ct: Path, tmp_path: Path) -> None:
    program = _fake(tmp_path, "sleep 5")
    with pytest.raises(AnonlibError, match="did not finish"):
        run_dciodvfy(ct, executable=program, timeout=0.5)


def test_originals_have_only_the_documented_errors(corpus: Corpus) -> None:
    planted = corpus.phi_values()
    for f in corpus.files:
        if f.kind == "bad":
            continue
        report = run_dciodvfy(f.path)
        assert report.iods, f
        assert sorted(report.errors) == expected_dciodvfy_errors(f.patient, f.kind), f
        messages = "\n".join(report.errors + report.warnings)
        assert not [v for v in planted if len(v) > 5 and v in messages], f


def test_bad_files_fail_validation(corpus: Corpus) -> None:
    for f in corpus.files:
        if f.kind == "bad":
            assert run_dciodvfy(f.path).errors, f
