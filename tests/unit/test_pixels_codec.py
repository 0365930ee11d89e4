"""Decoding every transfer syntax, rendering for OCR, masking and re-encoding (no OCR engine)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from anonlib.pixels import PixelError, TextBox, decode_frames, mask_text, render_views
from anonlib.pixels.render import frame_views
from tests.pixel_images import burn, sample, store, written

BOX = TextBox(0, 10, 12, 20, 9, 0.9)
PAD = 4

# file, frames, rows, columns, samples, syntax the masked file has
CASES = [
    ("MR_small.dcm", 1, 64, 64, 1, ExplicitVRLittleEndian),
    ("MR_small_implicit.dcm", 1, 64, 64, 1, ImplicitVRLittleEndian),
    ("MR_small_bigendian.dcm", 1, 64, 64, 1, ExplicitVRLittleEndian),
    ("image_dfl.dcm", 1, 512, 512, 1, DeflatedExplicitVRLittleEndian),
    ("MR_small_RLE.dcm", 1, 64, 64, 1, RLELossless),
    ("SC_rgb_rle_2frame.dcm", 2, 100, 100, 3, RLELossless),
    ("MR_small_jpeg_ls_lossless.dcm", 1, 64, 64, 1, JPEGLSLossless),
    ("MR_small_jp2klossless.dcm", 1, 64, 64, 1, JPEG2000Lossless),
    ("GDCMJ2K_TextGBR.dcm", 1, 400, 400, 3, JPEG2000Lossless),
    ("examples_jpeg2k.dcm", 1, 480, 640, 3, JPEG2000Lossless),  # ultrasound, YBR_RCT
    ("SC_rgb_jpeg_gdcm.dcm", 1, 100, 100, 3, ExplicitVRLittleEndian),  # JPEG lossless SV1
    ("693_J2KI.dcm", 1, 512, 512, 1, ExplicitVRLittleEndian),  # JPEG 2000 (lossy)
    ("SC_rgb_jpeg_dcmtk.dcm", 1, 100, 100, 3, ExplicitVRLittleEndian),  # JPEG baseline YBR_FULL
    ("examples_ybr_color.dcm", 30, 240, 320, 3, ExplicitVRLittleEndian),  # baseline YBR_FULL_422
    ("SC_ybr_full_422_uncompressed.dcm", 1, 100, 100, 3, ExplicitVRLittleEndian),
    ("JPEGLSNearLossless_16.dcm", 1, 50, 10, 1, ExplicitVRLittleEndian),
    ("examples_palette.dcm", 1, 350, 800, 1, ExplicitVRLittleEndian),
    ("liver_1frame.dcm", 1, 512, 512, 1, ExplicitVRLittleEndian),  # 1 bit
    ("rtdose.dcm", 15, 10, 10, 1, ImplicitVRLittleEndian),  # 32 bit, multi-frame
]


def _inside(shape: tuple[int, ...], boxes: list[TextBox], pad: int) -> np.ndarray:
    inside = np.zeros(shape[:3], dtype=bool)
    for box in boxes:
        inside[box.frame, max(0, box.y - pad):box.y + box.height + pad,
               max(0, box.x - pad):box.x + box.width + pad] = True
    return inside


@pytest.mark.parametrize(("name", "frames", "rows", "columns", "samples", "syntax"), CASES)
def test_masking_changes_only_the_padded_boxes_and_stores_a_decodable_file(
        name: str, frames: int, rows: int, columns: int, samples: int, syntax: str) -> None:
    ds = sample(name)
    before = decode_frames(ds)
    shape = (frames, rows, columns) + ((samples,) if samples > 1 else ())
    assert before.shape == shape
    bits = (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation)
    boxes = [BOX if frames == 1 else TextBox(frames - 1, 1, 2, 5, 3, 0.5),
             TextBox(0, columns - 3, rows - 3, 8, 8, 0.5)]  # runs off the edge: clipped
    mask_text(ds, boxes, pad=PAD)
    assert ds.file_meta.TransferSyntaxUID == syntax
    out = written(ds)
    assert out.file_meta.TransferSyntaxUID == syntax
    after = decode_frames(out)
    inside = _inside(shape, boxes, PAD)
    assert after.shape == before.shape and inside.any()
    assert np.array_equal(after[~inside], before[~inside]), "pixels outside the boxes changed"
    for frame in {box.frame for box in boxes}:
        filled = after[frame][inside[frame]]
        assert (filled == filled.flat[0]).all(), "a box is not filled with one constant"
    assert (out.BitsAllocated, out.BitsStored, out.HighBit, out.PixelRepresentation) == bits
    assert int(out.get("NumberOfFrames", 1) or 1) == frames
    if samples == 3:
        expected = "YBR_RCT" if syntax == JPEG2000Lossless else "RGB"
        assert out.PhotometricInterpretation == expected and out.PlanarConfiguration == 0


def test_native_little_endian_pixels_outside_the_boxes_keep_their_bytes() -> None:
    ds = sample("CT_small.dcm")
    raw = bytes(ds.PixelData)
    mask_text(ds, [BOX], pad=0)
    changed = np.frombuffer(raw, "<u2") != np.frombuffer(bytes(ds.PixelData), "<u2")
    assert changed.reshape(128, 128)[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width].any()
    changed.reshape(128, 128)[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width] = False
    assert not changed.any()


def test_the_fill_is_what_a_viewer_shows_as_black() -> None:
    mono2, mono1, rgb = sample("MR_small.dcm"), sample("MR_small.dcm"), sample("SC_rgb_rle.dcm")
    mono1.PhotometricInterpretation = "MONOCHROME1"
    for ds, black in ((mono2, decode_frames(mono2).min()), (mono1, decode_frames(mono1).max()),
                      (rgb, 0)):
        mask_text(ds, [BOX], pad=0)
        assert (decode_frames(ds)[0, BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width]
                == black).all()
    palette = sample("examples_palette.dcm")
    mask_text(palette, [BOX], pad=0)
    [view] = render_views(palette, 0, scale=1.0)
    assert (view[BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width] == 0).all()  # black in RGB


def test_lossy_input_keeps_its_compression_history() -> None:
    ds = sample("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline, its history removed
    for keyword in ("LossyImageCompression", "LossyImageCompressionMethod",
                    "LossyImageCompressionRatio"):
        delattr(ds, keyword)
    mask_text(ds, [BOX])
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(ds.LossyImageCompressionRatio) > 1
    history = ("LossyImageCompression", "LossyImageCompressionMethod", "LossyImageCompressionRatio")
    lossy = sample("JPGExtended.dcm")  # says 01 and a ratio, no method
    kept = [lossy.get(keyword) for keyword in history]
    mask_text(lossy, [BOX])
    assert [lossy.get(keyword) for keyword in history] == kept and kept[0] == "01"


def test_no_boxes_change_nothing() -> None:
    ds = sample("MR_small_RLE.dcm")
    raw = bytes(ds.PixelData)
    mask_text(ds, [])
    assert bytes(ds.PixelData) == raw and ds.file_meta.TransferSyntaxUID == RLELossless


def test_a_box_in_a_frame_the_instance_lacks_is_refused() -> None:
    with pytest.raises(PixelError, match="frame 3"):
        mask_text(sample("MR_small.dcm"), [TextBox(3, 0, 0, 4, 4, 1.0)])


@pytest.mark.parametrize(("change", "reason"), [
    ({"TransferSyntaxUID": "1.2.840.10008.1.2.4.100"}, "1.2.840.10008.1.2.4.100 .*cannot be decoded"),
    ({"PixelData": b"\0" * 100}, "shorter than Rows×Columns"),
    ({"PixelData": None}, "no Pixel Data"),
    ({"Rows": None}, "missing: Rows"),
])
def test_undecodable_pixels_raise_a_reason_in_words(change: dict[str, object], reason: str) -> None:
    ds = sample("MR_small.dcm")
    ds.PatientName = "SECRET^NAME"
    for keyword, value in change.items():
        target = ds.file_meta if keyword == "TransferSyntaxUID" else ds
        if value is None:
            delattr(target, keyword)
        else:
            setattr(target, keyword, value)
    with pytest.raises(PixelError, match=reason) as caught:
        decode_frames(ds)
    assert "SECRET" not in str(caught.value)


def test_a_missing_plugin_and_missing_file_meta_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        is_available = False
        missing_dependencies = ["pylibjpeg-openjpeg"]

    monkeypatch.setattr("anonlib.pixels.decode.get_decoder", lambda uid: Unavailable())
    with pytest.raises(PixelError, match=r"JPEG 2000 .*plugin missing \(pylibjpeg-openjpeg\)"):
        decode_frames(sample("MR_small_jp2klossless.dcm"))
    monkeypatch.undo()
    built = Dataset(sample("MR_small.dcm"))  # built in memory: no file meta, no encoding read
    with pytest.raises(PixelError, match="no Transfer Syntax UID .* encoding is unknown"):
        decode_frames(built)


@pytest.mark.parametrize(("name", "reason"), [
    ("JPEG-lossy.dcm", r"JPEG Extended .*: the decoder rejected the stream"),  # misplaced marker
    ("JPEG2000-embedded-sequence-delimiter.dcm", r"JPEG 2000 .*: the decoder rejected the stream"),
    ("badVR.dcm", "NumberOfFrames is not an integer"),  # '1A'
])
def test_real_world_files_pydicom_cannot_decode_get_a_reason_in_words(name: str, reason: str) -> None:
    with pytest.raises(PixelError, match=reason) as caught:
        decode_frames(sample(name))
    assert not re.search(r"[A-Z]\w*(Error|Exception)\b", str(caught.value)), "reads like a crash"


def test_a_file_without_file_meta_is_decoded_in_the_encoding_it_was_read_in() -> None:
    ds = sample("OT-PAL-8-face.dcm")  # pydicom-data: palette colour, no file meta, implicit LE
    assert not ds.file_meta.get("TransferSyntaxUID")
    assert decode_frames(ds).shape == (1, 480, 640)
    assert render_views(ds, 0, scale=1.0)[0].shape == (480, 640, 3)
    mask_text(ds, [BOX])
    assert not ds.file_meta.get("TransferSyntaxUID")  # native, rewritten in place
    assert (decode_frames(ds)[0, BOX.y:BOX.y + BOX.height, BOX.x:BOX.x + BOX.width]
            == decode_frames(ds)[0, BOX.y, BOX.x]).all()


def test_a_corrupt_stream_is_named_by_its_syntax_not_its_content() -> None:
    ds = sample("MR_small_jp2klossless.dcm")
    [stream] = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([stream[:len(stream) // 2 * 2 // 2]])  # cut in half
    with pytest.raises(PixelError, match=r"JPEG 2000 .*Lossless.*could not be decoded: the decoder"):
        decode_frames(ds)


def test_a_ct_window_and_the_full_range_are_both_rendered() -> None:
    ct = sample("CT_small.dcm")
    ct.WindowCenter, ct.WindowWidth = 40, 400
    truth = burn(ct, "X", x=20, y=20, size=20)  # at the maximum stored value: white in both
    views = frame_views(decode_frames(ct), ct, 0, fuse=False)
    assert [v.kind for v in views] == ["window", "full"]
    assert views[0].image.shape == (512, 512) and views[0].scale == 4.0
    window, full = (v.image[truth.y0 * 4:truth.y1 * 4, truth.x0 * 4:truth.x1 * 4] for v in views)
    assert window.max() == 255 and full.max() == 255
    assert np.median(views[1].image) < np.median(views[0].image)  # anatomy dim in full range
    [fused] = frame_views(decode_frames(ct), ct, 0)
    assert fused.kind == "window+full" and fused.image.shape == (512, 512, 3)
    assert np.array_equal(fused.image[..., 0], views[0].image)
    assert np.array_equal(fused.image[..., 1], views[1].image)


def test_without_a_window_outliers_add_the_central_range() -> None:
    nm = sample("CT_small.dcm")
    burn(nm, "X", x=20, y=20, size=20)  # a few pixels at the maximum, far above the rest
    views = frame_views(decode_frames(nm), nm, 0, fuse=False)
    assert [v.kind for v in views] == ["robust", "full"]
    assert np.median(views[0].image) > 4 * np.median(views[1].image)


def test_a_window_spanning_the_full_range_gives_one_view_and_monochrome1_is_inverted() -> None:
    mr = sample("MR_small.dcm")
    mr.WindowCenter, mr.WindowWidth = 1000, 5000
    [normal] = render_views(mr, 0)
    mr.PhotometricInterpretation = "MONOCHROME1"
    [inverted] = render_views(mr, 0)
    assert np.abs(inverted.astype(int) - (255 - normal.astype(int))).max() <= 1  # resampling


def test_palette_colour_is_rendered_through_its_lookup_table() -> None:
    ds = sample("examples_palette.dcm")
    [view] = render_views(ds, 0)
    assert view.shape == (700, 1600, 3) and view.dtype == np.uint8
    assert len(np.unique(view.reshape(-1, 3), axis=0)) > 2


def test_burned_text_survives_a_lossless_round_trip() -> None:
    ds = sample("MR_small_RLE.dcm")
    burn(ds, "ID", x=5, y=5, size=12, syntax=RLELossless)
    frames = decode_frames(ds)
    store(ds, frames)
    assert np.array_equal(decode_frames(ds), frames)
    assert JPEG2000Lossless != JPEG2000
