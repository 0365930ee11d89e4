"""The pixel stage: burned-in text found with OCR and masked (PS3.15 E.3.1 Clean Pixel Data).

One door, four steps: **decode** a DICOM instance's frames (every transfer syntax pydicom can
decode with the registry's plugins), **render** each for OCR (the viewer's window and the full
range, upscaled when small), **detect** text with a swappable :class:`Detector` (an OCR engine
that ships its models inside its package, or Debian's Tesseract), **mask** each box (padded,
filled with a constant) and re-encode the pixel data validly.

The steps live in their own modules — ``decode``, ``render``, ``engines/*`` and ``detect``,
``mask``, ``encode``; the vocabulary (:class:`TextBox`, :class:`Detector`) in ``model``. Callers
use :func:`detector`, :func:`find_text` and :func:`mask_text`; nothing here reads files, opens
sockets or logs a value, and no engine loads before :func:`detector` asks for it. Recognized
text is PHI: it lives in memory for matching, never in a record, log or report.

Cost, measured on the 2-core development machine (512×512 CT slice without text, one view,
engine already loaded): see :mod:`anonlib.pixels.detect` for the table.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from anonlib.errors import PixelError
from anonlib.pixels.model import Detector, TextBox

if TYPE_CHECKING:
    from anonlib.pixels.decode import decode_frames
    from anonlib.pixels.detect import detector, find_text, merge_boxes
    from anonlib.pixels.mask import mask_text
    from anonlib.pixels.render import render_views

#: The steps that need numpy, imported on first use (a run that reads no pixel never loads them).
_STEPS = {"decode_frames": "decode", "detector": "detect", "find_text": "detect", "merge_boxes": "detect",
          "mask_text": "mask", "render_views": "render"}

__all__ = [
    "TextBox",
    "Detector",
    "PixelError",
    "detector",
    "find_text",
    "mask_text",
    "decode_frames",
    "render_views",
    "merge_boxes",
]


def __getattr__(name: str) -> Any:
    module = _STEPS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
