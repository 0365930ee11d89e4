"""Thumbnails: windowing, MONOCHROME1, colour (RGB, YBR), first frame of multi-frame, sizes;
placeholders (never an exception) for what cannot be shown; series figures without text from
the data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, SecondaryCaptureImageStorage, generate_uid

from anonlib.sources import FolderSource
from anonlib.sources.thumbnails import placeholder, render, series_figure, thumbnail
from anonlib.synthetic import Corpus

RAMP = np.array([[0, 50, 100, 150, 200]] * 5, dtype=np.uint16)


def _file(pixels: NDArray[np.generic], *, photometric: str = "MONOCHROME2", syntax: str = ExplicitVRLittleEndian,
          frames: int = 1, **extra: object) -> bytes:
    """A minimal Secondary Capture file holding ``pixels`` (frames × rows × cols [× 3])."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    shape = pixels.shape[1:] if frames > 1 else pixels.shape
    ds.Rows, ds.Columns = shape[0], shape[1]
    ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes() if syntax == ExplicitVRLittleEndian else encapsulate([b"\xff\xd8junk"])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_min_max_without_window() -> None:
    image = thumbnail(_file(RAMP), size=5)
    assert image.dtype == np.uint8 and image.shape == (5, 5)
    assert list(image[0]) == [0, 64, 128, 191, 255]


def test_window_center_and_width() -> None:
    image = thumbnail(_file(RAMP, WindowCenter=100, WindowWidth=101), size=5)
    assert image[0, 0] == 0 and image[0, 1] <= 2 and 126 <= image[0, 2] <= 130
    assert image[0, 3] == 255 and image[0, 4] == 255


def test_rescale_is_applied_before_the_window() -> None:
    # Stored 0..200 becomes -1000..-800 HU; the window [-1000, -801] shows the whole ramp
    # (without the rescale every pixel would be far above it: white).
    image = thumbnail(_file(RAMP, RescaleSlope=1, RescaleIntercept=-1000, WindowCenter=-900,
                            WindowWidth=200), size=5)
    assert image[0, 0] == 0 and image[0, 4] == 255 and 120 <= image[0, 2] <= 136


def test_monochrome1_is_inverted() -> None:
    normal = thumbnail(_file(RAMP), size=5)
    inverted = thumbnail(_file(RAMP, photometric="MONOCHROME1"), size=5)
    assert np.array_equal(inverted, 255 - normal)


def test_rgb_and_ybr() -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0], rgb[:, 3:, 1], rgb[2:, :, 2] = 200, 120, 60
    plain = thumbnail(_file(rgb, photometric="RGB"), size=6)
    assert plain.shape == (4, 6, 3) and np.array_equal(plain, rgb)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    converted = thumbnail(_file(ybr, photometric="YBR_FULL"), size=6)
    assert converted.shape == (4, 6, 3) and np.abs(converted.astype(int) - rgb).max() <= 3


def test_first_frame_of_a_multiframe() -> None:
    frames = np.stack([RAMP, np.full_like(RAMP, 7), np.full_like(RAMP, 9)])
    image = thumbnail(_file(frames, frames=3), size=5)
    assert list(image[0]) == [0, 64, 128, 191, 255]


@pytest.mark.parametrize("size", [32, 128, 200])
def test_longest_side_is_size(corpus: Corpus, size: int) -> None:
    ct = next(f.path for f in corpus.files if f.kind == "CT")
    sc = next(f.path for f in corpus.files if f.kind == "SC")  # 96 × 256 RGB
    assert thumbnail(ct.read_bytes(), size).shape == (size, size)
    colour = thumbnail(sc.read_bytes(), size)
    assert colour.shape == (round(96 * size / 256), size, 3) and colour.dtype == np.uint8


def test_every_corpus_image_decodes(corpus: Corpus) -> None:
    for f in corpus.files:
        if f.kind in ("CT", "MR", "RTDOSE", "SEG", "SC", "US"):
            thumb = render(f.path.read_bytes())
            assert thumb.reason is None, (f.kind, thumb.reason)
            assert thumb.image.max() > thumb.image.min()


@pytest.mark.parametrize(("data", "reason"), [
    (_file(RAMP, syntax=JPEGLSLossless), "cannot decode JPEG-LS"),
    (b"", "not a readable DICOM file"),
    (b"\0" * 128 + b"DICM" + bytes(range(256)) * 3, "not a readable DICOM file"),
])
def test_placeholders_never_raise(data: bytes, reason: str) -> None:
    thumb = render(data, 64)
    assert thumb.placeholder and thumb.reason is not None and thumb.reason.startswith(reason)
    assert np.array_equal(thumb.image, placeholder(64)) and np.array_equal(thumbnail(data, 64), placeholder(64))


def test_no_pixel_data_is_a_placeholder(corpus: Corpus) -> None:
    sr = next(f.path for f in corpus.files if f.kind == "SR")
    thumb = render(sr.read_bytes())
    assert thumb.reason == "no image (no pixel data)" and np.array_equal(thumb.image, placeholder())


def _texts(figure: object) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]  # type: ignore[attr-defined]


def test_series_figure(corpus: Corpus) -> None:
    source = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    series = source.series(study)
    ct = str(series["series"].iloc[0])
    figure = series_figure(source, study, ct, max_images=12)
    images = [ax for ax in figure.axes if ax.images]
    assert len(images) == 5 and all(not ax.axison for ax in figure.axes)
    assert _texts(figure) == [f"#{i}/5" for i in range(1, 6)]
    spread = series_figure(source, study, ct, max_images=2)
    assert _texts(spread) == ["#1/5", "#5/5"]
    phi = corpus.phi_values()
    sr = str(series[series["modality"] == "SR"]["series"].iloc[0])
    for fig in (figure, series_figure(source, study, sr)):
        assert not [t for t in _texts(fig) if any(v in t for v in phi if len(v) > 3)]
    assert "no pixel data" in " ".join(_texts(series_figure(source, study, sr)))
