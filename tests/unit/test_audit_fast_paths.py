"""The audit's shortcuts give what the long way gives: the SOP Instance UID and the profile marker read up
to their element only, the summary counted without pandas, and the command printing it without importing pandas
or matplotlib (issue 12: the audit's speed)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.audit.model import AuditInput, AuditResult, Finding
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs, profile_of, sop_uid_of
from anonlib.synthetic import Corpus
from anonlib.synthetic.malformed import write_malformed


def _full_read(data: bytes) -> str | None:
    """What sop_uid_of gave before: the header read up to the pixel data."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=["SOPInstanceUID"])
    value = ds.get("SOPInstanceUID")
    return str(value).strip(" \x00") if value else None


def test_sop_uid_of_equals_the_full_header_read_on_the_corpus(corpus: Corpus) -> None:
    checked = 0
    for file in corpus.files:
        data = file.path.read_bytes()
        try:
            expected = _full_read(data)
        except Exception:  # noqa: BLE001 - a file the long way could not read either
            continue
        assert sop_uid_of(file.path) == expected == sop_uid_of(data), file.path.name
        checked += expected is not None
    assert checked >= 40


def test_sop_uid_of_finds_a_uid_written_out_of_order(tmp_path: Path) -> None:
    """(0008,0018) after a later element: the early stop misses it, the header read finds it."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    uid = str(ds.SOPInstanceUID)
    del ds.SOPInstanceUID
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    value = uid.encode() + (b"\x00" if len(uid) % 2 else b"")
    data = out.getvalue() + struct.pack("<HH2sH", 0x0008, 0x0018, b"UI", len(value)) + value
    assert sop_uid_of(data) == uid
    path = tmp_path / "late.dcm"
    path.write_bytes(data)
    assert sop_uid_of(path) == uid


def test_an_output_damaged_after_its_uid_is_audited_and_fails(tmp_path: Path) -> None:
    """Fail closed: an output whose sequence is never closed (the header read raises) was left
    out of the audit; read up to its UID, it is audited and reported unreadable."""
    files = write_malformed(tmp_path / "out", select=lambda kind: kind == "unclosed sequence")
    assert files
    for file in files:
        data = file.path.read_bytes()
        with pytest.raises(OSError):
            _full_read(data)
        assert sop_uid_of(data) is not None
    inputs = folder_inputs(tmp_path / "out", None, None)
    assert len(inputs) == len(files)
    result = audit(inputs, options=AuditOptions(conformance=False, pixels="off", consistency=False))
    unreadable = [f for f in result.findings if f.category == "readable" and f.verdict == "fail"]
    assert len(unreadable) == len(files) and result.status == "FAIL"
    assert sop_uid_of(b"not dicom at all") is None


def _mixed_result() -> AuditResult:
    findings = [Finding("safe_harbor", "A names", "fail"), Finding("safe_harbor", "A names", "expected"),
                Finding("leak", "all categories", "pass"), Finding("pixels", "all categories", "skipped"),
                Finding("conformance", "dciodvfy", "incomplete"), Finding("conformance", "dciodvfy", "warn"),
                Finding("consistency", "pseudonym", "pass"), Finding("safe_harbor", "free text", "warn"),
                Finding("consistency", "reference", "skipped"), Finding("consistency", "reference", "pass")]
    return AuditResult(findings=findings, instances=2)


def test_summary_rows_are_the_summary_without_pandas() -> None:
    for result in (_mixed_result(), AuditResult()):
        expected = [{key: (int(v) if not isinstance(v, str) else v) for key, v in row.items()}
                    for row in result.summary().to_dict("records")]
        assert result.summary_rows() == expected
    results = {(r["check"], r["category"]): r["result"] for r in _mixed_result().summary_rows()}
    assert results[("pixels", "all categories")] == "SKIPPED"
    assert results[("consistency", "reference")] == "PASS"
    assert results[("conformance", "dciodvfy")] == "INCOMPLETE"


def test_the_audit_summary_imports_neither_pandas_nor_matplotlib_nor_httpx() -> None:
    code = ("import sys\n"
            "from anonlib.audit.cli import print_summary\n"
            "from anonlib.audit.model import AuditInput, AuditResult, Finding\n"
            "print_summary(AuditResult(findings=[Finding('leak', 'A names', 'fail')], instances=1))\n"
            "print(sorted(m for m in ('pandas', 'matplotlib', 'httpx') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "leak" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"


def test_the_profile_marker_is_read_up_to_deidentification_method() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.DeidentificationMethod = ["anonlib 1.0", "profile radiology-research 0123abcd"]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    marked = out.getvalue()
    plain = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    assert profile_of([AuditInput("a", marked), AuditInput("b", marked)]) == "radiology-research"
    assert profile_of([AuditInput("a", marked), AuditInput("b", plain)]) == "radiology-research (mixed)"
    assert profile_of([AuditInput("a", plain)]) == "unknown"
