"""The burned-in text benchmark set: truth that matches the pixels, header values that match the
text, text-free images left alone, and the same files for the same seed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from anonlib.synthetic import burnedin, canvases
from anonlib.synthetic.phi import date_forms

SEED = 3
COUNT = 12


@pytest.fixture(scope="module")
def images() -> list[burnedin.BurnedImage]:
    return list(burnedin.generate(COUNT, SEED))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("burnedin")
    burnedin.write_set(out, count=COUNT, seed=SEED)
    return out


def _frames(ds: pydicom.Dataset) -> np.ndarray:
    array = ds.pixel_array
    return array if int(ds.get("NumberOfFrames", 1) or 1) > 1 else array[None]


def test_every_truth_box_lies_inside_its_frame(images: list[burnedin.BurnedImage]) -> None:
    boxes = [(image, box) for image in images for box in image.boxes]
    assert len(boxes) >= COUNT
    for image, box in boxes:
        frames, rows, cols = image.pixels.shape[:3]
        assert 0 <= box.frame < frames
        assert box.x >= 0 and box.y >= 0 and box.width > 0 and box.height > 0
        assert box.x + box.width <= cols and box.y + box.height <= rows


def test_text_pixels_differ_from_the_background_and_only_inside_boxes(
        images: list[burnedin.BurnedImage]) -> None:
    for image in images:
        changed = image.pixels != image.clean
        if changed.ndim == 4:
            changed = changed.any(axis=3)
        inside = np.zeros_like(changed)
        for box in image.boxes:
            window = changed[box.frame, box.y:box.y + box.height, box.x:box.x + box.width]
            assert window.mean() >= 0.08, (image.name, box.kind, box.size)
            # the tight box: its outer rows and columns each hold a changed pixel
            assert window[0].any() and window[-1].any() and window[:, 0].any() and window[:, -1].any()
            inside[box.frame, box.y:box.y + box.height, box.x:box.x + box.width] = True
        assert not (changed & ~inside).any(), image.name


def test_a_fifth_or_more_carry_no_text_and_those_keep_the_canvas_pixels(
        images: list[burnedin.BurnedImage], written: Path) -> None:
    text_free = [image for image in images if not image.boxes]
    assert len(text_free) >= COUNT // 5
    for image in images:
        ds = pydicom.dcmread(written / "images" / image.name)
        np.testing.assert_array_equal(_frames(ds), image.pixels, err_msg=image.name)
        if not image.boxes:
            np.testing.assert_array_equal(image.pixels, image.clean)


def test_a_pydicom_image_kept_whole_keeps_its_encoded_pixel_data(tmp_path: Path) -> None:
    index = next(i for i in range(1, 400, 4) if burnedin.make_image(i, SEED).native)
    image = burnedin.make_image(index, SEED)
    source = pydicom.dcmread(pydicom.data.get_testdata_file(image.source.split(":", 1)[1]))
    burnedin.write_image(image, tmp_path / "kept.dcm", SEED)
    kept = pydicom.dcmread(tmp_path / "kept.dcm")
    assert kept.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert kept.PixelData == source.PixelData
    assert kept.PatientID != source.get("PatientID")


def test_the_text_is_the_headers_own_values(written: Path) -> None:
    truth = json.loads((written / burnedin.TRUTH_FILE).read_text())
    kinds = set()
    for entry in truth["files"]:
        ds = pydicom.dcmread(written / entry["path"], stop_before_pixels=True)
        assert ds.SOPInstanceUID == entry["sop_instance_uid"]
        family, given = str(ds.PatientName).split("^")[:2]
        born = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        for box in entry["boxes"]:
            text, kind = box["text"], box["kind"]
            kinds.add(kind)
            if kind == "name":
                assert family.upper() in text.upper() and given.upper() in text.upper()
            elif kind == "id":
                assert ds.PatientID in text
            elif kind == "birth_date":
                forms = date_forms(born) + [born.strftime("%d-%b-%Y").upper(), born.strftime("%b %d, %Y")]
                assert any(text.endswith(form) for form in forms)
            elif kind == "institution":
                assert str(ds.InstitutionName).upper().startswith(text.upper())
            elif kind == "accession":
                assert text.endswith(ds.AccessionNumber)
    assert {"name", "id", "birth_date"} <= kinds


def test_the_same_seed_gives_the_same_files(tmp_path: Path, written: Path) -> None:
    again = tmp_path / "again"
    burnedin.write_set(again, count=COUNT, seed=SEED)
    assert (again / burnedin.TRUTH_FILE).read_bytes() == (written / burnedin.TRUTH_FILE).read_bytes()
    for path in sorted((written / "images").iterdir()):
        assert (again / "images" / path.name).read_bytes() == path.read_bytes(), path.name
    other = burnedin.make_image(0, SEED + 1)
    assert other.dataset.PatientID != burnedin.make_image(0, SEED).dataset.PatientID


def test_every_canvas_builds_and_describes_its_pixels() -> None:
    for name in canvases.BUILDERS:
        canvas = canvases.build(name, np.random.default_rng(0))
        frames, rows, cols = canvas.pixels.shape[:3]
        assert (int(canvas.header.Rows), int(canvas.header.Columns)) == (rows, cols), name
        assert int(canvas.header.get("NumberOfFrames", 1) or 1) == frames, name
        low, high = canvas.stored_range
        assert canvas.pixels.min() >= low and canvas.pixels.max() <= high, name


def test_the_command_writes_the_set(tmp_path: Path) -> None:
    assert burnedin.main([str(tmp_path / "set"), "--count", "3", "--seed", "1"]) == 0
    truth = json.loads((tmp_path / "set" / burnedin.TRUTH_FILE).read_text())
    assert [entry["path"] for entry in truth["files"]] == sorted(
        f"images/{path.name}" for path in (tmp_path / "set" / "images").iterdir())
