"""The vocabulary every step of the pixel stage shares: a text box and the detector protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TextBox", "Detector"]


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

    def detect(self, image: np.ndarray, *, recognize: bool = True) -> list[TextBox]:
        """Every text box in ``image`` (``frame`` 0, coordinates in ``image``'s pixels), with its
        text when the engine recognizes it and ``recognize`` is true (an engine that can only
        detect, or only detect and read together, may ignore it). Raises
        :class:`~anonlib.errors.PixelError` when it cannot run."""
        ...
