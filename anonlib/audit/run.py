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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from anonlib.audit import coverage
from anonlib.audit.conformance import ConformanceRunner
from anonlib.audit.consistency import Pair, Side, check_consistency, check_original_uids, side_of
from anonlib.audit.haystack import places
from anonlib.audit.leaks import find_leaks, find_leaks_in_names
from anonlib.audit.markers import file_profile_marker, profile_marker, profile_name
from anonlib.audit.matching import DATE_CATEGORY, Matcher
from anonlib.audit.model import AuditInput, AuditResult, Check, Finding
from anonlib.audit.originals import OriginalValues, original_values, patient_key_of
from anonlib.audit.pixel_check import PIXEL_MODES, PixelCheck, PixelImage, PixelMode, image_of
from anonlib.audit.pool import ordered_map, workers_for
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


#: Sharing strings and sets alike (see :func:`_compact`, :meth:`OriginalValues.shared`) stops
#: when this many are kept: sharing is only a saving.
_SHARED_MAX = 1 << 16


def _compact(findings: list[Finding], strings: dict[str, str]) -> list[Finding]:
    """``findings`` holding the strings many instances' findings hold alike (tag paths, the
    words of findings) once, from ``strings`` (this audit's): the audit's memory stays flat in
    the size of the set."""
    if len(strings) >= _SHARED_MAX:
        return findings
    share = strings.setdefault
    return [Finding(f.check, share(f.category, f.category), f.verdict, f.study, f.instance,
                    share(f.path, f.path), share(f.detail, f.detail)) for f in findings]


def _read_original(data: bytes | Path, sets: dict[frozenset[str], set[str]]) -> _Original | None:
    """The original's :class:`_Original`; its sets of values shared through ``sets`` (this
    audit's, PHI: local only) with the other instances of the set."""
    ds = _parse(data, header_only=True)
    if ds is None or "SOPInstanceUID" not in ds:
        return None  # what was given as its original is not a DICOM instance
    values = original_values(ds)
    return _Original(side_of(ds), patient_key_of(ds), values.shared(sets) if len(sets) < _SHARED_MAX else values)


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


@dataclass(frozen=True)
class _Shared:
    """What every instance's checks need of the whole set (read only)."""

    options: AuditOptions
    expect_originals: bool
    set_uids: frozenset[str]  # the originals' UIDs searched in every output
    kept: frozenset[str]  # UIDs the shared policy keeps: never searched


@dataclass
class _Checked:
    """One output's checks, done where it was read (this process or a worker): its findings
    in the order the checks ran, and what the set-wide checks and the pixel check need."""

    findings: list[Finding]
    side: Side | None = None  # None: the output is not a readable DICOM instance
    study: str = ""
    instance: str = ""
    mode: str = ""
    found_uid: bool = False
    image: PixelImage | None = None
    marker: str = ""  # the profile named in DeidentificationMethod
    patient: str = ""  # the output's PatientID and StudyDate (de-identified values, see AuditResult.studies)
    date: str = ""


def _check_output(item: AuditInput, known: _Original | None, shared: _Shared,
                  needles: dict[tuple[str, str], Any]) -> _Checked:
    """Read one output and run its own checks (Safe Harbor, leaks, the search of the set's
    original UIDs); ``needles``: the leak needles built so far (PHI: local only)."""
    from anonlib.audit.safe_harbor import detect_date_mode, scan_safe_harbor

    options = shared.options
    output = _parse(item.output)
    if output is None or "SOPInstanceUID" not in output:
        return _Checked([Finding("conformance", "readable", "fail", "", digest(item.label), "",
                                 "the output is not a readable DICOM instance")])
    study, instance = digest(str(output.get("StudyInstanceUID", ""))), digest(str(output.SOPInstanceUID))
    checked = _Checked([], study=study, instance=instance, mode=detect_date_mode(output),
                       image=image_of(output) if options.pixels != "off" else None,
                       marker=profile_marker(output), patient=str(output.get("PatientID", "") or ""),
                       date=str(output.get("StudyDate", "") or ""))
    if shared.expect_originals and options.leaks and known is None:
        checked.findings.append(coverage.missing_original(study, instance, unreadable=item.original is not None))
    if options.safe_harbor:
        checked.findings += scan_safe_harbor(output, study=study, instance=instance)
    searched = list(places(output)) if shared.set_uids or (options.leaks and known is not None) else []
    if options.leaks and known is not None:
        matcher = Matcher.of(known.values.values, known.values.uids - shared.kept, cache=needles)
        checked.findings += find_leaks(matcher, searched, study=study, instance=instance)
    checked.found_uid = any(not shared.set_uids.isdisjoint(place.dotted) for place in searched)
    checked.side = side_of(output)
    return checked


def _worker_failed(check: Check, indexes: range, error: BaseException) -> Finding:
    """A worker process raised or died on ``indexes``: ``check`` did not run for them."""
    return Finding(check, "all categories", "incomplete", detail=(
        f"a worker process of the audit stopped ({type(error).__name__}): {len(indexes)} instance(s) "
        "were not checked"))


def _read_originals(inputs: Sequence[AuditInput], workers: int) -> tuple[list[_Original | None], list[Finding]]:
    """Every input's original read (None: none given, or not a DICOM instance), in
    ``workers`` processes; the incomplete findings of ranges whose worker failed."""
    sets: dict[frozenset[str], set[str]] = {}  # PHI: local only

    def read(index: int) -> _Original | None:
        original = inputs[index].original
        return _read_original(original, sets) if original is not None else None

    if workers <= 1:
        return [read(index) for index in range(len(inputs))], []
    originals: list[_Original | None] = []
    failed: list[Finding] = []
    for chunk in ordered_map(read, len(inputs), workers):
        if chunk.results is None:
            originals += [None] * len(chunk.indexes)
            failed.append(_worker_failed("leak", chunk.indexes, cast(BaseException, chunk.error)))
        else:  # shared again here: each range was handed back with its own copies
            originals += [_Original(known.side, known.key, known.values.shared(sets))
                          if known is not None and len(sets) < _SHARED_MAX else known for known in chunk.results]
    return originals, failed


def _checked_outputs(inputs: Sequence[AuditInput], originals: Sequence[_Original | None], shared: _Shared,
                     workers: int) -> Iterator[tuple[range, list[_Checked] | None, BaseException | None]]:
    """Each output's own checks (:func:`_check_output`), range by range in input order."""
    needles: dict[tuple[str, str], Any] = {}  # built once per value in this process (PHI: local only)

    def check(index: int) -> _Checked:
        return _check_output(inputs[index], originals[index], shared, needles)

    if workers <= 1:
        for index in range(len(inputs)):
            yield range(index, index + 1), [check(index)], None
        return
    for chunk in ordered_map(check, len(inputs), workers):
        yield chunk.indexes, chunk.results, chunk.error


def audit(inputs: Sequence[AuditInput], *, map_uid: Callable[[str], str] | None = None,
          names: Mapping[str, str] | None = None, options: AuditOptions = AuditOptions(),
          expect_originals: bool = False, progress: Progress | None = None,
          workers: int | None = None) -> AuditResult:
    """Audit ``inputs``; ``map_uid`` (the project's UID mapping, when the lookup store is known)
    lets the reference check verify where each reference points; ``names`` are file/folder names
    and text files of an output tree, keyed by a PHI-free description of each place.
    ``expect_originals``: originals were given, so an instance without one (or with one that
    cannot be read) makes the audit INCOMPLETE. ``progress(done, total)`` is told as instances
    are finished. ``workers``: processes reading the instances (1: this one; None: one per core
    when the set is large enough to gain from it, see :func:`~anonlib.audit.pool.workers_for`);
    a worker that raises or dies makes the audit INCOMPLETE."""
    from anonlib.audit.safe_harbor import regulatory_status

    enabled: dict[Check, bool] = {"safe_harbor": options.safe_harbor, "leak": options.leaks,
                                  "consistency": options.consistency, "conformance": options.conformance,
                                  "pixels": options.pixels != "off"}
    result = AuditResult(instances=len(inputs), checks_run=[name for name, on in enabled.items() if on])
    result.findings += coverage.skipped_checks(enabled, originals_given=any(i.original is not None for i in inputs),
                                               expect_originals=expect_originals)
    conformance = options.conformance and coverage.dciodvfy_available()
    if options.conformance and not conformance:
        result.findings.append(coverage.conformance_unavailable(len(inputs)))
    processes = workers_for(len(inputs), workers)
    originals, failed = _read_originals(inputs, processes)
    every = OriginalValues()
    for known in originals:
        if known is not None:
            every.merge(known.values)
    set_uids = frozenset(every.searched_uids()) if options.consistency else frozenset()
    shared = _Shared(options, expect_originals, set_uids, frozenset(every.kept))
    runner = ConformanceRunner() if conformance else None  # its threads start with its first instance
    pixels = PixelCheck(options.pixels, options.pixel_engine) if options.pixels != "off" else None
    tracker = _Progress(progress, len(inputs), runner)
    pairs: list[Pair] = []
    modes: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    strings: dict[str, str] = {}
    try:
        for indexes, checked_range, error in _checked_outputs(inputs, originals, shared, processes):
            if checked_range is None:
                for check, on in enabled.items():
                    if on:
                        failed.append(_worker_failed(check, indexes, cast(BaseException, error)))
                markers.update(file_profile_marker(inputs[index].output) for index in indexes)
                tracker.checked_one(len(indexes))
                continue
            for index, checked in zip(indexes, checked_range):
                item, known = inputs[index], originals[index]
                result.findings += _compact(checked.findings, strings)
                if checked.side is None:  # not a readable DICOM instance
                    markers[file_profile_marker(item.output)] += 1
                    tracker.checked_one()
                    continue
                study, instance = checked.study, checked.instance
                markers[checked.marker] += 1
                if study not in result.studies:
                    result.studies[study] = (checked.patient, checked.date)
                pending = pixels is not None and pixels.add(
                    len(pairs), checked.image, label=item.label, output=item.output, study=study, instance=instance,
                    values=known.values.values if known is not None else None)
                modes[checked.mode] += 1
                result.with_originals += known is not None
                pairs.append(Pair(checked.side, known.side if known else None, known.key if known else None,
                                  study, instance, original_uid=checked.found_uid))
                if runner is not None:
                    runner.submit(item.output, item.original, study=study, instance=instance)
                tracker.checked_one(0 if pending else 1)
        result.findings += failed
        if pixels is not None:  # while dciodvfy finishes in its processes
            result.findings += pixels.run(tracker.checked_one)
        if runner is not None:
            for findings in runner.results(tracker.finished):
                result.findings += findings
    finally:
        if runner is not None:
            runner.close()
    result.profile = profile_name(markers)
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
