"""The pre-pass of a folder run: every input's header read once, indexed, duplicates resolved.

Real archives hold one instance more than once: a re-sent copy, a re-encoded or a corrected
version. De-identified, all of them get the same new SOP Instance UID — the same output file, or
one UID on two output instances when the copies name different studies — so processing them all
would silently overwrite one with another. Before any instance is de-identified,
:func:`index_inputs` reads a few header elements of every selected file (never the pixel data)
into an :class:`InputIndex`, and :meth:`InputIndex.selection` decides, for every SOP Instance UID
that more than one file carries, which file is processed — the first in sorted path order,
whatever the number of workers — and what each other one is:

* ``duplicate``: the same bytes (SHA-256 of the file); skipping it loses nothing;
* ``conflict``: different bytes — a re-encoded copy too; the operator must decide.

A file whose header cannot be read is selected as it is: the main pass rejects it with its
reason. So is a file of a group that the main pass would reject (a truncated copy of another,
say): only readable files compete, so a broken first copy neither hides the good one behind it
nor turns into a "conflict" that hides why it is broken. The index holds identifying values (UIDs, patient IDs) in memory only and never logs
them; a :class:`Skipped` names files by the operator's own relative paths only. The index is
also where later per-study work of the pre-pass belongs: :meth:`InputIndex.by_study`, and the
``collect`` function of :func:`index_inputs`, whose result for each header (read whole with
``tags=None``) is kept with its file. With a process pool the headers are read in parallel.
"""

from __future__ import annotations

import hashlib
import mmap
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from anonlib.dicomio import DEFAULT_LIMITS, check_instance, read_instance
from anonlib.dicomio.header import read_fast
from anonlib.dicomio.limits import Limits
from anonlib.dicomvalues import text_of
from anonlib.errors import InputError

__all__ = ["HEADER_TAGS", "Collect", "InputFile", "InputIndex", "Skipped", "index_inputs", "read_header",
           "read_headers"]

#: SOP Instance UID, Study Instance UID, Patient ID, Issuer of Patient ID.
HEADER_TAGS: tuple[int, ...] = (0x00080018, 0x0020000D, 0x00100020, 0x00100021)
_UID_CHARS = frozenset("0123456789.")
_PIXELS = 0x7FE00008  # the first pixel data tag (Float Pixel Data)

#: What the pre-pass may gather from each readable header besides its UIDs (kept in
#: :attr:`InputFile.collected`), e.g. the identifying values a study's instances carry.
Collect = Callable[[Dataset], object]


@dataclass(frozen=True)
class InputFile:
    """One selected input: its path, its label (the path relative to the source folder, the
    operator's own name) and the header values the run is planned with — "" when absent, and
    every value "" when the header could not be read. The values stay out of ``repr``."""

    path: Path
    label: str
    sop_uid: str = field(default="", repr=False)
    study_uid: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    issuer: str = field(default="", repr=False)
    collected: object = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Skipped:
    """An input that is not processed because an earlier file carries its SOP Instance UID."""

    label: str
    kept: str  # the label of the file processed in its place
    status: str  # duplicate | conflict
    reason: str


@dataclass(frozen=True)
class InputIndex:
    """The headers of a run's inputs, in sorted path order."""

    files: tuple[InputFile, ...]
    limits: Limits = DEFAULT_LIMITS  # what a file must keep to be readable (the run's plan)

    def by_sop(self) -> dict[str, list[InputFile]]:
        """SOP Instance UID → the files that carry it (in order); unreadable files left out."""
        groups: dict[str, list[InputFile]] = {}
        for item in self.files:
            if item.sop_uid:
                groups.setdefault(item.sop_uid, []).append(item)
        return groups

    def by_study(self) -> dict[str, list[InputFile]]:
        """Study Instance UID → its files (in order); files without one are left out."""
        groups: dict[str, list[InputFile]] = {}
        for item in self.files:
            if item.study_uid:
                groups.setdefault(item.study_uid, []).append(item)
        return groups

    def selection(self) -> tuple[list[InputFile], list[Skipped]]:
        """The files to process (in order) and the ones skipped as duplicates or conflicts of
        an earlier file with the same SOP Instance UID. Only the files that share a UID are read
        whole, to check that they are readable and to compare their bytes."""
        groups = {uid: [f for f in files if _readable(f, self.limits)]
                  for uid, files in self.by_sop().items() if len(files) > 1}
        digests: dict[Path, str | None] = {}

        def digest(path: Path) -> str | None:
            if path not in digests:
                digests[path] = _sha256(path)
            return digests[path]

        chosen: list[InputFile] = []
        skipped: list[Skipped] = []
        for item in self.files:
            group = groups.get(item.sop_uid, [])
            if item not in group or group[0] is item:
                chosen.append(item)
                continue
            first = group[0]
            if digest(first.path) is not None and digest(first.path) == digest(item.path):
                skipped.append(Skipped(item.label, first.label, "duplicate",
                                       f"identical copy of {first.label}"))
            else:
                skipped.append(Skipped(item.label, first.label, "conflict",
                                       f"same SOP Instance UID as {first.label}, different content"))
        return chosen, skipped


def _readable(item: InputFile, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether the main pass can read the file (else it is processed alone, to be rejected)."""
    try:
        read_instance(item.path, label=item.label, limits=limits)
    except InputError:
        return False
    return True


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None  # never equal to anything: reported as a conflict, not silently skipped
    return digest.hexdigest()


def _uid(ds: Dataset, keyword: str) -> str:
    text = text_of(ds, keyword)
    return text if 0 < len(text) <= 64 and set(text) <= _UID_CHARS else ""


def read_header(path: Path, label: str, *, tags: Sequence[int] | None = HEADER_TAGS,
                collect: Collect | None = None, limits: Limits = DEFAULT_LIMITS,
                private: bool = True) -> InputFile:
    """The :class:`InputFile` of one file: ``tags`` of its header (every header element with
    ``tags=None``), never the pixel data — the file is read only up to the last tag wanted —
    and what ``collect(header)`` returns. Never raises for a bad file: its values stay "" (a
    file beyond ``limits`` is not parsed at all; the main pass rejects it with the reason).
    ``private=False``: ``collect`` needs no top-level private element but person names and
    sequences, which may then be all the header holds of them (a faster read, see
    :func:`anonlib.dicomio.header.read_fast`)."""
    last = max(tags) if tags else _PIXELS - 1

    def stop(tag: BaseTag, _vr: str | None, _length: int) -> bool:
        return int(tag) > last

    try:
        with warnings.catch_warnings(), open(path, "rb") as handle:
            warnings.simplefilter("ignore")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                ds = _read_fast(buf, last, tags, limits, private)
                if ds is None:
                    check_instance(buf, label, limits)
            if ds is None:
                ds = read_partial(handle, stop_when=stop, force=True,
                                  specific_tags=list(tags) if tags else None)
            sop_uid = _uid(ds, "SOPInstanceUID")
            return InputFile(path, label, sop_uid, _uid(ds, "StudyInstanceUID"),
                             text_of(ds, "PatientID"), text_of(ds, "IssuerOfPatientID"),
                             collect(ds) if collect is not None and sop_uid else None)
    except Exception:  # noqa: BLE001 - not readable here: the main pass says why
        return InputFile(path, label)


def _read_fast(buf: mmap.mmap, last: int, tags: Sequence[int] | None, limits: Limits,
               private: bool = True) -> Dataset | None:
    """The header as ``read_partial`` reads it below — up to ``last``, only ``tags`` (and the
    character set) when given — from one pass over the file (:mod:`anonlib.dicomio.header`,
    which also checks the limits); None when that reader does not take the file."""
    fast = read_fast(buf, limits, private=private)
    if fast is None:
        return None
    ds = fast.dataset
    elements = ds._dict  # noqa: SLF001 - pydicom 3.0's storage; in tag order (read_fast's walk)
    if tags:
        wanted = {*tags, 0x00080005}
        for tag in [t for t in elements if int(t) not in wanted or int(t) > last]:
            del elements[tag]
    else:
        for tag in [t for t in reversed(list(elements)) if int(t) > last]:
            del elements[tag]
    return ds


def read_headers(batch: Sequence[tuple[Path, str]], tags: Sequence[int] | None = HEADER_TAGS,
                 collect: Collect | None = None, limits: Limits = DEFAULT_LIMITS,
                 private: bool = True) -> list[InputFile]:
    """:func:`read_header` of each (path, label) of ``batch`` (one task of a process pool)."""
    return [read_header(path, label, tags=tags, collect=collect, limits=limits, private=private)
            for path, label in batch]


def index_inputs(paths: Iterable[Path], root: Path, *, tags: Sequence[int] | None = HEADER_TAGS,
                 collect: Collect | None = None, pool: Executor | None = None,
                 limits: Limits = DEFAULT_LIMITS, private: bool = True) -> InputIndex:
    """Read the header of every file in ``paths`` (files under ``root``, each once) in sorted
    order, in this process or, given a ``pool``, in its processes (``collect`` must then be a
    module-level function, and what it returns picklable); ``private``: see :func:`read_header`."""
    items = [(path, str(path.relative_to(root))) for path in sorted(set(paths))]
    if pool is None:
        return InputIndex(tuple(read_headers(items, tags, collect, limits, private)), limits)
    size = max(16, min(512, len(items) // 32))
    batches = [items[start:start + size] for start in range(0, len(items), size)]
    return InputIndex(tuple(item for done in pool.map(partial(read_headers, tags=tags, collect=collect,
                                                              limits=limits, private=private),
                                                      batches) for item in done), limits)
