"""The pixel stage of one instance: read the frames the policy selects, keep the boxes to mask.

:class:`PixelStage` is built once per worker (it holds the OCR engine, loaded on first use) and
called by the pipeline before the engine: :meth:`PixelStage.scan` returns a :class:`PixelScan`
— the boxes to mask, how much was read, or why it could not be read — which the engine applies
(:func:`anonlib.engine.deidentify` ``pixels=``). A failure is never raised: it becomes the scan's
``error``, and the engine quarantines the instance with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from anonlib.errors import PixelError
from anonlib.pixels import Detector, TextBox
from anonlib.pixels.phi import identifying_boxes
from anonlib.pixels.select import Reading, sample_frames
from anonlib.profile.burned_in import BurnedInPolicy

__all__ = ["PixelScan", "PixelStage", "check_engine"]


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


@dataclass(frozen=True)
class PixelScan:
    """What the pixel stage did with one instance. ``boxes``: to be masked; ``found``: how many
    text boxes OCR found (``mask: phi`` masks fewer); ``every_frame``: every frame was read;
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


@dataclass
class PixelStage:
    """OCR for one worker: ``policy`` from the plan; the detector is loaded on first use (or
    given, e.g. by a test)."""

    policy: BurnedInPolicy
    detector: Detector | None = None

    def engine(self) -> Detector:
        """The OCR engine (PixelError when it is not installed)."""
        if self.detector is None:
            from anonlib.pixels import detector

            self.detector = detector(self.policy.engine)
        return self.detector

    def scan(self, ds: Dataset, reading: Reading, phi_values: Iterable[str] = ()) -> PixelScan:
        """Read the frames of ``ds`` (with its pixel data) that ``reading`` selects."""
        from anonlib.pixels import find_text

        recognize = self.policy.mask == "phi"
        try:
            engine = self.engine()
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            chosen = None if reading.every_frame or frames <= 3 else sample_frames(frames)
            boxes = find_text(ds, engine, frames=chosen, recognize=recognize)
            if boxes and chosen is not None:  # text in a sampled frame: read them all
                boxes = find_text(ds, engine, frames=None, recognize=recognize)
                chosen = None
        except PixelError as exc:
            return PixelScan(reading, error=str(exc), engine=self.policy.engine)
        except Exception as exc:  # noqa: BLE001 - an engine failure quarantines, never releases
            return PixelScan(reading, error=f"OCR failed ({type(exc).__name__})", engine=self.policy.engine)
        found = len(boxes)
        if recognize:
            boxes = identifying_boxes(boxes, phi_values, self.policy.allow_tokens)
        return PixelScan(reading, tuple(boxes), found, frames if chosen is None else len(chosen),
                         chosen is None, engine=self.policy.engine)
