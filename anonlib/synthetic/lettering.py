"""Text burned into pixel arrays the way modalities and screen grabbers do it.

A line of text is rendered with a Debian TrueType font (fonts-dejavu, fonts-liberation) into an
alpha mask, anti-aliased or not, and composited into a frame with one ink value (a stored value
for greyscale, an RGB triple for colour, a palette index). The box returned is the tight box of
the pixels the text really changed, so a ground-truth box never holds a margin of background.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_DIRS", "Font", "available_fonts", "render", "composite"]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
"""Where the Debian font packages put their TrueType files."""

_FAMILIES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf", "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf",
    "LiberationMono-Regular.ttf", "LiberationSerif-Regular.ttf", "LiberationSansNarrow-Regular.ttf",
)


@dataclass(frozen=True)
class Font:
    """One font file at one pixel size, with or without anti-aliasing."""

    path: Path
    size: int
    antialias: bool = True

    @property
    def name(self) -> str:
        return self.path.stem


def available_fonts() -> list[Path]:
    """The fonts of :data:`_FAMILIES` installed on this machine, in a fixed order (raises
    ``FileNotFoundError`` when none is, naming the Debian packages to install)."""
    found = [folder / name for name in _FAMILIES for folder in FONT_DIRS if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError("no TrueType font found: install fonts-dejavu-core and fonts-liberation")
    return found


@functools.lru_cache(maxsize=256)
def _truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def render(text: str, font: Font) -> np.ndarray:
    """The text's alpha mask (float 0..1), cropped to the pixels it inks."""
    face = _truetype(font.path, font.size)
    left, top, right, bottom = (int(v) for v in face.getbbox(text))
    canvas = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "L" if font.antialias else "1"
    draw.text((1 - left, 1 - top), text, font=face, fill=255)
    alpha = np.asarray(canvas, dtype=np.float64) / 255.0
    rows, cols = np.nonzero(alpha)
    if rows.size == 0:
        raise ValueError("the text inks no pixel at this size")
    return alpha[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def composite(frame: np.ndarray, alpha: np.ndarray, x: int, y: int,
              ink: int | Sequence[int], *, blend: bool = True) -> tuple[int, int, int, int] | None:
    """Draw ``alpha`` with ``ink`` into ``frame`` (rows × cols, or rows × cols × samples) at
    (``x``, ``y``), in place; ``blend=False`` for indexed (palette) frames, where a pixel is
    either ink or background. Returns the tight (x, y, w, h) of the pixels that changed, or
    ``None`` when none did (ink equal to the background everywhere)."""
    h, w = alpha.shape
    region = frame[y:y + h, x:x + w]
    if region.shape[:2] != alpha.shape:
        raise ValueError("text does not fit in the frame at this position")
    before = region.copy()
    ink_array = np.asarray(ink, dtype=np.float64)
    weight = alpha[..., None] if region.ndim == 3 else alpha
    if blend:
        mixed = region.astype(np.float64) * (1.0 - weight) + ink_array * weight
        info = np.iinfo(frame.dtype)
        region[...] = np.clip(np.rint(mixed), info.min, info.max).astype(frame.dtype)
    else:
        region[alpha >= 0.5] = np.asarray(ink, dtype=frame.dtype)
    changed = before != region
    if changed.ndim == 3:
        changed = changed.any(axis=2)
    rows, cols = np.nonzero(changed)
    if rows.size == 0:
        return None
    return (x + int(cols.min()), y + int(rows.min()), int(cols.max() - cols.min() + 1),
            int(rows.max() - rows.min() + 1))
