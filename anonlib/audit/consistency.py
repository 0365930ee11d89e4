"""Consistency across the audited set: one pseudonym per original patient, one date shift per
patient (so intervals are preserved), every reference resolving, no original UID anywhere."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from anonlib.audit.model import Finding
from anonlib.audit.references import identities, references
from anonlib.dicomvalues import parse_da, text_of

__all__ = ["Pair", "check_consistency", "check_original_uids", "original_uid_pattern"]

_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


@dataclass
class Pair:
    """One audited instance: its output, and its original when known."""

    output: Dataset
    original: Dataset | None
    patient: tuple[str, str] | None  # the original's (PatientID, issuer)
    study: str  # de-identified Study Instance UID
    instance: str  # de-identified SOP Instance UID
    original_uid: bool = False  # an original UID is in the output's bytes (see original_uid_pattern)


def _date(ds: Dataset, keyword: str) -> dt.date | None:
    return parse_da(str(ds.get(keyword, "") or ""))


def _pseudonyms(pairs: list[Pair]) -> list[Finding]:
    by_patient: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_pseudonym: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for pair in pairs:
        if pair.patient is None or not pair.patient[0]:
            continue
        pseudonym = text_of(pair.output, "PatientID")
        by_patient[pair.patient].add(pseudonym)
        by_pseudonym[pseudonym].add(pair.patient)
    findings = [Finding("consistency", "pseudonym", "fail", detail=f"one original patient has {len(ids)} pseudonyms")
                for ids in by_patient.values() if len(ids) > 1]
    findings += [Finding("consistency", "pseudonym", "fail",
                         detail=f"{len(keys)} original patients share one pseudonym")
                 for keys in by_pseudonym.values() if len(keys) > 1]
    if by_patient and not findings:
        findings.append(Finding("consistency", "pseudonym", "pass",
                                detail=f"{len(by_patient)} patients, one pseudonym each"))
    return findings


def _date_shifts(pairs: list[Pair], mode: str) -> list[Finding]:
    shifts: dict[tuple[str, str], set[int]] = defaultdict(set)
    places: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for pair in pairs:
        if pair.original is None or pair.patient is None:
            continue
        for keyword in _DATES:
            before, after = _date(pair.original, keyword), _date(pair.output, keyword)
            if before and after:
                shifts[pair.patient].add((after - before).days)
                places[pair.patient].append((pair.study, pair.instance))
    findings = []
    for patient, values in shifts.items():
        study, instance = places[patient][0]
        if len(values) > 1:
            findings.append(Finding("consistency", "date shift", "fail", study, instance,
                                    detail=f"one patient's dates moved by {len(values)} different shifts: "
                                           "intervals between studies are not preserved"))
        elif mode == "shift" and values == {0}:
            findings.append(Finding("consistency", "date shift", "fail", study, instance,
                                    detail="dates were not shifted (shift of 0 days)"))
    if shifts and not findings:
        findings.append(Finding("consistency", "date shift", "pass",
                                detail=f"{len(shifts)} patients, one non-zero shift each"))
    return findings


def _references(pairs: list[Pair], map_uid: Callable[[str], str] | None) -> list[Finding]:
    out_ids = {uid for p in pairs for uid in identities(p.output).values()}
    orig_ids = {uid for p in pairs if p.original is not None for uid in identities(p.original).values()}
    findings: list[Finding] = []
    checked = 0
    for pair in pairs:
        after = {(r.path, r.kind): r.uid for r in references(pair.output)}
        before = {(r.path, r.kind): r.uid for r in references(pair.original)} if pair.original else {}
        for (path, kind), uid in after.items():
            checked += 1
            original = before.get((path, kind))
            if original is None:
                if uid not in out_ids and pair.original is not None:
                    findings.append(Finding("consistency", "reference", "warn", pair.study, pair.instance, path,
                                            f"a {kind} reference that the original does not have"))
                continue
            if original in orig_ids and uid not in out_ids:
                findings.append(Finding("consistency", "reference", "fail", pair.study, pair.instance, path,
                                        f"broken {kind} reference: it resolved in the originals, not in the output"))
            elif uid == original:
                findings.append(Finding("consistency", "reference", "fail", pair.study, pair.instance, path,
                                        f"{kind} reference not remapped"))
            elif map_uid is not None and uid != map_uid(original):
                findings.append(Finding("consistency", "reference", "fail", pair.study, pair.instance, path,
                                        f"{kind} reference does not point where the original pointed"))
    if checked and not findings:
        findings.append(Finding("consistency", "reference", "pass", detail=f"{checked} references resolve"))
    return findings


def original_uid_pattern(original_uids: set[str]) -> re.Pattern[bytes] | None:
    """The search for any of the original (non-registry) UIDs in an output's bytes; None when
    there are none. A :class:`Pair` records whether it matched its output."""
    if not original_uids:
        return None
    return re.compile(b"|".join(rb"(?<![0-9.])" + re.escape(u.encode()) + rb"(?![0-9])"
                                for u in sorted(original_uids, key=len, reverse=True)))


def check_original_uids(pairs: list[Pair], original_uids: set[str]) -> list[Finding]:
    """Every original (non-registry) UID, searched in every output's bytes (``Pair.original_uid``,
    found with :func:`original_uid_pattern` of the same UIDs)."""
    if not original_uids:
        return []
    findings = [Finding("consistency", "original UID", "fail", p.study, p.instance, "raw bytes",
                        "an original UID is still in the file") for p in pairs if p.original_uid]
    if not findings:
        findings.append(Finding("consistency", "original UID", "pass",
                                detail=f"none of {len(original_uids)} original UIDs found"))
    return findings


def check_consistency(pairs: list[Pair], *, mode: str, map_uid: Callable[[str], str] | None) -> list[Finding]:
    """Pseudonyms, date shifts and references over the whole set (see the module docstring)."""
    return _pseudonyms(pairs) + _date_shifts(pairs, mode) + _references(pairs, map_uid)
