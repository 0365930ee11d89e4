"""HIPAA Safe Harbor scan of one de-identified instance, without its original.

For each of the 18 identifier categories of 45 CFR 164.514(b)(2)(i) (A–R, see
``anonlib/data/hipaa_safe_harbor.csv``), every attribute that still carries a value — at any
depth, inside sequences and private blocks, and in the File Meta Information — is reported by
tag path with a verdict:

* **A names, G/H IDs**: the patient's pseudonym (PatientName equal to PatientID, and any name or
  ID equal to it) is ``expected`` (a re-identification code, 164.514(c)); dummies ``pass``;
  anything else ``fail``.
* **C dates** (by VR): under the date-shift mode dates are ``expected`` (not Safe Harbor as
  written); under keep, remove or an unknown mode they ``fail`` unless they are dummies. Times of
  day follow the dates. Ages over 89 ``fail`` unless capped at 090Y (``expected``); a birth date
  that shows an age of 90 or more ``fail``\\ s.
* **R UIDs**: non-registry UIDs are ``expected`` (remapped; the consistency check compares them
  with the originals). Registry UIDs are not reported.
* Narrative free text that survives is a ``warn``; so is every private element.
* Pixels: BurnedInAnnotation YES ``fail``; objects at risk of burned-in text without
  BurnedInAnnotation NO ``warn`` (see :mod:`anonlib.audit.safe_harbor.pixels`).
* Markers: PatientIdentityRemoved YES and DeidentificationMethodCodeSequence, else ``fail``.
* Any other attribute of a category with a value ``fail``\\ s unless it is a dummy.

Findings carry tag paths, categories and words, never a value read from the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from anonlib.audit.model import Check, Finding, Verdict
from anonlib.audit.safe_harbor.dates import (
    age_verdict,
    birth_date_reveals_90,
    date_verdict,
    detect_date_mode,
    regulatory_status,
)
from anonlib.audit.safe_harbor.pixels import PIXEL_KEYWORDS, marker_findings, pixel_findings
from anonlib.audit.safe_harbor.table import label, letters_for
from anonlib.audit.safe_harbor.values import (
    all_dummies,
    as_text,
    is_dummy,
    is_free_text,
    method_codes,
    present_values,
)
from anonlib.dicomvalues import age_in_years, format_path, is_registry_uid, structural_uid_tags

__all__ = ["scan_safe_harbor", "regulatory_status", "detect_date_mode", "PRIVATE_CATEGORY",
           "FREE_TEXT_CATEGORY"]

PRIVATE_CATEGORY = "private"
FREE_TEXT_CATEGORY = "free text"
_BIRTH_DATE = 0x00100030
#: The tags of PIXEL_KEYWORDS (the scan's own pixel findings judge them).
_PIXEL_TAGS = frozenset(int(tag_for_keyword(word)) for word in PIXEL_KEYWORDS)  # type: ignore[arg-type]
_CLEAN_GRAPHICS = "113103"
_PSEUDONYM = ("the patient's pseudonym: a re-identification code, allowed by 164.514(c) when it "
              "is not derived from the individual's information and its key is not disclosed")
_UID = "remapped; verified against the originals by the consistency check"
_FREE_TEXT = "free text kept after cleaning; compare with the originals"

Trail = tuple[tuple[int, int], ...]
Judgement = tuple[str, Verdict, str]  # (category, verdict, detail)


def scan_safe_harbor(ds: Dataset, *, study: str, instance: str) -> list[Finding]:
    """Safe Harbor findings on one de-identified instance (``study`` and ``instance`` are the
    de-identified Study and SOP Instance UIDs, or another PHI-free label)."""
    scan = _Scan(ds, study, instance)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        scan.walk(meta, ())
    scan.walk(ds, ())
    for category, verdict, path, detail in pixel_findings(ds):
        scan.add(category, verdict, path, detail)
    # The markers are a conformance duty of PS3.15 E.1.1, reported under that check.
    for category, verdict, path, detail in marker_findings(ds):
        scan.add(category, verdict, path, detail, check="conformance")
    return scan.findings


def _normal(value: object) -> str:
    return as_text(value).strip(" ^=").upper()


def _pseudonym(ds: Dataset) -> str:
    """The instance's pseudonym: PatientID, when PatientName carries the same value."""
    patient_id = _normal(ds.get("PatientID", "") or "")
    return patient_id if patient_id and patient_id == _normal(ds.get("PatientName", "") or "") else ""


def _over_89(ds: Dataset) -> bool:
    """PatientAge of 90 or more (090Y included), or a birth date that shows it."""
    ages = present_values(ds["PatientAge"]) if "PatientAge" in ds else []
    return birth_date_reveals_90(ds) or any((age_in_years(as_text(age)) or 0) >= 90 for age in ages)


@dataclass
class _Scan:
    ds: Dataset
    study: str
    instance: str
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mode = detect_date_mode(self.ds)
        self.pseudonym = _pseudonym(self.ds)
        self.codes = method_codes(self.ds)
        self.over_89 = _over_89(self.ds)
        self.structural = structural_uid_tags()

    def add(self, category: str, verdict: Verdict, path: str, detail: str,
            check: Check = "safe_harbor") -> None:
        self.findings.append(Finding(check, category, verdict, self.study, self.instance, path, detail))

    # -- traversal ---------------------------------------------------------------------------
    def walk(self, ds: Dataset, trail: Trail) -> None:
        for key in list(ds.keys()):
            tag = int(key)
            if tag & 0xFFFF == 0:
                continue  # group length
            try:
                element = ds[key]
            except Exception:  # pydicom raises several types on an undecodable value
                private = bool((tag >> 16) % 2)
                self.add(PRIVATE_CATEGORY if private else "unreadable", "warn", format_path(trail, tag),
                         f"{'private ' if private else ''}element could not be decoded: inspect it")
                continue
            if (tag >> 16) % 2:
                self._private(element, tag, trail)
            elif element.VR == "SQ":
                self._sequence(element, tag, trail)
            elif tag not in _PIXEL_TAGS:
                values = present_values(element)
                judgement = self._judge(element, values) if values else None
                if judgement is not None:
                    self.add(judgement[0], judgement[1], format_path(trail, tag), judgement[2])

    def _items(self, element: DataElement, trail: Trail) -> None:
        for index, item in enumerate(element.value or []):
            self.walk(item, trail + ((int(element.tag), index),))

    def _private(self, element: DataElement, tag: int, trail: Trail) -> None:
        if element.VR == "SQ":
            if element.value:
                self.add(PRIVATE_CATEGORY, "warn", format_path(trail, tag), "private sequence kept")
            self._items(element, trail)
        elif present_values(element):
            kind = "private creator" if 0x10 <= element.tag.element <= 0xFF else "private element"
            self.add(PRIVATE_CATEGORY, "warn", format_path(trail, tag), f"{kind} kept")

    def _sequence(self, element: DataElement, tag: int, trail: Trail) -> None:
        keyword = element.keyword
        letters = letters_for(keyword, "SQ")
        items = element.value or []
        if letters and items:
            path = format_path(trail, tag)
            if any(_has_content(item) for item in items):
                self.add(label(letters), "fail", path,
                         f"{keyword}: sequence kept with {len(items)} item(s) holding values")
            else:
                self.add(label(letters), "pass", path,
                         f"{keyword}: sequence kept with empty or dummy values only")
        self._items(element, trail)

    # -- verdicts ----------------------------------------------------------------------------
    def _judge(self, element: DataElement, values: list[object]) -> Judgement | None:
        known, vr = element.keyword, element.VR  # the keyword: a dictionary lookup, done once
        keyword = known or "(unknown attribute)"
        letters = letters_for(known, vr)
        if vr == "UI":
            if int(element.tag) in self.structural or all(is_registry_uid(as_text(v)) for v in values):
                return None
            return label(letters, uid=True), "expected", f"{keyword}: {_UID}"
        if vr in ("DA", "DT", "TM"):
            verdict, detail = date_verdict(values, vr, self.mode)
            if (int(element.tag) == _BIRTH_DATE and self.over_89
                    and not all_dummies(values, vr)):
                verdict, detail = "fail", "birth date of a patient aged 90 or more (164.514(b)(2)(i)(C))"
            return label(letters), verdict, f"{keyword}: {detail}"
        if vr == "AS":
            verdict, detail = age_verdict(values)
            return label(letters), verdict, f"{keyword}: {detail}"
        if keyword == "OverlayData" and not all_dummies(values, vr):
            overlay: Verdict = "warn" if _CLEAN_GRAPHICS in self.codes else "fail"
            return label(letters), overlay, f"{keyword}: overlay kept; may hold burned-in text"
        dummy = all_dummies(values, vr)
        if is_free_text(known, vr, bool(letters)):
            category = label(letters) if letters else FREE_TEXT_CATEGORY
            if dummy:
                return (category, "pass", f"{keyword}: dummy text") if letters else None
            return category, "warn", f"{keyword}: {_FREE_TEXT}"
        if not letters:
            return None
        if dummy:
            return label(letters), "pass", f"{keyword}: dummy value"
        real = [v for v in values if not is_dummy(v, vr)]
        if letters & {"A", "G", "H"} and self.pseudonym and all(_normal(v) == self.pseudonym
                                                              for v in real):
            return label(letters), "expected", f"{keyword}: {_PSEUDONYM}"
        rule = "/".join(sorted(letters))
        return label(letters), "fail", f"{keyword}: a value remains (Safe Harbor {rule}: remove it)"


def _has_content(ds: Dataset) -> bool:
    """True when some element at any depth holds a value that is not a dummy."""
    for key in list(ds.keys()):
        try:
            element = ds[key]
        except Exception:  # undecodable: cannot be shown to be empty
            return True
        if element.VR == "SQ":
            if any(_has_content(item) for item in element.value or []):
                return True
        elif any(not is_dummy(v, element.VR) for v in present_values(element)):
            return True
    return False
