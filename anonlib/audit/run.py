"""Run every audit check over a set of de-identified instances (and their originals).

Two passes: the originals first, each read once (their identifying values and UIDs, so that
every output can be searched for every original UID, and their headers for the consistency
checks), then, per instance, the Safe Harbor scan, the leak check against its original, and
conformance (the scan also checks the markers); then the set-wide consistency checks and the
search of file names, manifests and reports. Findings identify studies and instances by a
digest of their UIDs, because the audit cannot assume an output's UIDs were remapped — for a
naive tool's output they are the originals.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError

from anonlib.audit import coverage
from anonlib.audit.conformance import check_conformance
from anonlib.audit.consistency import Pair, check_consistency, check_original_uids, original_uid_pattern
from anonlib.audit.leaks import Needles, find_leaks, find_leaks_in_names
from anonlib.audit.model import AuditInput, AuditResult, Check, Finding
from anonlib.audit.originals import OriginalValues, original_values, patient_key_of

__all__ = ["AuditOptions", "audit", "digest"]


@dataclass(frozen=True)
class AuditOptions:
    safe_harbor: bool = True
    leaks: bool = True
    consistency: bool = True
    conformance: bool = True


def digest(uid: str) -> str:
    """A short, stable, non-reversible name for a UID in reports."""
    return "uid:" + hashlib.sha256(uid.encode()).hexdigest()[:12] if uid else ""


def _read(data: bytes | Path) -> bytes:
    return data.read_bytes() if isinstance(data, Path) else data


def _parse(data: bytes, header_only: bool = False) -> Dataset | None:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=header_only)
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError):
        return None


_D = TypeVar("_D", bound=Dataset | None)


def _detached(ds: _D) -> _D:
    """``ds`` without its reference to the bytes it was read from (it is kept until the end of
    the audit; no element is deferred, so nothing is read from them again)."""
    if isinstance(ds, FileDataset):
        ds.buffer = None
    return ds


@dataclass
class _Original:
    """What the audit needs of one original, read once."""

    header: Dataset | None  # read up to the pixel data; None when unreadable
    values: OriginalValues | None  # its identifying values, when it could be read whole


def _read_original(data: bytes | Path) -> _Original:
    raw = _read(data)
    full = _parse(raw)
    return _Original(_detached(_parse(raw, header_only=True)), original_values(full) if full is not None else None)


def audit(inputs: Sequence[AuditInput], *, map_uid: Callable[[str], str] | None = None,
          names: Mapping[str, str] | None = None, options: AuditOptions = AuditOptions(),
          expect_originals: bool = False, progress: Callable[[int, int], None] | None = None) -> AuditResult:
    """Audit ``inputs``; ``map_uid`` (the project's UID mapping, when the lookup store is known)
    lets the reference check verify where each reference points; ``names`` are file/folder names
    and text files of an output tree, keyed by a PHI-free description of each place.
    ``expect_originals``: originals were given, so an instance without one (or with one that
    cannot be read) makes the audit INCOMPLETE. ``progress(done, total)`` after each instance."""
    from anonlib.audit.safe_harbor import detect_date_mode, regulatory_status, scan_safe_harbor

    enabled: dict[Check, bool] = {"safe_harbor": options.safe_harbor, "leak": options.leaks,
                                  "consistency": options.consistency, "conformance": options.conformance}
    result = AuditResult(instances=len(inputs), checks_run=[name for name, on in enabled.items() if on])
    result.findings += coverage.skipped_checks(enabled, originals_given=any(i.original is not None for i in inputs),
                                               expect_originals=expect_originals)
    conformance = options.conformance and coverage.dciodvfy_available()
    if options.conformance and not conformance:
        result.findings.append(coverage.conformance_unavailable(len(inputs)))
    every = OriginalValues()
    originals: list[_Original | None] = []
    for item in inputs:  # pass 1: what the originals hold
        known = _read_original(item.original) if item.original is not None else None
        if known is not None and known.values is not None:
            every.merge(known.values)
        originals.append(known)
    uid_pattern = original_uid_pattern(every.uids) if options.consistency else None
    pairs: list[Pair] = []
    modes: Counter[str] = Counter()
    for number, (item, known) in enumerate(zip(inputs, originals)):  # pass 2: each instance
        if progress is not None and number:
            progress(number, len(inputs))
        raw = _read(item.output)
        output = _parse(raw)
        if output is None or "SOPInstanceUID" not in output:
            result.findings.append(Finding("conformance", "readable", "fail", "", digest(item.label), "",
                                           "the output is not a readable DICOM instance"))
            continue
        study, instance = digest(str(output.get("StudyInstanceUID", ""))), digest(str(output.SOPInstanceUID))
        modes[detect_date_mode(output)] += 1
        original = known.header if known is not None else None
        if original is not None and "SOPInstanceUID" not in original:
            original = None  # what was given as its original is not a DICOM instance
        result.with_originals += original is not None
        if expect_originals and options.leaks and original is None:
            result.findings.append(coverage.missing_original(study, instance, unreadable=item.original is not None))
        if options.safe_harbor:
            result.findings += scan_safe_harbor(output, study=study, instance=instance)
        if options.leaks and known is not None and original is not None:
            values = known.values if known.values is not None else original_values(original)
            result.findings += find_leaks(Needles(values), output, raw, study=study, instance=instance)
        if conformance:
            original_raw = _read(item.original) if item.original is not None else None
            result.findings += check_conformance(raw, original_raw, study=study, instance=instance)
        found_uid = uid_pattern is not None and uid_pattern.search(raw) is not None
        pairs.append(Pair(_detached(_parse(raw, header_only=True) or output), original,
                          patient_key_of(original) if original is not None else None, study, instance,
                          original_uid=found_uid))
    if progress is not None and inputs:
        progress(len(inputs), len(inputs))
    result.date_mode = modes.most_common(1)[0][0] if modes else "unknown"
    result.regulatory_status = regulatory_status(result.date_mode)
    if options.consistency:
        result.findings += check_consistency(pairs, mode=result.date_mode, map_uid=map_uid)
        result.findings += check_original_uids(pairs, every.uids)
    if options.leaks and names:
        result.findings += find_leaks_in_names(Needles(every), names)
    if options.leaks and result.with_originals and not any(
            f.check == "leak" and f.verdict not in ("incomplete", "skipped") for f in result.findings):
        searched = "element values, raw bytes" + (", file names and text files" if names else "")
        result.findings.append(Finding("leak", "all categories", "pass", detail=(
            f"no identifying value of {result.with_originals} originals found ({searched})")))
    return result
