"""Tesseract 5 (Debian ``tesseract-ocr``) through ``pytesseract``: word boxes with confidence.

Tesseract always recognizes while it detects, so ``recognize=False`` costs the same; it runs as
a subprocess per image (``--psm 11``, sparse text: burned-in annotations are scattered words,
not a page), limited to one OpenMP thread so parallel workers do not oversubscribe the CPUs.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from anonlib.errors import PixelError
from anonlib.pixels.model import TextBox

__all__ = ["TesseractDetector", "MIN_CONFIDENCE"]

MIN_CONFIDENCE = 50.0
"""Words Tesseract is less sure of (0–100) are dropped: under ``--psm 11`` it reads anatomy as
'words' (8 % of pydicom's 64×64 MR at confidence 30–50; none above 50), while the burned-in
text of the tests reads at 59–96."""
CONFIG = "--psm 11 --oem 1"
MAX_UPSCALE = 2
"""Frames are rendered at most 2× for Tesseract: its line finder misses glyphs much over ~40 px
(a 64×64 MR rendered 8× for PP-OCR hides its text from Tesseract), and at 3× it reads three
times as much anatomy as words as at 2×, finding no more text."""


LONE_CHARACTER_MAX_HEIGHT = 48
"""A one-character 'word' taller than this (rendered pixels) is dropped, as is any word without
a letter or digit: on text-free synthetic images Tesseract read a whole CT slice, an MR's skull
and a CT vertebra as one symbol or one large character (100 %, 4 % and 18 % of the image). A
lone character identifies no one."""


def _not_text(word: str, data: dict[str, list[object]], index: int) -> bool:
    if not any(character.isalnum() for character in word):
        return True
    return len(word) == 1 and int(str(data["height"][index])) > LONE_CHARACTER_MAX_HEIGHT


class TesseractDetector:
    """:class:`~anonlib.pixels.Detector` backed by the ``tesseract`` executable."""

    name = "tesseract"
    max_upscale = MAX_UPSCALE
    fuse_views = False  # it binarizes luminance: a false-colour fusion of two ranges hides text

    def __init__(self, *, language: str = "eng", min_confidence: float = MIN_CONFIDENCE) -> None:
        try:
            import pytesseract
        except ImportError as exc:
            raise PixelError("OCR engine tesseract not installed (pip package pytesseract)") \
                from exc
        self._tesseract: Any = pytesseract
        self._command = str(pytesseract.pytesseract.tesseract_cmd)
        if shutil.which(self._command) is None:
            raise PixelError("OCR engine tesseract not installed (no 'tesseract' executable on "
                             "PATH; Debian package tesseract-ocr)")
        self._language = language
        self._min_confidence = min_confidence

    def detect(self, image: np.ndarray, *, recognize: bool = True) -> list[TextBox]:
        """Word boxes in ``image`` (H×W grey or H×W×3 RGB, uint8) with Tesseract's confidence
        (0–1) and text; ``recognize`` is accepted for the protocol (Tesseract always reads)."""
        from PIL import Image

        if shutil.which(self._command) is None:
            raise PixelError("OCR engine tesseract not installed (no 'tesseract' executable on "
                             "PATH; Debian package tesseract-ocr)")
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        try:
            data = self._tesseract.image_to_data(
                Image.fromarray(image), lang=self._language, config=CONFIG,
                output_type=self._tesseract.Output.DICT)
        except self._tesseract.TesseractNotFoundError:
            raise PixelError("OCR engine tesseract not installed (no 'tesseract' executable on "
                             "PATH; Debian package tesseract-ocr)") from None
        except Exception:  # its stderr is not ours to repeat
            raise PixelError("OCR engine tesseract failed while reading the image") from None
        boxes = []
        for index, text in enumerate(data["text"]):
            confidence = float(data["conf"][index])
            word = str(text).strip()
            if not word or confidence < self._min_confidence or _not_text(word, data, index):
                continue
            boxes.append(TextBox(0, int(data["left"][index]), int(data["top"][index]),
                                 int(data["width"][index]), int(data["height"][index]),
                                 round(confidence / 100.0, 4), str(text)))
        return boxes
