"""Render one decoded frame as the 8-bit images an OCR engine reads.

A grey frame is seen through two ranges (after RescaleSlope/Intercept, MONOCHROME1 inverted):
the full range of its values stretched min–max — text burned in at the maximum stored value sits
far above a CT window and shows only there — and the window a viewer would open it with (the
first WindowCenter/WindowWidth), or, without a window, the range of the bulk of its values
(:data:`ROBUST_LOW`; text drawn at the image's own white vanishes in a min–max stretch when
other pixels, such as text at the maximum, lie far above it). The two are **fused** into one
false-colour view
(red and blue the window, green the full range): text that stands out in either range stands
out in colour, and the frame costs one detection pass instead of two (measured on the synthetic
burned-in set, 60 images: the same 112 of 119 boxes found, CT frames about 45 % cheaper).
Engines that read grey better than colour (Tesseract) get the two as separate views
(``fuse=False``). When the second range spans nearly the whole range the full view alone is
kept. Colour frames (RGB, decoded YBR, PALETTE COLOR through its lookup table) are one view.

Every frame is upscaled by an integer factor, at least :data:`MIN_UPSCALE` and more while its
smaller side is below :data:`TARGET_MIN_SIDE`, capped so the larger side stays within
:data:`MAX_SIDE` (a frame larger than that is scaled down to it). Measured with PP-OCRv4 on a
512×512 frame, six strings in five Debian fonts: text 8 px high (PIL size 8, glyph boxes 6–9 px)
is found 6/30 at scale 1, 20–23/30 at 1.5 and 28–29/30 at 2; text 10 px high 23/30, 29/30 and
30/30. A caller that accepts missing the smallest text for speed passes ``scale``. Each
:class:`View` carries its ``scale`` so boxes map back to the frame's own pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anonlib.pixels.decode import decode_frames

__all__ = ["MIN_UPSCALE", "TARGET_MIN_SIDE", "MAX_SIDE", "View", "frame_views", "render_views",
           "scale_for"]

MIN_UPSCALE = 2
"""Every frame is read at twice its size at least: PP-OCRv4 misses most text 8 px high at 1×."""
TARGET_MIN_SIDE = 512
"""Frames whose smaller side is below this are upscaled further (integer factor) to reach it."""
ROBUST_LOW, ROBUST_HIGH, ROBUST_HEADROOM = 0.01, 0.95, 0.5
"""Without a window, the second range runs from the 1st to the 95th percentile of the values
strictly between the minimum and the maximum, its top raised by half its span: the bulk of the
image with room above it, whatever share text at (or antialiased towards) the maximum takes."""
MAX_SIDE = 3072
"""Neither the upscale nor the frame itself is allowed to exceed this on its larger side (a
larger frame is scaled down to it), bounding the detector's memory and time: a 1760² CR or a
2048×1664 mammogram is read at 1× (9 or 3.4 Mpx) rather than 2× (12–14 Mpx, about four times
the time, and the 8-px text of a mammogram's edge was missed at 2× as well); frames up to
1536 px keep the 2×."""


@dataclass(frozen=True)
class View:
    """One rendered image (H×W grey or H×W×3 RGB, uint8) and its scale relative to the frame."""

    image: np.ndarray
    scale: float
    kind: str  # "full", "window", "robust", "window+full", "robust+full" or "colour"


def _first(value: object) -> float | None:
    """The first value of a (possibly multi-valued) DS element as a float, else None."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    out: np.ndarray = (values.astype(np.float32) - np.float32(low)) * \
        np.float32(255.0 / (high - low))
    clipped: np.ndarray = np.clip(out, 0, 255)
    return clipped.astype(np.uint8)


def scale_for(rows: int, columns: int, *, max_upscale: int | None = None,
              min_upscale: float = MIN_UPSCALE) -> float:
    """The factor a ``rows``×``columns`` frame is rendered at for OCR: ``min_upscale`` at least
    (a cheaper pass over large frames passes 1 or 1.5), more while the smaller side is below
    :data:`TARGET_MIN_SIDE`; an engine that reads large glyphs poorly (Tesseract) caps it with
    ``max_upscale``."""
    small, large = min(rows, columns), max(rows, columns)
    if large > MAX_SIDE:
        return MAX_SIDE / large
    factor: float = max(min_upscale, math.ceil(TARGET_MIN_SIDE / max(small, 1)))
    if max_upscale is not None:
        factor = min(factor, max_upscale)
    return float(max(1.0, min(factor, MAX_SIDE // max(large, 1))))


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    rows, columns = image.shape[:2]
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    method = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize(size, method))


def _second_range(values: np.ndarray, ds: Dataset, low: float, high: float) \
        -> tuple[float, float, str] | None:
    """The window that hides part of the range, else the bulk of the values when that is under
    half the range; None when the full range alone shows everything."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        bottom = center - 0.5 - (width - 1) / 2  # PS3.3 C.11.2.1.2.1, linear function
        top = center - 0.5 + (width - 1) / 2
        if bottom > low or top < high:
            return bottom, top, "window"
    inner = values[(values > low) & (values < high)]  # text drawn at the extremes left out
    if inner.size == 0:
        return None
    bottom, top = (float(q) for q in np.quantile(inner, (ROBUST_LOW, ROBUST_HIGH)))
    top = min(high, top + ROBUST_HEADROOM * (top - bottom))
    if top > bottom and (top - bottom) < (high - low) / 2:
        return bottom, top, "robust"
    return None


def _grey_views(frame: np.ndarray, ds: Dataset, fuse: bool) -> list[tuple[np.ndarray, str]]:
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    values = frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    low, high = float(values.min()), float(values.max())
    invert = str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    views = [(_stretch(values, low, high), "full")]
    second = _second_range(values, ds, low, high)
    if second is not None:
        views.insert(0, (_stretch(values, second[0], second[1]), second[2]))
    views = [(255 - image if invert else image, kind) for image, kind in views]
    if fuse and len(views) == 2:
        (other, kind), (full, _) = views
        return [(np.stack([other, full, other], axis=-1), f"{kind}+full")]
    return views


def _colour_view(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = np.asarray(apply_color_lut(frame, ds))
    if frame.dtype == np.uint8:
        return frame
    return _stretch(frame, float(frame.min()), float(frame.max()))


def frame_views(frames: np.ndarray, ds: Dataset, frame: int, *, scale: float | None = None,
                max_upscale: int | None = None, min_upscale: float = MIN_UPSCALE,
                fuse: bool = True) -> list[View]:
    """The views of ``frames[frame]`` (``frames`` as :func:`decode_frames` returns them), at
    ``scale`` (default :func:`scale_for` the frame's size); ``fuse=False`` keeps a grey frame's
    two ranges as separate views."""
    pixels = frames[frame]
    if pixels.ndim == 3 or str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        rendered = [(_colour_view(pixels, ds), "colour")]
    else:
        rendered = _grey_views(pixels, ds, fuse)
    if scale is None:
        scale = scale_for(pixels.shape[0], pixels.shape[1], max_upscale=max_upscale,
                          min_upscale=min_upscale)
    return [View(_resized(image, scale), scale, kind) for image, kind in rendered]


def render_views(ds: Dataset, frame: int, *, scale: float | None = None) -> list[np.ndarray]:
    """The 8-bit images OCR reads for one frame (0-based) of ``ds``, upscaled as OCR sees them.

    Raises :class:`~anonlib.errors.PixelError` when the pixels cannot be decoded."""
    return [view.image for view in frame_views(decode_frames(ds), ds, frame, scale=scale)]
