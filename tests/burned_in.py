"""A small secondary capture with the patient's name and ID burned into its pixels (DejaVu Sans,
white on a dark gradient, 256 x 256, 8 bit), for the review tests: big enough text that any OCR
engine finds it, small enough to keep tests fast. Built on pydicom's CT_small.dcm header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.helpers import sample

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SIZE = 256
#: Where the text is drawn: (x, y) of each line's top-left corner; the lines say these words.
LINES = ((12, 14, "DOE^JANE"), (12, 52, "ID 4471902"))
#: A corner the text never reaches (what a reviewer asks to mask in the tests).
CORNER = (200, 200, 40, 40)


def burned_in_dataset(uid_seed: str = "review") -> Dataset:
    """The header of CT_small.dcm as a secondary capture whose pixels carry :data:`LINES`."""
    ds = sample("CT_small.dcm")
    gradient = np.tile(np.linspace(10, 90, SIZE, dtype=np.float32), (SIZE, 1))
    picture = Image.fromarray(gradient.astype(np.uint8), "L")
    pen = ImageDraw.Draw(picture)
    font = ImageFont.truetype(FONT, 26)
    for x, y, words in LINES:
        pen.text((x, y), words, fill=255, font=font)
    pen.ellipse((100, 110, 220, 230), fill=140)  # "anatomy": no text
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed, "sop"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    for keyword in ("WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(np.asarray(picture), "MONOCHROME2", 8)
    return ds


def write_burned_in(folder: Path, name: str = "burned.dcm", uid_seed: str = "review") -> Path:
    """:func:`burned_in_dataset` written as ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    burned_in_dataset(uid_seed).save_as(path, enforce_file_format=True)
    return path
