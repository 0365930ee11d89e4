"""The de-identification engine: pure, no I/O.

``deidentify(dataset, plan, lookup)`` returns the de-identified dataset, the record of every
change, and whether the instance must be quarantined (burned-in pixel PHI). It opens no file,
socket or database; the same inputs always give the same output.
"""

from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from anonlib import __version__
from anonlib.engine.changes import Change, format_path
from anonlib.engine.dates import age_in_years, is_over_89, parse_da, years_between
from anonlib.engine.identifiers import collect_identifiers
from anonlib.engine.markers import add_markers, rebuild_file_meta
from anonlib.engine.pixels import PixelVerdict, assess_pixels, mask_boxes, pixel_change
from anonlib.engine.privates import PrivatePolicy, declared_safe
from anonlib.engine.scope import IdentifierIndex, ScopeKey, scope_key, study_key
from anonlib.engine.subject import patient_key
from anonlib.engine.text import Identifiers, Scrubber
from anonlib.engine.uids import UidMapper
from anonlib.engine.values import text_of
from anonlib.engine.walk import Walker
from anonlib.errors import DeidentificationError, PixelError
from anonlib.pixels import TextBox
from anonlib.pixels.stage import PixelScan
from anonlib.profile.iod import iod_types
from anonlib.profile.plan import Plan

__all__ = [
    "Lookup", "Outcome", "InstanceKeys", "Change", "PixelVerdict", "deidentify", "patient_key",
    "assess_pixels", "needs_pixel_data", "format_path", "UidMapper", "Identifiers",
    "collect_identifiers", "IdentifierIndex", "ScopeKey", "scope_key", "study_key",
]

_DICOMDIR = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class Lookup:
    """What the lookup store says for this instance's patient, plus the project secret."""

    secret: bytes
    pseudonym: str
    date_shift_days: int


@dataclass(frozen=True)
class InstanceKeys:
    """Original and new keys of one instance (the originals are PHI: for the store only)."""

    original_sop_uid: str
    original_series_uid: str
    original_study_uid: str
    original_accession: str
    new_sop_uid: str
    new_series_uid: str
    new_study_uid: str
    study_date: str  # de-identified StudyDate ("" when absent or removed)
    series_number: str
    modality: str
    sop_class_uid: str


@dataclass
class Outcome:
    """The de-identified dataset and everything the caller needs to route and record it."""

    dataset: Dataset
    keys: InstanceKeys
    changes: list[Change] = field(default_factory=list)
    quarantine: str | None = None  # PHI-free reason when the instance must not be released
    pixels_cleaned: bool = False  # the pixels were masked: ``dataset`` holds the new pixel data
    pixel_boxes: tuple[TextBox, ...] = ()  # the boxes masked (never their text)
    pixels_read: bool = False  # the pixel stage read this instance (or a rule decided it)
    uids: dict[str, str] = field(default_factory=dict)  # every UID replaced, original -> new (PHI: for the store)




def needs_pixel_data(ds: Dataset, plan: Plan) -> bool:
    """True when the pixels must be decoded without OCR (a pixel-mask rule applies under
    ``burned_in: quarantine``); under ``ocr`` the pixel stage decides what it reads."""
    return plan.burned_in.mode == "quarantine" and assess_pixels(ds, plan).action == "mask"


def _over_89(ds: Dataset) -> bool:
    if is_over_89(age_in_years(text_of(ds, "PatientAge"))):
        return True
    born, seen = parse_da(text_of(ds, "PatientBirthDate")), parse_da(text_of(ds, "StudyDate"))
    if born and seen:
        return years_between(born, seen) >= 90
    return False


def _ensure_pseudonym(ds: Dataset, plan: Plan, lookup: Lookup, walker: Walker) -> None:
    """Give every instance its pseudonym, even when the original had no PatientID/PatientName
    (both are Type 2 in the Patient module, so adding them never breaks the IOD)."""
    for keyword, tag, vr in (("PatientName", 0x00100010, "PN"), ("PatientID", 0x00100020, "LO")):
        rule = plan.rule_for(tag)
        if keyword not in ds and rule is not None and rule.code == "P":
            setattr(ds, keyword, lookup.pseudonym)
            if walker.record_changes:
                walker.changes.append(Change((), tag, vr, "P", "P", "added", rule.source,
                                             note="absent in the original; pseudonym added",
                                             after=lookup.pseudonym if walker.record_values else None))


def deidentify(ds: Dataset, plan: Plan, lookup: Lookup, *, copy: bool = True,
               record_values: bool = False, record_kept: bool = False,
               known: Identifiers | None = None, pixels: PixelScan | None = None,
               record_changes: bool = True) -> Outcome:
    """De-identify one instance.

    ``copy=False`` modifies ``ds`` in place (faster; the pipeline uses it). ``record_values``
    keeps original and new values in the change record (for previews only: they are PHI).
    ``record_kept`` also records the elements that were kept unchanged. ``known``: identifying
    values collected beyond this instance (from the other instances of its study and its
    patient's in the run, see :class:`IdentifierIndex`), scrubbed from text as its own are.
    ``pixels``: what the pixel stage found in this instance's pixels (:mod:`anonlib.pixels.stage`;
    None when it did not read them): its boxes are masked, or the instance quarantined.
    ``record_changes=False`` leaves :attr:`Outcome.changes` empty (a folder run never reads it;
    the record of ~250 decisions per instance is a tenth of the engine's time); what is done
    to the instance is the same.
    """
    if copy:
        ds = _copy.deepcopy(ds)
    sop_class = text_of(ds, "SOPClassUID")
    meta_class = str(getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
    if _DICOMDIR in (sop_class, meta_class) or "DirectoryRecordSequence" in ds:
        raise DeidentificationError("a DICOMDIR is not de-identified; rebuild it from the output")
    if not sop_class or not text_of(ds, "SOPInstanceUID"):
        raise DeidentificationError("not a composite instance (no SOP Class / SOP Instance UID)")
    if not text_of(ds, "StudyInstanceUID"):
        raise DeidentificationError("no Study Instance UID (Type 1 in every composite IOD)")

    mapper = UidMapper(lookup.secret, plan.uid_root)
    verdict = assess_pixels(ds, plan, pixels)
    originals = {k: text_of(ds, k) for k in ("SOPInstanceUID", "SeriesInstanceUID",
                                           "StudyInstanceUID", "AccessionNumber")}
    walker = Walker(
        plan=plan,
        types=iod_types(sop_class),
        uids=mapper,
        scrubber=Scrubber(collect_identifiers(ds, plan).merged(known), lambda d: walker.shift_date(d), mapper),
        pseudonym=lookup.pseudonym,
        date_shift_days=lookup.date_shift_days,
        private=PrivatePolicy(plan.private.code, plan.private_keep, declared_safe(ds),
                              plan.private.source),
        over_89=_over_89(ds),
        record_values=record_values,
        record_kept=record_kept,
        record_changes=record_changes,
    )
    walker.run(ds)
    _ensure_pseudonym(ds, plan, lookup, walker)

    cleaned = False
    quarantine = verdict.reason if verdict.action == "quarantine" else None
    if verdict.action == "mask":
        if "PixelData" in ds and ds.PixelData is not None:
            try:
                mask_boxes(ds, verdict.boxes)
                cleaned = True
            except PixelError as exc:
                quarantine = f"pixels: cannot be masked ({exc})"
        else:
            quarantine = verdict.reason + "; pixel data was not available to clean"
    if (cleaned or verdict.action == "checked") and quarantine is None:
        ds.BurnedInAnnotation = "NO"  # only once the pixels were read in full and masked
    add_markers(ds, plan, pixels_cleaned=(cleaned or verdict.action == "checked") and quarantine is None,
                version=__version__)
    if verdict.boxes and (cleaned or quarantine) and record_changes:
        walker.changes.append(pixel_change(verdict.boxes, "masked" if cleaned else "not released"))
    rebuild_file_meta(ds)
    keys = InstanceKeys(
        original_sop_uid=originals["SOPInstanceUID"],
        original_series_uid=originals["SeriesInstanceUID"],
        original_study_uid=originals["StudyInstanceUID"],
        original_accession=originals["AccessionNumber"],
        new_sop_uid=text_of(ds, "SOPInstanceUID"),
        new_series_uid=text_of(ds, "SeriesInstanceUID"),
        new_study_uid=text_of(ds, "StudyInstanceUID"),
        study_date=text_of(ds, "StudyDate"),
        series_number=text_of(ds, "SeriesNumber"),
        modality=text_of(ds, "Modality"),
        sop_class_uid=sop_class,
    )
    return Outcome(ds, keys, walker.changes, quarantine, cleaned, verdict.boxes if cleaned else (),
                   verdict.action != "pass" or pixels is not None, mapper.mapped())
