"""The audit's pixel check: text burned into released images, read with OCR and compared with
the originals' identifying values — a second opinion on the engine's pixel stage.

**Which images** (:mod:`anonlib.audit.pixel_select`): sampled as the engine samples them, every
image with ``pixels="all"``. Of a multi-frame image the first, middle and last frames are read,
every frame once text is found in one of them (every frame with ``pixels="all"``): an output
whose text was masked costs three frames, one with text costs them all.

**Matching**: each image is decoded and read by OCR (:func:`anonlib.pixels.find_text`, with
recognition); each recognized text is searched for its original's identifying values with the
leak check's matcher (:mod:`anonlib.audit.matching`: whole words, case and accents folded, values
too short to tell from ordinary text left out), plus what burned-in text adds: dates written
with the month's name (``14 MAR 1961``, ``Mar 14, 1961``), whole names with their parts glued
(``SMITHJOHN``) or in the other order, and letters and digits read together
(``JOHN14.03.1961``: OCR drops spaces) taken apart. As OCR confuses letters and digits that
look alike (``MRNB84213`` for ``MRN884213``, ``ZORBALlNA``), values and text are searched a
second time with each such character read as its digit (o 0, i l | 1, z 2, s 5, g 6, b 8), on
both sides alike.

**Verdicts**: a match fails (category of the value: ``A names``, ``C dates``, ``H record
numbers`` …) with the instance and the box (frame, x, y, width, height); other text is a
warning that counts and lists the boxes (a single character taller than an eighth of the
image — anatomy read as a letter — is not counted). An image that cannot be decoded, or whose
OCR fails, makes the check — and the audit — INCOMPLETE; so does an OCR engine that cannot be
loaded. Never a pass for what was not read.

Findings hold boxes, categories and counts, never the text: recognized text is PHI, kept in
memory only. OCR results are kept for the process (bounded), keyed by a digest of the pixel data
and its description (group 0028, transfer syntax) and the frames read, so an image audited twice
is read once.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import importlib
import io
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pydicom
from pydicom.dataset import Dataset

from anonlib.audit.matching import DATE_CATEGORY, NAME_CATEGORY, Matcher, Scanned, fold, tokenize
from anonlib.audit.model import Finding
from anonlib.audit.originals import name_parts
from anonlib.audit.pixel_select import ImageInfo, header_of, sample_frames, select_images

__all__ = ["PixelMode", "PIXEL_MODES", "PixelCheck", "PixelImage", "image_of", "PixelMatcher", "default_engine", "pixel_values",
           "spelled_dates", "clear_cache"]

PixelMode = Literal["sample", "all", "off"]
PIXEL_MODES: tuple[PixelMode, ...] = ("sample", "all", "off")
#: Boxes listed in one warning (the rest are counted).
MAX_LISTED_BOXES = 12
_CACHE_SIZE = 512
_CACHE: OrderedDict[str, list[Any]] = OrderedDict()
_ALNUM = re.compile(r"[^\W_]")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_DICOM_DATE = re.compile(r"^\d{8}$")
#: Letters OCR reads for digits and back, each mapped to its digit (text already case-folded).
_LOOK_ALIKE = str.maketrans({"o": "0", "i": "1", "l": "1", "|": "1", "z": "2", "s": "5", "g": "6", "b": "8"})


def default_engine() -> str:
    """The project's default OCR engine (:data:`anonlib.profile.burned_in.DEFAULT_ENGINE`, the
    engine's own default)."""
    import anonlib.pixels as pixels
    from anonlib.profile.burned_in import DEFAULT_ENGINE

    return str(getattr(pixels, "DEFAULT_ENGINE", DEFAULT_ENGINE))


def clear_cache() -> None:
    """Forget the OCR results kept for this process."""
    _CACHE.clear()


def spelled_dates(day: dt.date) -> list[str]:
    """The date written with its month's English name or abbreviation, day first or month first
    (``14 MAR 1961``, ``14MAR1961``, ``Mar 14 1961``, ``14 March 1961``, ``March 14, 1961``)."""
    forms: list[str] = []
    for month in (calendar.month_abbr[day.month], calendar.month_name[day.month]):
        forms += [f"{day.day:02d} {month} {day.year}", f"{day.day} {month} {day.year}",
                  f"{day.day:02d}{month}{day.year}", f"{month} {day.day} {day.year}",
                  f"{month} {day.day:02d} {day.year}"]
    return forms


def _glued_names(value: str) -> set[str]:
    """A whole name's parts glued (``SMITHJOHN``) and in the other order (``JOHN SMITH``)."""
    parts = [p for p in re.split(r"[\s^,]+", value) if p]
    if len(parts) < 2:
        return set()
    return {"".join(parts), "".join(reversed(parts)), " ".join(reversed(parts))}


def pixel_values(values: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """An original's identifying values (category → strings) with the forms burned-in text adds
    (see the module docstring)."""
    found = {category: set(strings) for category, strings in values.items()}
    for value in list(found.get(DATE_CATEGORY, ())):
        if _DICOM_DATE.match(value):
            try:
                day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
            except ValueError:
                continue
            found[DATE_CATEGORY].update(spelled_dates(day))
    for value in list(found.get(NAME_CATEGORY, ())):
        for whole in name_parts(value):
            found[NAME_CATEGORY].update(_glued_names(whole))
    for strings in found.values():  # as the text is searched again taken apart (see PixelMatcher)
        strings.update({_LETTER_DIGIT.sub(" ", v) for v in strings if _LETTER_DIGIT.search(v)})
    return found


def _look_alike(text: str) -> str:
    """``text`` folded, with each letter OCR confuses with a digit read as that digit."""
    return fold(text).translate(_LOOK_ALIKE)


@dataclass(frozen=True)
class PixelMatcher:
    """An original's values as written, and read as OCR may misread them."""

    plain: Matcher
    alike: Matcher

    @classmethod
    def of(cls, values: Mapping[str, Iterable[str]], *, cache: dict[tuple[str, str], Any] | None = None,
           alike_cache: dict[tuple[str, str], Any] | None = None) -> PixelMatcher:
        """The matcher of an original's ``values`` (category → strings), with the forms of
        :func:`pixel_values`; caches as :meth:`Matcher.of`."""
        written = pixel_values(values)
        alike = {category: {_look_alike(v) for v in strings} for category, strings in written.items()}
        return cls(Matcher.of(written, cache=cache), Matcher.of(alike, cache=alike_cache))

    def categories(self, text: str) -> set[str]:
        """The categories of the values found in one box's recognized text."""
        texts = {text, _LETTER_DIGIT.sub(" ", text)}  # OCR drops the space between a word and a number
        plain = Scanned("pixels", tuple(tokenize(fold(t)) for t in texts), frozenset())
        alike = Scanned("pixels", tuple(tokenize(_look_alike(t)) for t in texts), frozenset())
        return self.plain.categories(plain) | self.alike.categories(alike)


def _where(box: Any) -> str:
    return f"frame {box.frame} box x {box.x} y {box.y} w {box.width} h {box.height}"


def _key(ds: Dataset, engine: str) -> str:
    """A digest of what OCR sees: the pixel data, its description (group 0028) and the
    transfer syntax."""
    digest = hashlib.sha256(engine.encode())
    meta = getattr(ds, "file_meta", None)
    digest.update(str(getattr(meta, "TransferSyntaxUID", "")).encode())
    for element in ds.group_dataset(0x0028):
        digest.update(f"{int(element.tag)}={element.value!r};".encode())
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        raw = ds.get(keyword)
        if isinstance(raw, bytes):
            digest.update(keyword.encode() + hashlib.sha256(raw).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class PixelImage:
    """What the selection needs of one released output (see :func:`image_of`)."""

    header: ImageInfo
    frames: int


def image_of(ds: Dataset) -> PixelImage | None:
    """The selection's view of one output read in full; None when it is not an image the
    check reads (no pixel data, or pixels that are data)."""
    header = header_of(0, ds)
    return PixelImage(header, _frame_count(ds)) if header is not None else None


@dataclass
class _Task:
    label: str
    output: bytes | Path
    study: str
    instance: str
    values: Mapping[str, set[str]] | None  # the original's values (None: no original)


@dataclass
class PixelCheck:
    """The pixel check of one audit: told of every output in the audit's walk (:meth:`note`),
    then :meth:`run` once."""

    mode: PixelMode = "sample"
    engine: str = ""
    findings: list[Finding] = field(default_factory=list)
    _headers: list[ImageInfo] = field(default_factory=list)
    _tasks: dict[int, _Task] = field(default_factory=dict)
    _frames: dict[int, int] = field(default_factory=dict)
    _matchers: dict[int, PixelMatcher] = field(default_factory=dict)
    _needles: dict[tuple[str, str], Any] = field(default_factory=dict)
    _alike: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = self.engine or default_engine()

    def note(self, index: int, ds: Dataset, *, label: str, output: bytes | Path, study: str, instance: str,
             values: Mapping[str, set[str]] | None) -> bool:
        """Record one released output (read in full by the audit) for the selection; whether it
        is an image this check may read (its check is finished only in :meth:`run`)."""
        return self.add(index, image_of(ds), label=label, output=output, study=study, instance=instance,
                        values=values)

    def add(self, index: int, image: PixelImage | None, *, label: str, output: bytes | Path, study: str,
            instance: str, values: Mapping[str, set[str]] | None) -> bool:
        """:meth:`note` of an output already described by :func:`image_of` (where it was read,
        possibly another process)."""
        if image is not None:
            self._headers.append(replace(image.header, key=str(index)))
            self._frames[index] = image.frames
            self._tasks[index] = _Task(label, output, study, instance, values)
        return image is not None

    def run(self, progress: Callable[[int], None] | None = None) -> list[Finding]:
        """Read the selected images and return the check's findings; ``progress(n)`` is told
        as images are finished (read, or left unread)."""
        selection = select_images(self._headers, every=self.mode == "all")
        total = len(self._headers)
        done = progress or (lambda count: None)
        if not selection.first:
            done(total)
            return [Finding("pixels", "all categories", "pass",
                            detail=f"no released instance with pixel data among {len(self._tasks)} audited")]
        find_text, det = self._engine(len(selection.first) + selection.sampled)
        if find_text is None:
            done(total)
            return self.findings
        series_of = {int(h.key): h.series for h in self._headers}
        queue, read = list(selection.first), 0
        while queue:
            index = queue.pop(0)
            found_text = self._read(index, find_text, det)
            read += 1
            done(1)
            if found_text:  # text in a sampled series: every image of it is read
                queue += selection.held_back.pop(series_of[index], [])
        done(sum(len(rest) for rest in selection.held_back.values()))  # sampled series without text
        if not any(f.verdict in ("fail", "incomplete") for f in self.findings):
            sampled = f", {total - read} of {total} not read (sampled series without text)" if total > read else ""
            self.findings.append(Finding("pixels", "all categories", "pass", detail=(
                f"no identifying value of the originals read in the pixels of {read} instance(s) "
                f"(OCR {self.engine}{sampled})")))
        return self.findings

    def _engine(self, selected: int) -> tuple[Any, Any]:
        """``find_text`` and the detector, or (None, None) with an incomplete finding."""
        try:
            pixels: Any = importlib.import_module("anonlib.pixels")  # the OCR stage (not the engine)
            return pixels.find_text, pixels.detector(self.engine)
        except Exception as exc:  # noqa: BLE001 - ImportError, PixelError: the check cannot run
            why = str(exc) if getattr(exc, "__module__", "").startswith("anonlib") else type(exc).__name__
            self.findings.append(Finding("pixels", "engine", "incomplete", detail=(
                f"OCR engine {self.engine} cannot run ({why}): the pixels of {selected} selected "
                "instance(s) were not read")))
            return None, None

    def _ocr(self, ds: Dataset, find_text: Any, det: Any, frames: Sequence[int] | None) -> list[Any]:
        key = _key(ds, self.engine) + f"/{','.join(map(str, frames)) if frames is not None else 'all'}"
        boxes = _CACHE.get(key)
        if boxes is None:
            boxes = list(find_text(ds, det, frames=frames, recognize=True))
            _CACHE[key] = boxes
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return boxes

    def _read(self, index: int, find_text: Any, det: Any) -> bool:
        """Read one image; whether text was found in it (or it could not be read)."""
        task = self._tasks[index]
        try:
            source: Any = task.output if isinstance(task.output, Path) else io.BytesIO(task.output)
            ds = pydicom.dcmread(source, force=True)
            count = self._frames[index]
            if self.mode == "all" or count <= 3:
                boxes = self._ocr(ds, find_text, det, None)
            else:  # first, middle and last frame; every frame once text is found in one
                sampled = sample_frames(count)
                boxes = self._ocr(ds, find_text, det, sampled)
                rows = int(ds.get("Rows") or 0)
                if any(_is_text(box.text.strip(), box.height, rows) for box in boxes):
                    boxes += self._ocr(ds, find_text, det, [f for f in range(count) if f not in sampled])
        except Exception as exc:  # noqa: BLE001 - decoding or OCR failed: never a pass
            why = str(exc) if getattr(exc, "__module__", "").startswith("anonlib") else (
                f"{type(exc).__name__} while decoding or reading the pixels")
            self.findings.append(Finding("pixels", "unreadable", "incomplete", task.study, task.instance,
                                         "(7FE0,0010)", f"{task.label}: pixels not checked: {why}"))
            return True
        return self._judge(task, boxes, int(ds.get("Rows") or 0))

    def _matcher(self, values: Mapping[str, set[str]]) -> PixelMatcher:
        found = self._matchers.get(id(values))  # values live as long as this check (in its tasks)
        if found is None:
            found = self._matchers[id(values)] = PixelMatcher.of(values, cache=self._needles,
                                                                 alike_cache=self._alike)
        return found

    def _judge(self, task: _Task, boxes: Sequence[Any], rows: int) -> bool:
        """Findings for the boxes read in one image; whether any of them is text."""
        matcher = self._matcher(task.values) if task.values is not None else None
        other: list[Any] = []
        matched = False
        for box in boxes:
            text = box.text.strip()
            categories = sorted(matcher.categories(text)) if matcher and text else []
            matched = matched or bool(categories)
            for category in categories:
                self.findings.append(Finding("pixels", category, "fail", task.study, task.instance, _where(box), (
                    f"{task.label}: text matching an identifying {category} value of the original is burned "
                    "into the pixels (Safe Harbor; mask it)")))
            if not categories and _is_text(text, box.height, rows):
                other.append(box)
        if other:
            listed = "; ".join(_where(box) for box in other[:MAX_LISTED_BOXES])
            more = f" and {len(other) - MAX_LISTED_BOXES} more" if len(other) > MAX_LISTED_BOXES else ""
            compared = "not matching an identifying value of the original" if task.values is not None \
                else "not compared (no original)"
            self.findings.append(Finding("pixels", "text", "warn", task.study, task.instance, "(7FE0,0010)",
                                         f"{task.label}: {len(other)} text box(es) {compared}: {listed}{more}"))
        return matched or bool(other)


def _frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1  # read as one frame: decoding says what is wrong with it


def _is_text(text: str, height: int, rows: int) -> bool:
    """Whether a box reads as text: two letters or digits or more, or one no taller than an
    eighth of the image (a marker such as ``L``; a large single character is anatomy)."""
    count = len(_ALNUM.findall(text))
    return count >= 2 or (count == 1 and (rows <= 0 or height * 8 <= rows))
