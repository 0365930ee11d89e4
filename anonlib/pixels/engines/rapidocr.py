"""PP-OCRv4 text detection (and recognition) through ``rapidocr-onnxruntime``.

The ONNX models ship inside the wheel (``rapidocr_onnxruntime/models``): nothing is downloaded.
One instance per process (see :func:`anonlib.pixels.detect.detector`): loading the three models
takes about a second, a detection pass on a 512×512 view about 40–50 ms on two cores.

The library's own ``__call__`` is not used as a whole: it drops every box whose *recognized*
text scores below ``text_score`` (a detected name the recognizer reads poorly would go
unmasked) and resizes images itself. Here the detector's own box score is kept for every box,
recognition only adds the text, and the caller (:mod:`anonlib.pixels.render`) decides the scale.

One exception, measured on pydicom's CT and MR test slices and on the synthetic burned-in set
(60 images, seed 0): the detector also outlines anatomy (skull, vertebrae, Doppler flow) as
large, roughly square boxes with scores of 0.5–0.9, which would mask up to a sixth of a slice.
Such a *blob* (at least :data:`BLOB_MIN_HEIGHT` rendered pixels high, less than
:data:`BLOB_MAX_ASPECT` times as wide as high) is read by the recognizer even when
``recognize`` is false, and dropped when it reads as at most one character (a lone large
character identifies no one) or with a recognition score below :data:`BLOB_MIN_TEXT_SCORE`.
In that set all 40 anatomy blobs read as "" or one character or scored 0.38–0.53; all 5
blobs of real text read as 2–3 characters at 0.69–1.0.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from anonlib.errors import PixelError
from anonlib.pixels.model import TextBox

__all__ = ["RapidOcrDetector", "default_threads"]

MAX_SIDE = 8192  # the caller scales; the library must not resize again
BLOB_MIN_HEIGHT = 48
BLOB_MAX_ASPECT = 3.0
BLOB_MIN_TEXT_SCORE = 0.6


def default_threads() -> int:
    """Intra-op threads for onnxruntime: half the CPUs this process may use, 1 to 4.

    Measured on the 2-core development machine while other processes ran (one 1024×1024
    detection): 1 thread 290–310 ms; 2 threads 210 ms when a core was free but 510 ms when not.
    The pipeline decodes, writes and runs other workers beside OCR, so half the CPUs it is."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus // 2))


class RapidOcrDetector:
    """:class:`~anonlib.pixels.Detector` backed by RapidOCR's PP-OCRv4 detector and recognizer."""

    name = "rapidocr"

    def __init__(self, *, threads: int | None = None, box_threshold: float = 0.5,
                 drop_blobs: bool = True) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise PixelError("OCR engine rapidocr not installed (pip package "
                             "rapidocr-onnxruntime)") from exc
        self._drop_blobs = drop_blobs
        count = threads or default_threads()
        self._ocr: Any = RapidOCR(
            intra_op_num_threads=count, inter_op_num_threads=1, print_verbose=False,
            max_side_len=MAX_SIDE, min_side_len=1,
            det_limit_type="max", det_limit_side_len=MAX_SIDE, det_box_thresh=box_threshold,
        )
        for wrapper in (self._ocr.text_det.infer, self._ocr.text_rec.session):
            wrapper.session = _session(wrapper.session, count)

    def _boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        det = self._ocr.text_det
        height, width = image.shape[:2]
        tensor = det.get_preprocess(max(height, width))(image)
        if tensor is None:
            return []
        prediction = det.infer(tensor)[0]
        quads, scores = det.postprocess_op(prediction, (height, width))
        kept = []
        for quad, score in zip(quads, scores):
            quad = det.clip_det_res(det.order_points_clockwise(quad), height, width)
            if int(np.linalg.norm(quad[0] - quad[1])) <= 3 or \
                    int(np.linalg.norm(quad[0] - quad[3])) <= 3:
                continue
            kept.append((quad.astype(np.float32), float(score)))
        return kept

    def detect(self, image: np.ndarray, *, recognize: bool = True) -> list[TextBox]:
        """Text boxes in ``image`` (H×W grey or H×W×3 RGB, uint8) with the detector's score;
        ``recognize`` adds each box's text (PHI: kept in memory only)."""
        bgr = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., ::-1]
        bgr = np.ascontiguousarray(bgr)
        try:
            found = self._boxes(bgr)
            read = [index for index, (quad, _) in enumerate(found)
                    if recognize or (self._drop_blobs and _blob(quad))]
            texts: dict[int, tuple[str, float]] = {}
            if read:
                crops = self._ocr.get_crop_img_list(bgr, [found[index][0] for index in read])
                results, _ = self._ocr.text_rec(crops)
                texts = {index: (str(result[0]), float(result[1]))
                         for index, result in zip(read, results)}
        except MemoryError:
            raise PixelError("OCR engine rapidocr ran out of memory on this image") from None
        except Exception:  # onnxruntime/OpenCV errors: their text is not ours to repeat
            raise PixelError("OCR engine rapidocr failed while reading the image") from None
        boxes = []
        for index, (quad, score) in enumerate(found):
            text, text_score = texts.get(index, ("", 1.0))
            if self._drop_blobs and _blob(quad) and \
                    (len(text.strip()) <= 1 or text_score < BLOB_MIN_TEXT_SCORE):
                continue
            x0, y0 = np.floor(quad.min(axis=0)).astype(int)
            x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
            boxes.append(TextBox(0, int(x0), int(y0), int(x1 - x0), int(y1 - y0),
                                 round(score, 4), text if recognize else ""))
        return boxes


def _session(loaded: Any, threads: int) -> Any:
    """The library's session rebuilt with its memory arena on (it turns it off: measured 25–30 %
    slower per detection) and one inter-op thread."""
    import onnxruntime

    model = getattr(loaded, "_model_path", None)
    if not model:
        return loaded
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 4
    if threads > 1:  # idle threads must not spin on CPUs the rest of the pipeline needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, sess_options=options,
                                        providers=["CPUExecutionProvider"])


def _blob(quad: np.ndarray) -> bool:
    """A large box not much wider than high: what the detector makes of bright anatomy."""
    height = float(np.ptp(quad[:, 1]))
    return height >= BLOB_MIN_HEIGHT and float(np.ptp(quad[:, 0])) < BLOB_MAX_ASPECT * height
