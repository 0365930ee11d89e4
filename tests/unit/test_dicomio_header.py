"""anonlib.dicomio.header reads what pydicom reads, in one pass, or leaves the file (issue 12)."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file, get_testdata_files

from anonlib.dicomio import files
from anonlib.dicomio.header import read_fast
from anonlib.dicomio.limits import Limits
from anonlib.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore")

PYDICOM_FILES = sorted(p for p in get_testdata_files() + get_charset_files() if os.path.isfile(p))


def _pydicom(data: bytes) -> pydicom.FileDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def _same_dataset(ours: pydicom.Dataset, theirs: pydicom.Dataset) -> None:
    assert list(ours._dict) == list(theirs._dict)
    for tag, element in theirs._dict.items():
        assert type(ours._dict[tag]) is type(element), hex(tag)
        assert ours._dict[tag] == element, hex(tag)
    assert ours.original_encoding == theirs.original_encoding
    assert ours.original_character_set == theirs.original_character_set
    assert ours._character_set == theirs._character_set
    assert ours.preamble == theirs.preamble
    assert ours.file_meta == theirs.file_meta
    for tag, element in theirs.file_meta._dict.items():  # raw or converted alike
        assert type(ours.file_meta._dict[tag]) is type(element), hex(tag)
        assert ours.file_meta._dict[tag] == element, hex(tag)
    assert list(ours.file_meta._dict) == list(theirs.file_meta._dict)
    assert ours.file_meta.original_encoding == theirs.file_meta.original_encoding
    assert type(ours) is type(theirs)


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda p: Path(p).name)
def test_what_it_takes_it_reads_as_pydicom_and_read_instance_did(path: str) -> None:
    data = Path(path).read_bytes()
    fast = read_fast(data, Limits())
    if fast is None:
        return  # left to the reader it always had
    _same_dataset(fast.dataset, _pydicom(data))
    files.check_instance(data, "x")  # the whole-file check agrees it is within limits
    try:
        slow = files._parse(data, len(data), "x", False)
    except InputError as exc:  # not an instance: the fast path says the same
        with pytest.raises(InputError) as raised:
            files._read_fast(data, len(data), "x", Limits())
        assert str(raised.value) == str(exc)
        return
    ours = files._read_fast(data, len(data), "x", Limits())
    assert ours is not None
    assert (ours.pixel_bytes, ours.size, ours.source) == (slow.pixel_bytes, slow.size, slow.source)
    _same_dataset(ours.dataset, slow.dataset)


def test_it_takes_most_of_pydicoms_explicit_little_endian_files() -> None:
    taken = [p for p in PYDICOM_FILES if read_fast(Path(p).read_bytes(), Limits()) is not None]
    assert len(taken) >= 40, len(taken)


def _ct(tmp_path: Path, **changes: object) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = np.zeros((128, 128), dtype=np.uint16).tobytes()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def test_the_bench_ct_file_is_taken_with_its_trailing_padding(tmp_path: Path) -> None:
    data = _ct(tmp_path)
    fast = read_fast(data, Limits())
    assert fast is not None and fast.pixel_end is not None
    assert fast.pixel_end < len(data)  # CT_small ends with Data Set Trailing Padding


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_files_it_leaves(tmp_path: Path, name: str) -> None:
    data = Path(get_testdata_file(name)).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    # implicit VR
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert read_fast(out.getvalue(), Limits()) is None
    # no preamble / file meta
    assert read_fast(data[132:], Limits()) is None
    # cut short anywhere
    for cut in (140, len(data) // 2, len(data) - 1):
        assert read_fast(data[:cut], Limits()) is None


def test_an_undefined_length_sequence_is_left(tmp_path: Path) -> None:
    data = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    for elem in ds.iterall():
        if elem.VR == "SQ":
            elem.is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert read_fast(out.getvalue(), Limits()) is None
    assert files.parse_instance(out.getvalue(), label="x").dataset.SOPInstanceUID == ds.SOPInstanceUID


def test_a_value_over_a_limit_goes_the_old_way_and_is_rejected_as_before(tmp_path: Path) -> None:
    data = _ct(tmp_path, StudyDescription="x" * 2000)
    limits = Limits(max_text_bytes=1024)
    assert read_fast(data, limits) is None
    with pytest.raises(InputError, match="value too large"):
        files.parse_instance(data, label="x", limits=limits)
    assert read_fast(data, Limits()) is not None


def test_a_sequence_nested_too_deep_is_left(tmp_path: Path) -> None:
    data = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert read_fast(out.getvalue(), Limits()) is not None
    assert read_fast(out.getvalue(), Limits(max_depth=1)) is None
    with pytest.raises(InputError, match="nesting too deep"):
        files.parse_instance(out.getvalue(), label="x", limits=Limits(max_depth=1))


def test_elements_after_the_pixel_data_are_left(tmp_path: Path) -> None:
    data = _ct(tmp_path)
    fast = read_fast(data, Limits())
    assert fast is not None and fast.pixel_end is not None
    # the padding replaced by a private element after the pixel data
    extra = b"\x09\x00\x10\x00LO\x04\x00ABCD"
    assert read_fast(data[:fast.pixel_end] + extra, Limits()) is None
    assert read_fast(data[:fast.pixel_end], Limits()) is not None


def test_the_pre_pass_reads_the_same_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """inputs.read_header through the one-pass reader gives what it gave before, identifiers
    collected under the default plan included."""
    from anonlib import inputs
    from anonlib.engine import collect_identifiers, scope_key
    from anonlib.profile import SiteProfile, build_plan

    plan = build_plan(SiteProfile())

    def collect(ds: pydicom.Dataset) -> object:
        return scope_key(ds), collect_identifiers(ds, plan), sorted(map(int, ds.keys()))

    def _public(tags: list[int]) -> list[int]:
        return [t for t in tags if not (t >> 16) & 1]

    def collect_public(ds: pydicom.Dataset) -> object:
        return scope_key(ds), collect_identifiers(ds, plan), _public(sorted(map(int, ds.keys())))

    paths = [Path(p) for p in PYDICOM_FILES]
    for tags in (None, inputs.HEADER_TAGS):
        fast = [inputs.read_header(p, p.name, tags=tags, collect=collect) for p in paths]
        lean = [inputs.read_header(p, p.name, tags=tags, collect=collect_public, private=False) for p in paths]
        with monkeypatch.context() as m:
            m.setattr(inputs, "read_fast", lambda *_, **__: None)
            slow = [inputs.read_header(p, p.name, tags=tags, collect=collect) for p in paths]
        for a, b, c in zip(fast, slow, lean):
            # without the private elements other than names and sequences: the same identifiers
            expected = None if b.collected is None else (*b.collected[:2], _public(b.collected[2]))  # type: ignore[index]
            assert c.collected == expected, a.label
            assert (a.sop_uid, a.study_uid, a.patient_id, a.issuer) == (b.sop_uid, b.study_uid, b.patient_id, b.issuer), a.label
            assert a.collected == b.collected, a.label
    assert sum(read_fast(p.read_bytes(), Limits()) is not None for p in paths) >= 40
    assert sum(f.collected is not None for f in fast) >= 150  # the comparison compared something
