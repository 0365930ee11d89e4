"""The pixel stage: burned-in text found with OCR and masked (PS3.15 E.3.1 Clean Pixel Data).

One door, four steps: **decode** a DICOM instance's frames (every transfer syntax pydicom can
decode with the registry's plugins), **render** each for OCR (the viewer's window and the full
range, upscaled when small), **detect** text with a swappable :class:`Detector` (an OCR engine
that ships its models inside its package, or Debian's Tesseract), **mask** each box (padded,
filled with a constant) and re-encode the pixel data validly.

This module holds the vocabulary every part shares; the steps live in their own modules:
``decode``, ``render``, ``detect`` (the protocol's engines), ``mask`` and ``encode``. Callers use
:func:`find_text` and :func:`mask_text`; nothing here reads files, opens sockets or logs a value.
Recognized text is PHI: it lives in memory for matching, never in a record, log or report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from anonlib.errors import PixelError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TextBox", "Detector", "PixelError"]


@dataclass(frozen=True)
class TextBox:
    """One piece of text found in one frame: where (pixel coordinates of the instance's frame,
    ``x``/``y`` the top-left corner), how sure the detector is, and — where the engine
    recognizes it — the text itself (PHI: kept out of ``repr`` and comparisons, never recorded)."""

    frame: int
    x: int
    y: int
    width: int
    height: int
    score: float
    text: str = field(default="", repr=False, compare=False)


class Detector(Protocol):
    """An OCR engine: text boxes in one rendered 8-bit image (H×W grey or H×W×3 RGB)."""

    name: str

    def detect(self, image: np.ndarray) -> list[TextBox]:
        """Every text box in ``image`` (``frame`` 0, coordinates in ``image``'s pixels), with its
        text when the engine recognizes it. Raises :class:`PixelError` when it cannot run."""
        ...

