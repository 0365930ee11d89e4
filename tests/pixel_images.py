"""Burned-in text for pixel tests: text drawn with a Debian font onto pydicom's test images.

:func:`burn` draws a string into one frame of a dataset (decoded with the code under test's
own decoder), stores the pixels natively and, when asked, compresses them again with pydicom's
encoder, and returns where the text's pixels lie (the ground truth a detection must cover).
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from anonlib.dicomio import encode_instance
from anonlib.pixels import TextBox, decode_frames

FONTS = "/usr/share/fonts/truetype"
SANS = f"{FONTS}/dejavu/DejaVuSans.ttf"
MONO = f"{FONTS}/liberation/LiberationMono-Regular.ttf"


@dataclass(frozen=True, eq=False)
class Truth:
    """Where burned-in text lies: frame, the bounding box of its pixels (x1/y1 exclusive) and,
    for drawn text, which pixels of the frame are ink."""

    frame: int
    x0: int
    y0: int
    x1: int
    y1: int
    ink: np.ndarray | None = None

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@cache
def _read(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(get_testdata_file(name), force=True)


def sample(name: str) -> Dataset:
    """A private copy of one of pydicom's offline test files."""
    return copy.deepcopy(_read(name))


def max_stored(ds: Dataset) -> int:
    """The largest value the stored bits allow."""
    bits = int(ds.BitsStored)
    return 2 ** (bits - 1) - 1 if int(ds.PixelRepresentation) == 1 else 2 ** bits - 1


def store(ds: Dataset, frames: np.ndarray, syntax: str | None = None) -> None:
    """Replace ``ds``'s pixels by ``frames`` (``(frames, rows, columns[, 3])``), natively in
    Explicit VR Little Endian (colour as RGB), then compressed to ``syntax`` when given."""
    kind = "i" if int(ds.PixelRepresentation) == 1 else "u"
    data = frames.astype(f"<{kind}{int(ds.BitsAllocated) // 8}").tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    if frames.ndim == 4:
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if syntax is not None:
        options = {"use_mct": False} if syntax == JPEG2000Lossless else {}
        ds.compress(syntax, frames if frames.shape[0] > 1 else frames[0],
                    generate_instance_uid=False, **options)


def burn(ds: Dataset, text: str, *, x: int, y: int, size: int = 14, frame: int = 0,
         value: int | tuple[int, int, int] | None = None, font: str = SANS,
         syntax: str | None = None) -> Truth:
    """Draw ``text`` at (x, y) into ``frame`` of ``ds`` (in place) with ``value`` (default:
    the maximum stored value, white for colour) and store it (see :func:`store`)."""
    frames = decode_frames(ds).copy()
    canvas = Image.new("L", (frames.shape[2], frames.shape[1]), 0)
    ImageDraw.Draw(canvas).text((x, y), text, font=ImageFont.truetype(font, size), fill=255)
    ink = np.asarray(canvas) >= 128
    if value is None:
        value = (255, 255, 255) if frames.ndim == 4 else max_stored(ds)
    frames[frame][ink] = value
    store(ds, frames, syntax)
    ys, xs = np.nonzero(ink)
    return Truth(frame, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, ink)


def covered(truth: Truth, boxes: list[TextBox], share: float = 0.98, pad: int = 4) -> bool:
    """Whether ``boxes`` of the truth's frame, padded as masking pads them, cover at least
    ``share`` of its ink (of its bounding box where the ink is not known)."""
    shape = truth.ink.shape if truth.ink is not None else (truth.y1 + pad, truth.x1 + pad)
    cover = np.zeros(shape, dtype=bool)
    for box in boxes:
        if box.frame == truth.frame:
            cover[max(0, box.y - pad):box.y + box.height + pad,
                  max(0, box.x - pad):box.x + box.width + pad] = True
    if truth.ink is not None:
        return float(cover[truth.ink].mean()) >= share
    return float(cover[truth.y0:truth.y1, truth.x0:truth.x1].mean()) >= share


def written(ds: Dataset) -> Dataset:
    """``ds`` written as a DICOM file (as the pipeline writes it) and read back."""
    data = encode_instance(ds, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))
