"""Find text in an instance's frames: pick an engine, render each frame, map boxes back, merge.

:func:`detector` returns one engine instance per name and process (models load once);
:func:`find_text` runs it over every selected frame's views (:mod:`anonlib.pixels.render`) and
returns boxes in the frame's own pixel coordinates, a box found in both the windowed and the
full-range view merged into one.

Cost, measured 2026-12-06 on the 2-core development machine while other agents' processes ran
(load 2.5–3.7; medians; a 512×512 CT slice without text, window 40/100, stored natively; the
engine already loaded, 170 ms once per process):

===========================================  ==========  ===========  ============
step (one 512×512 CT frame)                   scale 1     scale 1.5    scale 2 (default)
===========================================  ==========  ===========  ============
decode (native) + render the fused view       2 ms        12 ms        20 ms
RapidOCR, 1 thread, detection only            67 ms       154 ms       311 ms
RapidOCR, 1 thread, with recognition          68 ms       158 ms       299 ms
RapidOCR, 2 threads (other load), detection   120 ms      268 ms       508 ms
find_text, RapidOCR 1 thread, detection only  69 ms       168 ms       338 ms
Tesseract (two grey views at 2×, subprocess)  —           —            323 ms wall
===========================================  ==========  ===========  ============

On a frame without text recognition costs nothing extra (nothing to read); on the palette
ultrasound with 19 text boxes ``recognize=False`` takes 342 ms against 854 ms. One view per grey
frame (the fused window + full range), so the per-view and per-frame costs are the same.
For a 300-slice CT series sampled at 3 images: about 1.0 s at the default scale 2, 0.5 s with
``min_scale=1.5`` and 0.2 s with ``min_scale=1``; on two 60-image synthetic sets the CT and MR
images lost no box at ``min_scale=1`` that the default found (92 of 95 either way), though text
8 px high is found 6/30 at scale 1 against 28/30 at 2 (see :mod:`anonlib.pixels.render`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

from pydicom.dataset import Dataset

from anonlib.errors import PixelError
from anonlib.pixels.decode import decode_frames
from anonlib.pixels.model import Detector, TextBox
from anonlib.pixels.render import MAX_SIDE, MIN_UPSCALE, frame_views

__all__ = ["ENGINES", "COLOUR_SECOND_SCALE", "detector", "find_text", "merge_boxes"]

COLOUR_SECOND_SCALE = 1.5
"""Colour frames (ultrasound, secondary captures, screenshots: the images most at risk) are
read a second time at 1.5× their render scale. On the synthetic burned-in set (60 images,
seed 0) their recall rose from 41 to 45 of 46 boxes (lines crossing graphics or Doppler colour
are cut at one scale and whole at another), for about three times the time per colour image
(median 0.37 → 1.1 s CPU). Grey frames gained 1 box of 161 from a second scale at 4× their
cost, so they are read once. Engines that cap the upscale (Tesseract) read once."""


def _rapidocr() -> Detector:
    from anonlib.pixels.engines.rapidocr import RapidOcrDetector

    return RapidOcrDetector()


def _tesseract() -> Detector:
    from anonlib.pixels.engines.tesseract import TesseractDetector

    return TesseractDetector()


ENGINES: dict[str, Callable[[], Detector]] = {"rapidocr": _rapidocr, "tesseract": _tesseract}
_CACHE: dict[str, Detector] = {}
_LOCK = threading.Lock()


def detector(name: str = "rapidocr") -> Detector:
    """The OCR engine ``name`` (``rapidocr`` or ``tesseract``), created once per process.

    Raises :class:`PixelError` for an unknown name or an engine that is not installed."""
    if name not in ENGINES:
        raise PixelError(f"unknown OCR engine {name!r} (known: {', '.join(sorted(ENGINES))})")
    with _LOCK:
        if name not in _CACHE:
            _CACHE[name] = ENGINES[name]()
        return _CACHE[name]


def _overlap(a: TextBox, b: TextBox) -> float:
    """Intersection over the smaller box's area."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min(a.width * a.height, b.width * b.height)
    return width * height / smaller if smaller else 1.0


def _union(a: TextBox, b: TextBox) -> TextBox:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.width, b.x + b.width), max(a.y + a.height, b.y + b.height)
    text = a.text if len(a.text) >= len(b.text) else b.text
    return TextBox(a.frame, x0, y0, x1 - x0, y1 - y0, max(a.score, b.score), text)


def merge_boxes(boxes: Sequence[TextBox], *, min_overlap: float = 0.5) -> list[TextBox]:
    """Boxes of the same frame that overlap by at least ``min_overlap`` of the smaller one
    merged into their union (highest score, the longer text), ordered by frame, y, x."""
    pending = sorted(boxes, key=lambda b: (b.frame, b.y, b.x))
    merged: list[TextBox] = []
    changed = True
    while changed:
        changed = False
        merged = []
        for box in pending:
            for index, kept in enumerate(merged):
                if kept.frame == box.frame and _overlap(kept, box) >= min_overlap:
                    merged[index] = _union(kept, box)
                    changed = True
                    break
            else:
                merged.append(box)
        pending = merged
    return sorted(merged, key=lambda b: (b.frame, b.y, b.x))


def _to_frame(box: TextBox, frame: int, scale: float, rows: int, columns: int) -> TextBox | None:
    x0 = max(0, math.floor(box.x / scale))
    y0 = max(0, math.floor(box.y / scale))
    x1 = min(columns, math.ceil((box.x + box.width) / scale))
    y1 = min(rows, math.ceil((box.y + box.height) / scale))
    if x1 <= x0 or y1 <= y0:
        return None
    return TextBox(frame, x0, y0, x1 - x0, y1 - y0, box.score, box.text)


def find_text(ds: Dataset, det: Detector, *, frames: Sequence[int] | None = None,
              recognize: bool = True, scale: float | None = None,
              min_scale: float | None = None) -> list[TextBox]:
    """Text in ``ds``'s pixels: boxes in each frame's own coordinates (frame 0-based).

    ``frames`` selects frames (default: all); ``recognize=False`` only detects (faster with
    RapidOCR; the boxes then carry no text). The render scale
    (:func:`~anonlib.pixels.render.scale_for`) is 2× at least, which the smallest text needs,
    and more for frames under 512 px; ``min_scale`` lowers that floor (1.5 or 1 for a cheaper
    pass over large frames, small frames still upscaled), ``scale`` fixes it for every frame
    (and turns off the second, larger reading of colour frames, :data:`COLOUR_SECOND_SCALE`).
    Raises :class:`PixelError` when the pixels cannot
    be decoded or the engine fails."""
    pixels = decode_frames(ds)
    count, rows, columns = pixels.shape[:3]
    selected = range(count) if frames is None else frames
    max_upscale = getattr(det, "max_upscale", None)  # optional: engines that read big text poorly
    fuse = bool(getattr(det, "fuse_views", True))  # optional: engines that read colour poorly
    found: list[TextBox] = []
    for frame in selected:
        if not 0 <= frame < count:
            raise PixelError(f"frame {frame} out of range (the instance has {count})")
        views = frame_views(pixels, ds, frame, scale=scale, max_upscale=max_upscale,
                            min_upscale=MIN_UPSCALE if min_scale is None else min_scale,
                            fuse=fuse)
        if scale is None and max_upscale is None and views[0].kind == "colour":
            larger = min(views[0].scale * COLOUR_SECOND_SCALE, MAX_SIDE / max(rows, columns))
            if larger > views[0].scale:
                views += frame_views(pixels, ds, frame, scale=larger)
        for view in views:
            for box in det.detect(view.image, recognize=recognize):
                mapped = _to_frame(box, frame, view.scale, rows, columns)
                if mapped is not None:
                    found.append(mapped)
    return merge_boxes(found)
