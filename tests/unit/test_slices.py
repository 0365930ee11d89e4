"""The slice viewer's pure functions on pydicom's own test files: slice order (position,
InstanceNumber, frames), CT window presets, the file's window, MONOCHROME1 inverted, colour
(RGB, YBR, palette) kept in colour, multi-frame, PNG."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from anonlib.errors import ConfigError
from anonlib.pixels import decode_frames
from anonlib.sources.slices import WINDOW_PRESETS, Slice, png, slice_order, window_bounds, window_frame


def _read(name: str) -> tuple[Dataset, np.ndarray]:
    path = get_testdata_file(name)
    assert path is not None, name
    ds = pydicom.dcmread(path)
    return ds, decode_frames(ds)


def _header(number: object = None, z: float | None = None, frames: int | None = None) -> Dataset:
    ds = Dataset()
    if number is not None:
        ds.InstanceNumber = number
    if z is not None:
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    if frames is not None:
        ds.NumberOfFrames = frames
    return ds


def test_slices_follow_the_position_along_the_normal_when_every_slice_has_one() -> None:
    headers = [("a", _header(1, z=30.0)), ("b", _header(2, z=-10.0)), ("c", _header(3, z=10.0))]
    assert [s.instance for s in slice_order(headers)] == ["b", "c", "a"]


def test_without_positions_slices_follow_the_instance_number_blanks_last() -> None:
    headers = [("a", _header(10)), ("b", _header()), ("c", _header(2)), ("d", _header(3, z=5.0))]
    assert [s.instance for s in slice_order(headers)] == ["c", "d", "a", "b"]


def test_a_multi_frame_instance_is_one_slice_per_frame() -> None:
    ds, frames = _read("emri_small.dcm")
    assert frames.shape[0] == 10
    assert int(ds.InstanceNumber) == 1
    slices = slice_order([("later", _header(2)), ("cine", ds)])
    assert slices == [Slice("cine", frame) for frame in range(10)] + [Slice("later", 0)]


def test_ct_presets_window_hounsfield_units() -> None:
    ds, frames = _read("CT_small.dcm")
    values = np.asarray(frames[0], dtype=np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert window_bounds(ds, values, "lung") == pytest.approx((-600 - 0.5 - 1499 / 2, -600 - 0.5 + 1499 / 2))
    assert window_bounds(ds, values, "default") == (values.min(), values.max())  # no window in the file
    lung, bone = window_frame(frames[0], ds, "lung"), window_frame(frames[0], ds, "bone")
    assert lung.dtype == np.uint8 and lung.shape == (128, 128)
    low, high = window_bounds(ds, values, "bone")
    expected_white = values >= high
    assert np.array_equal(bone == 255, expected_white)  # above the bone window: white
    assert not np.array_equal(lung, bone)
    assert set(WINDOW_PRESETS) >= {"default", "soft tissue", "lung", "bone", "brain"}


def test_the_default_window_is_the_files_own() -> None:
    ds, frames = _read("MR_small.dcm")
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    values = np.asarray(frames[0], dtype=np.float64)
    assert window_bounds(ds, values) == (center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2)


def test_an_unknown_preset_is_a_config_error() -> None:
    ds, frames = _read("CT_small.dcm")
    with pytest.raises(ConfigError, match="unknown window preset"):
        window_frame(frames[0], ds, "liver")


def test_monochrome1_is_inverted() -> None:
    ds, frames = _read("RG3_J2KR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    shown = window_frame(frames[0], ds, "default")
    as_monochrome2 = ds.copy()
    as_monochrome2.PhotometricInterpretation = "MONOCHROME2"
    assert np.array_equal(shown, 255 - window_frame(frames[0], as_monochrome2, "default"))


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm", "SC_rgb_16bit.dcm",
                                  "OBXXXX1A_2frame.dcm"])
def test_colour_stays_colour_whatever_the_preset(name: str) -> None:
    ds, frames = _read(name)
    shown = window_frame(frames[-1], ds, "default")
    assert shown.dtype == np.uint8 and shown.ndim == 3 and shown.shape[-1] == 3
    assert np.array_equal(shown, window_frame(frames[-1], ds, "lung"))  # presets are for grey
    channels = shown.reshape(-1, 3).astype(int)
    assert (channels.max(axis=1) - channels.min(axis=1)).max() > 50  # really coloured, not grey


def test_the_frames_of_a_multi_frame_instance_differ() -> None:
    ds, frames = _read("emri_small.dcm")
    first, last = window_frame(frames[0], ds), window_frame(frames[-1], ds)
    assert first.shape == last.shape == (64, 64) and not np.array_equal(first, last)


def test_png_is_a_png_shrunk_to_fit() -> None:
    ds, frames = _read("RG3_J2KR.dcm")
    data = png(window_frame(frames[0], ds), max_side=512)
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "PNG" and max(picture.size) == 512
    small = Image.open(io.BytesIO(png(np.zeros((10, 20), dtype=np.uint8))))
    assert small.size == (20, 10)  # never enlarged
