"""Poison instances: values and structures built to break a reader are handled or rejected with
a named reason, one instance at a time."""

from __future__ import annotations

import copy
import io
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.errors import InputError
from anonlib.pipeline import InstanceProcessor, rejection_reason
from anonlib.profile import SiteProfile, build_plan
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.sinks.folder import FolderSink
from anonlib.store.memory import MemoryStore
from anonlib.studyjob import partial_reason

CT = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))


def _encoded(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture()
def processor(tmp_path: Path) -> InstanceProcessor:
    plan = build_plan(SiteProfile(burned_in=BurnedInPolicy(mode="allow")))
    return InstanceProcessor(plan, MemoryStore(), FolderSink(tmp_path / "o"), FolderSink(tmp_path / "q"))


def test_long_text_stored_as_un_is_cleaned_and_encoded_as_text(processor: InstanceProcessor) -> None:
    """A public text attribute over 64 KiB stays UN in pydicom (PS3.5 6.2.2); the engine cleans
    it as the text it is — the patient's name goes, an e-mail run is scrubbed in linear time —
    and it is written back, no TypeError."""
    ds = copy.deepcopy(CT)
    name = str(ds.PatientName).split("^")[0]
    ds.add_new(0x00081030, "UN", (f"seen by {name} " + "a" * 70_000 + "@x.org").encode())
    started = time.monotonic()
    outcome, data, _ = processor.deidentify_bytes(_encoded(ds), "un-text")
    assert time.monotonic() - started < 10
    out = pydicom.dcmread(io.BytesIO(data))
    text = out[0x00081030].value
    text = text.decode() if isinstance(text, bytes) else str(text)
    assert name.upper() not in text.upper() and "@x.org" not in text
    assert out[0x00081030].VR in ("LO", "UN")


def test_rejection_reasons_name_what_went_wrong_never_the_message() -> None:
    assert rejection_reason(InputError("f", "truncated file (value cut at byte 9)")) == \
        "truncated file (value cut at byte 9)"
    assert rejection_reason(RecursionError("maximum recursion")) == "nesting too deep to parse"
    assert rejection_reason(TypeError("value 'Doe^John' is bad")) == "internal error (TypeError)"


def test_partial_reason_lists_instances_by_orthanc_id() -> None:
    assert partial_reason([], 3) == ""
    reason = partial_reason([("abc-1", "nesting too deep (33 levels, limit 32)")], 6)
    assert reason == "partial: 1 of 6 instances not delivered: abc-1: nesting too deep (33 levels, limit 32)"
    many = partial_reason([(str(n), "x") for n in range(7)], 9)
    assert many.endswith("and 2 more (anonlib jobs list --status partial)")


@pytest.mark.parametrize(("keyword", "value", "expected"), [
    ("Modality", "/etc/passwd", "OT"),  # Type 1: a dummy (Modality: OT, other)
    ("SeriesNumber", "../../etc", None),  # Type 2: emptied
    ("BodyPartExamined", "../../BODY", ""),  # Type 3: emptied
    ("PatientPosition", "HFS", "HFS"),  # valid: kept
])
def test_kept_values_not_of_their_vr_are_not_copied(processor: InstanceProcessor, keyword: str, value: str,
                                                    expected: str | None) -> None:
    from anonlib.synthetic.malformed import path_like

    outcome, data, _ = processor.deidentify_bytes(path_like(keyword, value), keyword)
    out = pydicom.dcmread(io.BytesIO(data))
    assert out[keyword].value == expected or (expected is None and out[keyword].value in (None, ""))
    if value != expected:
        change = next(c for c in outcome.changes if c.tag == out[keyword].tag)
        assert change.note.startswith(f"value not a valid {out[keyword].VR}")


def test_a_backslash_in_a_single_valued_uid_is_one_malformed_value(processor: InstanceProcessor) -> None:
    """``..\\..\\windows`` as StudyInstanceUID became three UIDs (VM 3) that no lookup finds."""
    from anonlib.synthetic.malformed import path_like

    first, data, _ = processor.deidentify_bytes(path_like("StudyInstanceUID", "..\\..\\windows"), "a")
    second, _, _ = processor.deidentify_bytes(path_like("StudyInstanceUID", "..\\..\\windows", uid="2.25.7"), "b")
    value = pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID
    assert isinstance(value, str) and value.startswith("2.25.") and "\\" not in value
    assert first.keys.new_study_uid == second.keys.new_study_uid == value
