"""Fill text boxes with a constant and store the pixels back (:mod:`anonlib.pixels.encode`).

Each box is padded by ``pad`` pixels on every side and clipped to the frame. The fill is what a
viewer shows as black: the frame's minimum stored value (its maximum for MONOCHROME1), 0 in
every sample of a colour frame, the index of the darkest colour a PALETTE COLOR frame uses. Only the pixels inside the padded boxes change.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from anonlib.errors import PixelError
from anonlib.pixels.decode import decode_frames
from anonlib.pixels.encode import Region, store_pixels
from anonlib.pixels.model import TextBox

__all__ = ["mask_text", "padded_regions"]


def padded_regions(boxes: Sequence[TextBox], frames: int, rows: int, columns: int,
                   pad: int) -> list[Region]:
    """Each box grown by ``pad`` and clipped to the frame; empty results dropped."""
    regions = []
    for box in boxes:
        if not 0 <= box.frame < frames:
            raise PixelError(f"box in frame {box.frame} but the instance has {frames} frame(s)")
        x0, y0 = max(0, box.x - pad), max(0, box.y - pad)
        x1 = min(columns, box.x + box.width + pad)
        y1 = min(rows, box.y + box.height + pad)
        if x1 > x0 and y1 > y0:
            regions.append(Region(box.frame, y0, y1, x0, x1))
    return regions


def _fill(frame: np.ndarray, ds: Dataset) -> int | float:
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if frame.ndim == 3:
        return 0
    if photometric == "PALETTE COLOR":  # the index of the darkest colour the frame uses
        from pydicom.pixels.processing import apply_color_lut

        used = np.unique(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            colours = np.asarray(apply_color_lut(used, ds), dtype=np.float64)
        return used[int(np.argmin(colours @ np.array([0.299, 0.587, 0.114])))]  # type: ignore[no-any-return]
    return frame.max() if photometric == "MONOCHROME1" else frame.min()  # type: ignore[no-any-return]


def mask_text(ds: Dataset, boxes: Sequence[TextBox], *, pad: int = 4) -> None:
    """Fill each padded box of ``ds`` (in place) with the frame's black and re-encode the pixel
    data (see :func:`~anonlib.pixels.encode.store_pixels`). No boxes: nothing changes.

    Does not touch BurnedInAnnotation or the de-identification method codes (the caller's).
    Raises :class:`PixelError` when the pixels cannot be decoded or stored back."""
    if not boxes:
        return
    original = decode_frames(ds)
    frames, rows, columns = original.shape[:3]
    regions = padded_regions(boxes, frames, rows, columns, pad)
    if not regions:
        return
    masked = original.copy()
    fills: dict[int, int | float] = {}
    for region in regions:
        if region.frame not in fills:
            fills[region.frame] = _fill(original[region.frame], ds)
        masked[region.frame, region.y0:region.y1, region.x0:region.x1, ...] = fills[region.frame]
    store_pixels(ds, original, masked, regions)
