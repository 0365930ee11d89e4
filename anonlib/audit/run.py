"""Run every audit check over a set of de-identified instances (and their originals).

Two passes, each file read once. First the originals, up to their pixel data: their identifying
values and UIDs (so that every output can be searched for every original UID) and what the
consistency checks need. Then each instance: the Safe Harbor scan, one walk of the output's
places where text can be (:mod:`anonlib.audit.haystack`), searched for its original's values
and for every original UID of the set (set lookups, :mod:`anonlib.audit.matching`), and
dciodvfy, which runs in parallel (one process per core) while the next instances are read.
Then the pixel check (:mod:`anonlib.audit.pixel_check`): the released images selected as the
engine samples them (or all), read with OCR while dciodvfy finishes, their text compared with
the originals' identifying values. Then the set-wide consistency checks and the search of file
names, manifests and reports.
Needles are built once per original and once for the set, never per file, so the time per
instance does not grow with the size of the set.

Findings identify studies and instances by a digest of their UIDs, because the audit cannot
assume an output's UIDs were remapped — for a naive tool's output they are the originals.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from anonlib.audit import coverage
from anonlib.audit.conformance import ConformanceRunner
from anonlib.audit.consistency import Pair, Side, check_consistency, check_original_uids, side_of
from anonlib.audit.haystack import places
from anonlib.audit.leaks import find_leaks, find_leaks_in_names
from anonlib.audit.matching import DATE_CATEGORY, Matcher
from anonlib.audit.model import AuditInput, AuditResult, Check, Finding
from anonlib.audit.originals import OriginalValues, original_values, patient_key_of
from anonlib.audit.pixel_check import PIXEL_MODES, PixelCheck, PixelMode
from anonlib.errors import ConfigError

__all__ = ["AuditOptions", "Progress", "audit", "digest"]

#: ``progress(done, total)``: called as instances are finished (every check of theirs done).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class AuditOptions:
    """Which checks run. ``pixels``: ``sample`` reads released images with OCR as the engine
    samples them, ``all`` every image, ``off`` none (the check is skipped); ``pixel_engine``:
    the OCR engine ("" for the project's default)."""

    safe_harbor: bool = True
    leaks: bool = True
    consistency: bool = True
    conformance: bool = True
    pixels: PixelMode = "sample"
    pixel_engine: str = ""

    def __post_init__(self) -> None:
        if self.pixels not in PIXEL_MODES:
            raise ConfigError(f"audit pixels must be one of {', '.join(PIXEL_MODES)}, not {self.pixels!r}")


def digest(uid: str) -> str:
    """A short, stable, non-reversible name for a UID in reports."""
    return "uid:" + hashlib.sha256(uid.encode()).hexdigest()[:12] if uid else ""


def _parse(data: bytes | Path, header_only: bool = False) -> Dataset | None:
    source = data if isinstance(data, Path) else io.BytesIO(data)
    try:
        return pydicom.dcmread(source, force=True, stop_before_pixels=header_only)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError):
        return None


@dataclass
class _Original:
    """What the audit needs of one original, read once (up to its pixel data)."""

    side: Side
    key: tuple[str, str]
    values: OriginalValues


def _read_original(data: bytes | Path) -> _Original | None:
    ds = _parse(data, header_only=True)
    if ds is None or "SOPInstanceUID" not in ds:
        return None  # what was given as its original is not a DICOM instance
    return _Original(side_of(ds), patient_key_of(ds), original_values(ds))


class _Progress:
    """Reports instances finished: read and checked, and validated when dciodvfy runs."""

    def __init__(self, callback: Progress | None, total: int, runner: ConformanceRunner | None) -> None:
        self.callback, self.total, self.runner = callback, total, runner
        self.checked = self.reported = 0

    def checked_one(self, count: int = 1) -> None:
        """``count`` more instances have passed every check of this process (the pixel check
        finishes those it may read later)."""
        self.checked += count
        self.finished(self.runner.done() if self.runner is not None else self.checked)

    def finished(self, count: int) -> None:
        done = min(count, self.checked)
        if self.callback is not None and done > self.reported:
            self.reported = done
            self.callback(done, self.total)


def audit(inputs: Sequence[AuditInput], *, map_uid: Callable[[str], str] | None = None,
          names: Mapping[str, str] | None = None, options: AuditOptions = AuditOptions(),
          expect_originals: bool = False, progress: Progress | None = None) -> AuditResult:
    """Audit ``inputs``; ``map_uid`` (the project's UID mapping, when the lookup store is known)
    lets the reference check verify where each reference points; ``names`` are file/folder names
    and text files of an output tree, keyed by a PHI-free description of each place.
    ``expect_originals``: originals were given, so an instance without one (or with one that
    cannot be read) makes the audit INCOMPLETE. ``progress(done, total)`` is told as instances
    are finished."""
    from anonlib.audit.safe_harbor import detect_date_mode, regulatory_status, scan_safe_harbor

    enabled: dict[Check, bool] = {"safe_harbor": options.safe_harbor, "leak": options.leaks,
                                  "consistency": options.consistency, "conformance": options.conformance,
                                  "pixels": options.pixels != "off"}
    result = AuditResult(instances=len(inputs), checks_run=[name for name, on in enabled.items() if on])
    result.findings += coverage.skipped_checks(enabled, originals_given=any(i.original is not None for i in inputs),
                                               expect_originals=expect_originals)
    conformance = options.conformance and coverage.dciodvfy_available()
    if options.conformance and not conformance:
        result.findings.append(coverage.conformance_unavailable(len(inputs)))
    originals = [_read_original(item.original) if item.original is not None else None for item in inputs]
    every = OriginalValues()
    for known in originals:
        if known is not None:
            every.merge(known.values)
    set_uids = frozenset(every.searched_uids()) if options.consistency else frozenset()
    runner = ConformanceRunner() if conformance else None
    pixels = PixelCheck(options.pixels, options.pixel_engine) if options.pixels != "off" else None
    tracker = _Progress(progress, len(inputs), runner)
    pairs: list[Pair] = []
    modes: Counter[str] = Counter()
    needles: dict[tuple[str, str], Any] = {}  # built once per value in this audit (PHI: local only)
    try:
        for item, known in zip(inputs, originals):
            output = _parse(item.output)
            if output is None or "SOPInstanceUID" not in output:
                result.findings.append(Finding("conformance", "readable", "fail", "", digest(item.label), "",
                                               "the output is not a readable DICOM instance"))
                tracker.checked_one()
                continue
            study, instance = digest(str(output.get("StudyInstanceUID", ""))), digest(str(output.SOPInstanceUID))
            pending = pixels is not None and pixels.note(
                len(pairs), output, label=item.label, output=item.output, study=study, instance=instance,
                values=known.values.values if known is not None else None)
            modes[detect_date_mode(output)] += 1
            result.with_originals += known is not None
            if expect_originals and options.leaks and known is None:
                result.findings.append(coverage.missing_original(study, instance,
                                                                 unreadable=item.original is not None))
            if options.safe_harbor:
                result.findings += scan_safe_harbor(output, study=study, instance=instance)
            searched = list(places(output)) if set_uids or (options.leaks and known is not None) else []
            if options.leaks and known is not None:
                matcher = Matcher.of(known.values.values, known.values.uids - every.kept, cache=needles)
                result.findings += find_leaks(matcher, searched, study=study, instance=instance)
            found_uid = any(not set_uids.isdisjoint(place.dotted) for place in searched)
            pairs.append(Pair(side_of(output), known.side if known else None, known.key if known else None,
                              study, instance, original_uid=found_uid))
            if runner is not None:
                runner.submit(item.output, item.original, study=study, instance=instance)
            tracker.checked_one(0 if pending else 1)
        if pixels is not None:  # while dciodvfy finishes in its processes
            result.findings += pixels.run(tracker.checked_one)
        if runner is not None:
            for findings in runner.results(tracker.finished):
                result.findings += findings
    finally:
        if runner is not None:
            runner.close()
    result.date_mode = modes.most_common(1)[0][0] if modes else "unknown"
    result.regulatory_status = regulatory_status(result.date_mode)
    if options.consistency:
        result.findings += check_consistency(pairs, mode=result.date_mode, map_uid=map_uid)
        result.findings += check_original_uids(pairs, len(set_uids))
    if options.leaks and names:
        # Shifted dates in folder names and manifests are the outputs' own dates: in a large set
        # some always equal another patient's original date, so dates are searched there only
        # when they were not shifted.
        named = {c: v for c, v in every.values.items() if not (c == DATE_CATEGORY and result.date_mode == "shift")}
        result.findings += find_leaks_in_names(Matcher.of(named, set_uids or every.searched_uids()), names)
    if options.leaks and result.with_originals and not any(
            f.check == "leak" and f.verdict not in ("incomplete", "skipped") for f in result.findings):
        searched_in = "element values, private and binary data" + (", file names and text files" if names else "")
        result.findings.append(Finding("leak", "all categories", "pass", detail=(
            f"no identifying value of {result.with_originals} originals found ({searched_in})")))
    return result
