"""Consistency across the audited set: one pseudonym per original patient, one date shift per
patient (so intervals are preserved), every reference resolving, no original UID anywhere.

Patients are told apart as the engine tells them: by the original's (PatientID, issuer), and an
instance without a PatientID by its study (:func:`anonlib.audit.originals.patient_key_of`).
Only what these checks need is kept of each instance (:class:`Side`), not its dataset, so a
large set is audited in little memory.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from anonlib.audit.model import Finding
from anonlib.audit.references import Reference, identities, references
from anonlib.dicomvalues import parse_da, text_of

__all__ = ["Pair", "Side", "side_of", "check_consistency", "check_original_uids"]

_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


@dataclass(frozen=True)
class Side:
    """What the consistency checks need of one dataset (an output or an original)."""

    patient_id: str
    dates: dict[str, dt.date] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)


def side_of(ds: Dataset) -> Side:
    """The :class:`Side` of ``ds``."""
    dates = {keyword: day for keyword in _DATES
             if (day := parse_da(text_of(ds, keyword))) is not None}
    return Side(text_of(ds, "PatientID"), dates, identities(ds), references(ds))


@dataclass
class Pair:
    """One audited instance: its output, and its original when known."""

    output: Side
    original: Side | None
    patient: tuple[str, str] | None  # the original's patient key (see patient_key_of)
    study: str  # de-identified Study Instance UID
    instance: str  # de-identified SOP Instance UID
    original_uid: bool = False  # an original UID is in the output (see check_original_uids)


def _pseudonyms(pairs: list[Pair]) -> list[Finding]:
    by_patient: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_pseudonym: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for pair in pairs:
        if pair.patient is None or not pair.patient[0]:
            continue
        pseudonym = pair.output.patient_id
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
        if pair.original is None or pair.patient is None or not pair.patient[0]:
            continue
        for keyword in _DATES:
            before, after = pair.original.dates.get(keyword), pair.output.dates.get(keyword)
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
    out_ids = {uid for p in pairs for uid in p.output.identities.values()}
    orig_ids = {uid for p in pairs if p.original is not None for uid in p.original.identities.values()}
    findings: list[Finding] = []
    checked = 0
    for pair in pairs:
        after = {(r.path, r.kind): r.uid for r in pair.output.references}
        before = {(r.path, r.kind): r.uid for r in pair.original.references} if pair.original else {}
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


def check_original_uids(pairs: list[Pair], searched: int) -> list[Finding]:
    """Findings of the search of every original UID (``searched`` of them: those of the whole
    set that the shared policy does not keep) in every output; ``Pair.original_uid`` says where
    one was found (a set lookup of each output's dotted numbers, done in the instance's pass)."""
    if not searched:
        return []
    findings = [Finding("consistency", "original UID", "fail", p.study, p.instance, "",
                        "an original UID is still in the file") for p in pairs if p.original_uid]
    if not findings:
        findings.append(Finding("consistency", "original UID", "pass",
                                detail=f"none of {searched} original UIDs found"))
    return findings


def check_consistency(pairs: list[Pair], *, mode: str, map_uid: Callable[[str], str] | None) -> list[Finding]:
    """Pseudonyms, date shifts and references over the whole set (see the module docstring)."""
    return _pseudonyms(pairs) + _date_shifts(pairs, mode) + _references(pairs, map_uid)
