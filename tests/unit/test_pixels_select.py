"""Which images the pixel stage reads (sampling of large series), and ``mask: phi``."""

from __future__ import annotations

from anonlib.pixels import TextBox
from anonlib.pixels.phi import identifying_boxes, is_identifying
from anonlib.pixels.select import (
    ImageInfo,
    image_info,
    never_read,
    plan_series,
    read_reason,
    reading_alone,
    sample_frames,
)
from tests.helpers import plan_of, sample

PLAN = plan_of()
SIG = ("512", "512", "12", "MONOCHROME2", "1", "ORIGINAL\\PRIMARY\\AXIAL", "")


def _series(count: int, series: str = "1.2.3", **odd: tuple[str, ...]) -> list[ImageInfo]:
    return [ImageInfo(f"{series}/{n:04d}", series, n + 1, odd.get(f"i{n}", SIG), "") for n in range(count)]


def test_header_reasons() -> None:
    ct = sample()
    assert read_reason(ct, PLAN) == ""  # an ordinary CT slice: its series decides
    ct.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    assert "ImageType" in read_reason(ct, PLAN)
    ct.ImageType, ct.BurnedInAnnotation = ["ORIGINAL", "PRIMARY"], "YES"
    assert "BurnedInAnnotation" in read_reason(ct, PLAN)
    ct.BurnedInAnnotation, ct.Modality = "NO", "DX"
    assert "modality DX" in read_reason(ct, PLAN)  # NO is not trusted for modalities at risk
    ct.Modality = "RTIMAGE"  # not a sampled modality: read (fail closed)
    assert read_reason(ct, PLAN)
    seg = sample()
    seg.Modality, seg.ImageType = "SEG", ["DERIVED", "PRIMARY"]
    assert never_read(seg, PLAN) and reading_alone(seg, PLAN).how == "none"  # label maps: not read
    assert not image_info(seg, "s", PLAN).image
    seg.BurnedInAnnotation = "YES"
    assert not never_read(seg, PLAN)


def test_small_series_are_read_in_full_large_ones_sampled() -> None:
    small = plan_series(_series(20), 20)
    assert all(r.how == "all" for r in small.values())
    big = plan_series(_series(300), 20)
    sampled = sorted(k for k, r in big.items() if r.how == "sample")
    assert sampled == ["1.2.3/0000", "1.2.3/0150", "1.2.3/0299"]
    assert sum(r.how == "later" for r in big.values()) == 297


def test_odd_images_of_a_series_are_in_the_sample() -> None:
    infos = _series(100, i37=("1024", "1024", "12", "MONOCHROME2", "1", "ORIGINAL\\PRIMARY\\AXIAL", ""))
    readings = plan_series(infos, 20)
    assert readings["1.2.3/0037"].how == "sample" and "differs" in readings["1.2.3/0037"].reason


def test_header_reasons_and_non_images_beat_sampling() -> None:
    infos = _series(50)
    infos[5] = ImageInfo(infos[5].key, "1.2.3", 6, SIG, "ImageType LOCALIZER may carry burned-in text")
    infos.append(ImageInfo("sr", "9", None, (), "", image=False))
    readings = plan_series(infos, 20)
    assert readings["1.2.3/0005"].how == "all" and readings["sr"].how == "none"


def test_image_info_and_reading_alone() -> None:
    info = image_info(sample(), "k", PLAN)
    assert info.image and info.reason == "" and info.number is not None
    assert reading_alone(sample(), PLAN).how == "all"
    assert sample_frames(1) == [0] and sample_frames(10) == [0, 5, 9]


def test_phi_mask_keeps_technical_text_and_masks_identifying_text() -> None:
    values = ["DOE^JANE", "Doe", "Jane", "MRN0012345", "Saint Elsewhere Hospital"]
    assert not is_identifying("L", values) and not is_identifying("120 kV 250 mAs", values)
    assert not is_identifying("HFS", values)
    assert is_identifying("DOE, JANE", values) and is_identifying("jane", values)
    assert is_identifying("ID: MRN0012345", values) and is_identifying("DOB 03/14/1961", values)
    assert is_identifying("14-MAR-1961", values) and is_identifying("19610314", values)
    assert is_identifying("Saint Elsewhere Hospital", values)
    assert is_identifying("+1 (555) 201-7788", values)
    assert not is_identifying("ACME", values, allow=[]) and not is_identifying("ACME", values, ["acme"])
    boxes = [TextBox(0, 0, 0, 5, 5, 0.9, "R"), TextBox(0, 9, 9, 5, 5, 0.9, "Doe"),
             TextBox(0, 20, 20, 5, 5, 0.9, "")]
    assert [b.x for b in identifying_boxes(boxes, values)] == [9, 20]  # unread text is masked


def test_clip_frames_are_spread_and_regions_cover_every_frame() -> None:
    from anonlib.pixels.stage import on_every_frame, spread_frames

    assert spread_frames(5, 12) == [0, 1, 2, 3, 4]
    spread = spread_frames(120, 12)
    assert len(spread) == 12 and spread[0] == 0 and spread[-1] == 119
    found = [TextBox(0, 10, 10, 50, 12, 0.9), TextBox(59, 11, 10, 50, 12, 0.8), TextBox(119, 300, 5, 20, 10, 0.7)]
    everywhere = on_every_frame(found, 120)
    assert len(everywhere) == 2 * 120  # two regions (the first two boxes merged) on each frame
    assert {b.frame for b in everywhere} == set(range(120))
