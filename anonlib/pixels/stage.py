"""The pixel stage of one instance: read the frames the policy selects, keep the boxes to mask.

:class:`PixelStage` is built once per worker (it holds the OCR engine, loaded on first use) and
called by the pipeline before the engine: :meth:`PixelStage.scan` returns a :class:`PixelScan`
— the boxes to mask, how much was read, or why it could not be read — which the engine applies
(:func:`anonlib.engine.deidentify` ``pixels=``). A failure is never raised: it becomes the scan's
``error``, and the engine quarantines the instance with that reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pydicom.dataset import Dataset

from anonlib.errors import PixelError
from anonlib.pixels import Detector, TextBox
from anonlib.pixels.phi import identifying_boxes
from anonlib.pixels.select import Reading, sample_frames
from anonlib.profile.burned_in import BurnedInPolicy

__all__ = ["PixelScan", "PixelStage", "check_engine", "warm_up"]

log = logging.getLogger("anonlib.pixels")


def check_engine(name: str) -> None:
    """PixelError naming what is missing when OCR engine ``name`` cannot run here (checked
    before a run starts, without loading the engine's models)."""
    import importlib.util
    import shutil

    if name == "rapidocr":
        if importlib.util.find_spec("rapidocr_onnxruntime") is None:
            raise PixelError("OCR engine rapidocr is not installed (pip install rapidocr-onnxruntime)")
    elif name == "tesseract":
        if importlib.util.find_spec("pytesseract") is None:
            raise PixelError("OCR engine tesseract needs pytesseract (pip install pytesseract)")
        if shutil.which("tesseract") is None:
            raise PixelError("OCR engine tesseract needs the tesseract program (apt install tesseract-ocr)")
    else:
        raise PixelError(f"unknown OCR engine {name!r} (rapidocr or tesseract)")


def warm_up(name: str) -> threading.Thread:
    """Load OCR engine ``name`` in a background thread (its imports and models take about 0.3 s),
    so that it is ready when the first image is read instead of after: a run calls this before
    its header pre-pass. The first real use waits for it (:func:`anonlib.pixels.detector` holds
    a lock); a failure here is ignored — that use raises it again, with its reason. Returns the
    thread: join it before the process exits (an interpreter that exits while onnxruntime is
    loading in it aborts: "terminate called without an active exception")."""

    from anonlib.lazy_imports import settle

    settle()  # what the command line deferred is loaded here, not raced for by two threads

    def load() -> None:
        from anonlib.pixels import detector

        with contextlib.suppress(Exception):  # reported by the real use
            detector(name)

    thread = threading.Thread(target=load, name=f"ocr-warm-up-{name}", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class PixelScan:
    """What the pixel stage did with one instance. ``boxes``: to be masked; ``found``: how many
    text boxes OCR found (``mask: phi`` masks fewer); ``every_frame``: every frame was read, or
    the text found in a clip's frames is masked on every frame;
    ``error``: why the pixels could not be read (PHI-free), "" when they were."""

    reading: Reading
    boxes: tuple[TextBox, ...] = ()
    found: int = 0
    frames_read: int = 0
    every_frame: bool = False
    error: str = ""
    engine: str = ""

    @property
    def text_found(self) -> bool:
        return self.found > 0


_RENDERING = ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation",
              "PhotometricInterpretation", "SamplesPerPixel", "PlanarConfiguration", "NumberOfFrames",
              "WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept", "VOILUTFunction")


def _pixel_key(ds: Dataset, frames: tuple[int, ...] | None, recognize: bool) -> bytes | None:
    """A digest of what OCR sees of ``ds``: its pixel bytes, transfer syntax and every header
    value rendering depends on (None when the pixels are not plain bytes)."""
    data = ds.get("PixelData")
    if not isinstance(data, bytes):
        return None
    digest = hashlib.blake2b(data, digest_size=20)
    meta = getattr(ds, "file_meta", None)
    context = [str(meta.get("TransferSyntaxUID", "")) if meta is not None else "", repr(frames), str(recognize)]
    context += [str(ds.get(keyword, "")) for keyword in _RENDERING]
    digest.update("\x1f".join(context).encode("utf-8", "replace"))
    return digest.digest()


@dataclass
class PixelStage:
    """OCR for one worker: ``policy`` from the plan; the detector is loaded on first use (or
    given, e.g. by a test). What OCR found in identical pixels (the same bytes, rendered the same
    way) is remembered for the worker's life (at most :attr:`CACHE` entries, boxes only): a
    re-sent image, or a static frame of a clip, is read once."""

    policy: BurnedInPolicy
    detector: Detector | None = None
    _seen: OrderedDict[bytes, tuple[TextBox, ...]] = field(default_factory=OrderedDict, repr=False)

    CACHE = 512

    #: The render scale floor of a sampled image of a large series: 1× (anonlib.pixels.detect:
    #: ~80 ms on a 512² slice against ~340 ms at the default 2×; frames under 512 px are still
    #: upscaled). Scanner annotation text is 10 px high or more; 8-px text in a sampled series
    #: may be missed at 1× (measured: bench/RESULTS.md). What the sample finds escalates the
    #: series, which is then read at the default scale.
    SAMPLE_MIN_SCALE = 1.0
    #: Frames read of a multi-frame image once text is found in its first, middle and last:
    #: evenly spaced; the union of their boxes is masked on every frame (a clip's annotation is
    #: an overlay that stays where it is). ``every_frame: true`` reads every frame instead.
    CLIP_FRAMES = 12

    def _find(self, ds: Dataset, frames: list[int] | None, recognize: bool,
              min_scale: float | None = None) -> tuple[TextBox, ...]:
        from anonlib.pixels import find_text

        key = _pixel_key(ds, None if frames is None else tuple(frames), recognize)
        if key is not None:
            key += repr(min_scale).encode()
        if key is not None and key in self._seen:
            self._seen.move_to_end(key)
            return self._seen[key]
        boxes = tuple(find_text(ds, self.engine(), frames=frames, recognize=recognize, min_scale=min_scale))
        if key is not None:
            self._seen[key] = boxes
            if len(self._seen) > self.CACHE:
                self._seen.popitem(last=False)
        return boxes

    def engine(self) -> Detector:
        """The OCR engine (PixelError when it is not installed)."""
        if self.detector is None:
            from anonlib.pixels import detector

            self.detector = detector(self.policy.engine)
        return self.detector

    def scan(self, ds: Dataset, reading: Reading, phi_values: Iterable[str] = ()) -> PixelScan:
        """Read the frames of ``ds`` (with its pixel data) that ``reading`` selects."""
        recognize = self.policy.mask == "phi"
        try:
            frames = _frame_count(ds)
            chosen = None if frames <= 3 or self.policy.every_frame else sample_frames(frames)
            floor = self.SAMPLE_MIN_SCALE if reading.how == "sample" else None
            boxes = self._find(ds, chosen, recognize, floor)
            if boxes and chosen is None and floor is not None:  # text in a sample: read it at full scale
                boxes = self._find(ds, None, recognize)
            elif boxes and chosen is not None:  # text in a clip: more frames, the union on every frame
                chosen = spread_frames(frames, self.CLIP_FRAMES)
                boxes = on_every_frame(self._find(ds, chosen, recognize), frames)
        except PixelError as exc:
            return PixelScan(reading, error=str(exc), engine=self.policy.engine)
        except Exception as exc:  # noqa: BLE001 - an engine failure quarantines, never releases
            log.warning("OCR engine %s stopped with %s on an instance", self.policy.engine, type(exc).__name__)
            return PixelScan(reading, error=f"OCR failed: the {self.policy.engine} engine stopped unexpectedly",
                             engine=self.policy.engine)
        found = len(boxes)
        if recognize:
            boxes = tuple(identifying_boxes(boxes, phi_values, self.policy.allow_tokens))
        return PixelScan(reading, tuple(boxes), found, frames if chosen is None else len(chosen),
                         chosen is None or bool(boxes), engine=self.policy.engine)


def _frame_count(ds: Dataset) -> int:
    value = ds.get("NumberOfFrames", 1)
    try:
        return max(1, int(str(value).strip() or 1))
    except ValueError:
        raise PixelError("NumberOfFrames is not a whole number: the frames cannot be told apart") from None


def spread_frames(count: int, most: int) -> list[int]:
    """At most ``most`` frames of ``count``, evenly spaced, the first and last among them."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def on_every_frame(boxes: Iterable[TextBox], frames: int) -> tuple[TextBox, ...]:
    """The regions of ``boxes`` (merged across the frames they were found in) on every frame."""
    from anonlib.pixels import merge_boxes

    regions = merge_boxes([replace(box, frame=0) for box in boxes])
    return tuple(replace(region, frame=frame) for frame in range(frames) for region in regions)
