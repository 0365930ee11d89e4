"""Boxes drawn on a copy of a rendered frame, for people: the preview's before/after images and
the review view. Only rectangles are drawn — never text, never a value from the data.

:func:`draw_boxes` outlines rectangles given in the frame's own pixel coordinates on an image
rendered at any scale (OCR's upscaled view, a thumbnail); :func:`frames_with_boxes` renders
frames of a dataset the way a viewer would and draws on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["FOUND", "MASKED", "REVIEWER", "Rectangle", "draw_boxes", "frame_with_boxes", "frames_with_boxes"]

FOUND = (230, 40, 40)
"""Outline colour of the boxes OCR found (red)."""
MASKED = (40, 200, 70)
"""Outline colour of the boxes that were masked (green)."""
REVIEWER = (255, 190, 0)
"""Outline colour of the regions a reviewer added (amber)."""

DISPLAY_SIDE = 512
"""The longer side of an image drawn for a notebook (larger renders are shrunk to it)."""


class Rectangle(Protocol):
    """Anything with a frame and a rectangle: TextBox, the store's PixelBox and Region."""

    @property
    def frame(self) -> int: ...
    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


def _rgb(image: np.ndarray) -> Image.Image:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError("draw_boxes needs an 8-bit image")
    if array.ndim == 2:
        return Image.fromarray(array, "L").convert("RGB")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array, "RGB")
    raise ValueError(f"draw_boxes needs a grey or RGB image, not shape {array.shape}")


def draw_boxes(image: np.ndarray, frame_shape: tuple[int, int],
               layers: Sequence[tuple[Sequence[Rectangle], tuple[int, int, int]]], *,
               frame: int = 0, max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """A copy of ``image`` (uint8, grey or RGB) as RGB, shrunk so that its longer side is at most
    ``max_side``, with the rectangles of each layer ``(boxes, colour)`` that lie on ``frame``
    outlined in that colour. ``frame_shape`` is (rows, columns) of the frame the boxes'
    coordinates refer to; ``image`` may be rendered at another scale."""
    picture = _rgb(image)
    rows, columns = frame_shape
    shrink = min(1.0, max_side / max(picture.size))
    if shrink < 1.0:
        size = (max(1, round(picture.size[0] * shrink)), max(1, round(picture.size[1] * shrink)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    sx, sy = picture.size[0] / max(columns, 1), picture.size[1] / max(rows, 1)
    line = max(1, round(max(picture.size) / 128))  # still visible when a figure shows it smaller
    pen = ImageDraw.Draw(picture)
    for boxes, colour in layers:
        for box in boxes:
            if box.frame != frame:
                continue
            left, top = box.x * sx, box.y * sy
            right = max(left, (box.x + box.width) * sx - 1)
            bottom = max(top, (box.y + box.height) * sy - 1)
            pen.rectangle((left, top, right, bottom), outline=colour, width=line)
    return np.asarray(picture)


def frames_with_boxes(ds: Dataset, frames: Sequence[int],
                      layers: Sequence[tuple[Sequence[Rectangle], tuple[int, int, int]]], *,
                      max_side: int = DISPLAY_SIDE) -> list[np.ndarray]:
    """The ``frames`` of ``ds`` (read with its pixel data; decoded once) as a viewer shows them —
    grey frames through their window (else their full range), not OCR's false-colour view —
    scaled so the longer side is about ``max_side`` (at most 4x), each with the layers'
    rectangles on that frame outlined. Raises :class:`~anonlib.errors.PixelError` when the
    pixels cannot be decoded."""
    from anonlib.pixels import decode_frames
    from anonlib.pixels.render import frame_views

    decoded = decode_frames(ds)
    shape = (int(decoded.shape[1]), int(decoded.shape[2]))
    scale = min(4.0, max_side / max(shape))
    return [draw_boxes(frame_views(decoded, ds, frame, scale=scale, fuse=False)[0].image, shape, layers,
                       frame=frame, max_side=max_side) for frame in frames]


def frame_with_boxes(ds: Dataset, frame: int,
                     layers: Sequence[tuple[Sequence[Rectangle], tuple[int, int, int]]], *,
                     max_side: int = DISPLAY_SIDE) -> np.ndarray:
    """One frame of :func:`frames_with_boxes`."""
    return frames_with_boxes(ds, [frame], layers, max_side=max_side)[0]
