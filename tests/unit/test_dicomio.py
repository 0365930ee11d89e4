"""Header-only reading, completeness checks, and pixel bytes copied through unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.dicomio import encode_instance, read_instance
from anonlib.engine.markers import rebuild_file_meta
from anonlib.errors import InputError


def _copy(tmp_path: Path, name: str, data: bytes | None = None) -> Path:
    path = tmp_path / "f.dcm"
    path.write_bytes(data if data is not None else Path(get_testdata_file(name)).read_bytes())
    return path


def _roundtrip(path: Path) -> tuple[pydicom.Dataset, bytes, bool]:
    parsed = read_instance(path)
    rebuild_file_meta(parsed.dataset)
    data = encode_instance(parsed.dataset, parsed.pixel_bytes)
    return pydicom.dcmread(io.BytesIO(data)), data, parsed.pixel_bytes is not None


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "SC_rgb_rle.dcm", "liver_1frame.dcm",
                                  "MR_small_implicit.dcm", "rtdose.dcm", "examples_ybr_color.dcm"])
def test_pixel_bytes_pass_through_unchanged(tmp_path: Path, name: str) -> None:
    path = _copy(tmp_path, name)
    parsed = read_instance(path)
    assert parsed.pixel_bytes is not None and "PixelData" not in parsed.dataset
    assert Path(path).read_bytes().endswith(parsed.pixel_bytes)  # the exact element bytes
    out, _, _ = _roundtrip(path)
    original = pydicom.dcmread(get_testdata_file(name))
    assert out.PixelData == original.PixelData


def test_trailing_padding_is_dropped_on_the_fast_path(tmp_path: Path) -> None:
    out, _, fast = _roundtrip(_copy(tmp_path, "CT_small.dcm"))  # ends with (FFFC,FFFC) padding
    assert fast and "DataSetTrailingPadding" not in out
    assert out.PixelData == pydicom.dcmread(get_testdata_file("CT_small.dcm")).PixelData


def test_files_with_elements_after_the_pixels_are_read_whole(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    block = ds.private_block(0x7FE1, "SIEMENS CSA NON-IMAGE", create=True)  # after (7FE0,0010)
    block.add_new(0x10, "OB", b"\x01\x02")
    path = tmp_path / "trailing.dcm"
    ds.save_as(path)
    parsed = read_instance(path)
    assert parsed.pixel_bytes is None and 0x7FE11010 in parsed.dataset and "PixelData" in parsed.dataset


def test_big_endian_is_read_whole_and_keeps_its_pixels(tmp_path: Path) -> None:
    out, _, fast = _roundtrip(_copy(tmp_path, "MR_small_bigendian.dcm"))
    assert not fast
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert (out.pixel_array == reference.pixel_array).all()


def test_explicit_declared_but_implicit_written_is_repaired(tmp_path: Path) -> None:
    out, _, _ = _roundtrip(_copy(tmp_path, "SC_rgb_jpeg.dcm"))
    assert out.Rows == 256 and out.pixel_array.shape == (256, 256, 3)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"this is a text file, not DICOM\n" * 20, "not a"),
    (b"\x00" * 128 + b"DICM" + b"\x13\x37" * 300, "not a"),
])
def test_bad_inputs_are_rejected_with_the_file_and_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    path = _copy(tmp_path, "", data)
    with pytest.raises(InputError) as info:
        read_instance(path, label="dir/f.dcm")
    assert info.value.source == "dir/f.dcm" and reason in info.value.reason
    assert str(info.value).startswith("dir/f.dcm: ")


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    """Cut a file at every byte from the data set's start to its end: each cut file is either
    rejected as truncated or (only at element boundaries before the pixels) complete."""
    whole = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    accepted = 0
    for cut in range(400, len(whole), 7):
        path.write_bytes(whole[:cut])
        try:
            read_instance(path)
            accepted += 1
        except InputError as exc:
            assert "truncated" in exc.reason or "not a" in exc.reason
    assert accepted <= len(whole) // 7 // 10  # boundary cuts only; most cuts are caught


def test_pydicoms_truncated_samples_are_rejected(tmp_path: Path) -> None:
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        with pytest.raises(InputError, match="truncated"):
            read_instance(_copy(tmp_path, name))


def test_a_dicomdir_is_rejected_as_such() -> None:
    """pydicom's DICOMDIR files were rejected as 'not a DICOM instance': true, but unhelpful."""
    with pytest.raises(InputError, match="a DICOMDIR"):
        read_instance(Path(get_testdata_file("DICOMDIR")), label="DICOMDIR")
