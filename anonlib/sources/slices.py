"""A series as an ordered list of slices, and one slice windowed into an 8-bit image or a PNG.

The browse panel's slice viewer pages through a series with these pure functions:

- :func:`slice_order` puts a series' instances in anatomical order — along the slice normal by
  ImagePositionPatient when every instance has a position and an orientation, else by
  InstanceNumber, else as given — and expands a multi-frame instance into one slice per frame.
- :func:`window_frame` turns one decoded frame into 8-bit grey or RGB: the Modality LUT
  (RescaleSlope/Intercept) first, then a window — a CT preset of :data:`WINDOW_PRESETS`
  (centre/width in Hounsfield units) or ``"default"``: the file's first
  WindowCenter/WindowWidth, else the frame's min–max — linear as PS3.3 C.11.2.1.2.1 says;
  MONOCHROME1 inverted (low values white); RGB, decoded YBR and PALETTE COLOR shown in colour
  (windows do not apply to colour).
- :func:`png` encodes the result, shrunk to fit a viewer.

Frames are decoded by :func:`anonlib.pixels.decode_frames` (every transfer syntax the installed
plugins read); what cannot be decoded raises :class:`~anonlib.errors.PixelError`.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anonlib.errors import ConfigError

__all__ = ["WINDOW_PRESETS", "Slice", "slice_order", "window_bounds", "window_frame", "png", "frame_count"]

#: (centre, width) of the usual CT windows, in the units after the Modality LUT (HU for CT);
#: ``default`` is the file's own window, else the frame's range.
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "default": None,
    "soft tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Slice:
    """One slice of a series: an instance key and a frame of it (0-based)."""

    instance: str
    frame: int = 0


def _numbers(value: object, count: int) -> tuple[float, ...] | None:
    """``count`` floats from a multi-valued DS element, or None."""
    if not isinstance(value, MultiValue | list | tuple) or len(value) != count:
        return None
    try:
        found = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return found if all(math.isfinite(v) for v in found) else None


def _first(value: object) -> float | None:
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        found = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames (1 when absent or not a positive number)."""
    number = _first(ds.get("NumberOfFrames"))
    return int(number) if number is not None and number >= 1 else 1


def _position(ds: Dataset) -> float | None:
    """Distance of the slice along its normal (ImagePositionPatient · row × column)."""
    position = _numbers(ds.get("ImagePositionPatient"), 3)
    orientation = _numbers(ds.get("ImageOrientationPatient"), 6)
    if position is None or orientation is None:
        return None
    normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
    return float(np.dot(normal, np.array(position)))


def slice_order(headers: Sequence[tuple[str, Dataset]]) -> list[Slice]:
    """The slices of a series whose instances are ``(key, header)``: ordered by position along
    the slice normal when every instance has one, else by InstanceNumber (instances without
    one last), else as given; each instance's frames in turn."""
    indexed = list(enumerate(headers))
    positions = [_position(ds) for _key, ds in headers]
    if headers and all(p is not None for p in positions):
        indexed.sort(key=lambda item: (positions[item[0]], item[0]))
    else:
        def by_number(item: tuple[int, tuple[str, Dataset]]) -> tuple[int, float, int]:
            number = _first(item[1][1].get("InstanceNumber"))
            return (0, number, item[0]) if number is not None else (1, 0.0, item[0])

        indexed.sort(key=by_number)
    return [Slice(key, frame) for _index, (key, ds) in indexed for frame in range(frame_count(ds))]


def window_bounds(ds: Dataset, values: NDArray[np.floating], preset: str = "default") -> tuple[float, float]:
    """(low, high) of the window: a preset's, else the file's first WindowCenter/WindowWidth,
    else the values' min–max. Raises :class:`ConfigError` for an unknown preset."""
    if preset not in WINDOW_PRESETS:
        raise ConfigError(f"unknown window preset {preset!r}; one of {', '.join(WINDOW_PRESETS)}")
    chosen = WINDOW_PRESETS[preset]
    if chosen is None:
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        chosen = (center, width) if center is not None and width is not None and width >= 1 else None
    if chosen is None:
        return float(values.min()), float(values.max())
    center, width = chosen
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


def _stretch(values: NDArray[np.floating], low: float, high: float) -> Image:
    if not high > low:
        return np.where(values > low, 255, 0).astype(np.uint8)
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0 + 0.5
    image: Image = scaled.astype(np.uint8)
    return image


def _colour(frame: NDArray[np.generic], ds: Dataset) -> Image:
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR" and frame.ndim == 2:
        from pydicom.pixels.processing import apply_color_lut

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = np.asarray(apply_color_lut(frame, ds))
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    values = frame.astype(np.float64)
    return _stretch(values, float(values.min()), float(values.max()))


def window_frame(frame: NDArray[np.generic], ds: Dataset, preset: str = "default") -> Image:
    """One decoded frame (rows × columns, or × 3 for colour) as 8-bit grey or RGB, windowed by
    ``preset`` (see the module's docstring)."""
    if frame.ndim == 3 or str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        return _colour(frame, ds)
    from pydicom.pixels.processing import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    low, high = window_bounds(ds, values, preset)
    image = _stretch(values, low, high)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = 255 - image
    return image


def png(image: Image, *, max_side: int = 768) -> bytes:
    """``image`` as PNG bytes, shrunk (never enlarged) so its longer side is at most ``max_side``."""
    from PIL import Image as PILImage

    picture = PILImage.fromarray(image)
    if max(picture.size) > max_side:
        scale = max_side / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
