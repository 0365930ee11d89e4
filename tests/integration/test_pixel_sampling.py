"""Folder runs read a sample of a large CT series, and all of it once text is found (real OCR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import generate_uid

from anonlib.folder_run import RunSettings, run_folder
from anonlib.profile import SiteProfile
from tests.helpers import encoded, sample

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SLICES = 24  # more than sample_min_series (20): sampled


def _burn(ds: pydicom.Dataset, text: str) -> None:
    """Draw ``text`` at the maximum stored value into the top-left corner (a 2x upscale of the
    128-px image so the letters are about 14 px high)."""
    pixels = ds.pixel_array.astype(np.int32)
    canvas = Image.new("L", (pixels.shape[1] * 2, pixels.shape[0] * 2), 0)
    ImageDraw.Draw(canvas).text((6, 6), text, fill=255, font=ImageFont.truetype(FONT, 22))
    ink = np.asarray(canvas.resize((pixels.shape[1], pixels.shape[0]))) > 96
    pixels[ink] = int(pixels.max()) + 200
    ds.PixelData = pixels.astype(ds.pixel_array.dtype).tobytes()


def _series(folder: Path, burned: dict[int, str]) -> None:
    series, study = generate_uid(), generate_uid()
    for n in range(SLICES):
        ds = sample()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.InstanceNumber = n + 1
        ds.PatientName, ds.PatientID = "QUILL^MARGARET", "QX7731"
        if n in burned:
            _burn(ds, burned[n])
        (folder / f"{n:03d}.dcm").write_bytes(encoded(ds))


def _outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def _clean_coded(ds: pydicom.Dataset) -> bool:
    return "113101" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}


def _run(tmp_path: Path, burned: dict[int, str]) -> list[pydicom.Dataset]:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _series(src, burned)
    summary = run_folder(RunSettings(source=src, output=out, profile=SiteProfile(),
                                     db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}"))
    assert summary.count("written") == SLICES, summary.describe()
    return _outputs(out)


@pytest.mark.slow
def test_a_text_free_series_is_sampled_not_read_in_full(tmp_path: Path) -> None:
    outputs = _run(tmp_path, {})
    read = [ds for ds in outputs if _clean_coded(ds)]
    assert len(read) == 3  # first, middle, last: read and marked clean; the others untouched
    assert sorted(int(ds.InstanceNumber) for ds in read) == [1, SLICES // 2 + 1, SLICES]


@pytest.mark.slow
def test_text_in_the_sample_escalates_to_the_whole_series(tmp_path: Path) -> None:
    # slice 1 is in the sample; slice 8 is not, and is read because its series escalated
    outputs = _run(tmp_path, {0: "QUILL QX7731", 7: "QUILL QX7731"})
    by_number = {int(ds.InstanceNumber): ds for ds in outputs}
    assert all(_clean_coded(ds) for ds in outputs)  # every slice read
    for number in (1, 8):
        ds = by_number[number]
        assert ds.BurnedInAnnotation == "NO"
        corner = ds.pixel_array[:20, :70]
        assert corner.max() < 1000, f"slice {number}: text left in the corner"
