"""A dry run of de-identification for one study: what would happen, with nothing written.

:func:`preview_study` reads every instance of a study from a source, runs the engine on each
with the plan and the identity the real run would use, and reports: the patient's identity
(from the lookup store, opened read-only; a provisional one, clearly labelled, for a patient
the store does not know yet), the diff of one instance at every depth, counts for the whole
study, the instances that would be quarantined or rejected, and the image before and after
(the burned-in text found outlined in red, what is masked in green; a reviewer's decision applied).
It writes to no store, node or file. Like the real run, it first collects the identifying
values of every instance of the study (so every instance is read twice).

The diff holds original values: it is PHI, for the identified zone only. Actions are the
engine's single letters (X Z D K C U P); ``A`` marks what anonlib adds (the de-identification
markers of PS3.15 E.1.1, the rebuilt File Meta Information).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from anonlib.dicomio import encode_instance, parse_instance, quiet_pydicom
from anonlib.engine import (
    Change,
    IdentifierIndex,
    Lookup,
    Outcome,
    collect_identifiers,
    deidentify,
    format_path,
    patient_key,
    scope_key,
)
from anonlib.errors import AnonlibError, ConfigError, InputError, StoreError
from anonlib.pipeline import pseudonym_policy
from anonlib.pixels.review import REVIEWED, pixel_boxes, reviewed_scan
from anonlib.pixels.select import (
    ESCALATED,
    LATER,
    ImageInfo,
    Reading,
    has_pixels,
    image_info,
    plan_series,
    reading_alone,
)
from anonlib.pixels.stage import PixelScan, PixelStage
from anonlib.profile import Plan, SiteProfile, build_plan
from anonlib.sources.base import Source
from anonlib.sources.thumbnails import Image, Thumbnail, placeholder, render_dataset, thumbnail_figure
from anonlib.store import LookupStore, PatientKey, PixelBox, PseudonymPolicy, open_store, rules

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["StudyPreview", "PreviewIdentity", "preview_study", "DIFF_COLUMNS", "SUMMARY_COLUMNS",
           "QUARANTINE_COLUMNS", "ADDED", "ADDED_MEANING"]

DIFF_COLUMNS = ["path", "keyword", "name", "vr", "original", "deidentified", "status", "action", "code", "rule"]
SUMMARY_COLUMNS = ["status", "action", "elements", "instances"]
QUARANTINE_COLUMNS = ["instance", "outcome", "reason"]
STATUSES = ("removed", "changed", "added", "kept")
ADDED = "A"
#: What :data:`ADDED` means (the legend of the diff's actions).
ADDED_MEANING = "Added by anonlib: the de-identification markers (PS3.15 E.1.1), the rebuilt File Meta Information"
_MARKERS = "anonlib: de-identification markers (PS3.15 E.1.1)"
_META = "File Meta Information rebuilt (PS3.15 E.1.1)"
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


@dataclass(frozen=True)
class PreviewIdentity:
    """The pseudonym and date shift the patient has (``existing``) or, provisionally, would
    get. Without a project secret yet (``secret_existing`` false) the new UIDs shown are
    provisional too."""

    pseudonym: str
    date_shift_days: int
    existing: bool
    secret_existing: bool

    @property
    def provisional(self) -> bool:
        return not (self.existing and self.secret_existing)

    def describe(self) -> str:
        """One sentence for the reader of the preview."""
        if self.existing:
            text = (f"Known patient: pseudonym {self.pseudonym}, dates shifted by "
                    f"{self.date_shift_days} days (from the lookup store).")
        else:
            text = (f"PROVISIONAL — new patient: the pseudonym {self.pseudonym} and the shift of "
                    f"{self.date_shift_days} days are examples drawn for this preview only; the real "
                    "run draws the patient's own and records them.")
        if not self.secret_existing:
            text += " The store has no project secret yet: the new UIDs shown are provisional too."
        return text


@dataclass
class StudyPreview:
    """What de-identifying ``study`` would do (see :func:`preview_study`)."""

    study: str
    instance: str  # the key of the instance shown in ``diff`` and the images
    instances: int  # instances in the study
    identity: PreviewIdentity
    diff: pd.DataFrame  # DIFF_COLUMNS, one row per element of ``instance`` at every depth (PHI)
    summary: pd.DataFrame  # SUMMARY_COLUMNS, counts over every instance (no values)
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS: instances quarantined or rejected
    original_image: Image
    deidentified_image: Image
    image_notes: tuple[str | None, str | None] = (None, None)  # why an image is a placeholder
    quarantined: str | None = None  # why :attr:`instance` would be quarantined, if it would
    found_boxes: tuple[PixelBox, ...] = ()  # burned-in text OCR would find in :attr:`instance`
    masked_boxes: tuple[PixelBox, ...] = ()  # what would be masked (a reviewer's regions too)
    frame_shape: tuple[int, int] = (0, 0)  # rows, columns of its frames (the boxes' coordinates)

    def images(self) -> Figure:
        """The original and de-identified image of :attr:`instance` (first frame), side by side,
        with the text found outlined in red on the original and what was masked in green on the
        de-identified image."""
        from anonlib.pixels.draw import FOUND, MASKED, draw_boxes

        before, after = self.image_notes
        label = "de-identified (quarantined: not released)" if self.quarantined else "de-identified"
        shown = [self.original_image, self.deidentified_image]
        for index, (boxes, colour, note) in enumerate(((self.found_boxes, FOUND, before),
                                                       (self.masked_boxes, MASKED, after))):
            if boxes and note is None and all(self.frame_shape):
                shown[index] = draw_boxes(shown[index], self.frame_shape, [(boxes, colour)])
        original = "original"
        if self.found_boxes:
            original += f" ({len(self.found_boxes)} text box(es) found)"
            label += f"; {len(self.masked_boxes)} box(es) masked"
        return thumbnail_figure([(Thumbnail(shown[0], before), original), (Thumbnail(shown[1], after), label)],
                                columns=2, inches=3.2)

    def figure(self) -> Figure:
        """Same as :meth:`images` (the name :mod:`anonlib.ui` uses)."""
        return self.images()


# -- the diff of one instance ---------------------------------------------------------------

def _value(element: DataElement) -> str:
    try:
        value = element.value
        if element.VR == "SQ":
            return f"<{len(value or [])} item(s)>"
        if element.VR in _BINARY or isinstance(value, (bytes, bytearray)):
            return f"<{len(value or b'')} bytes>"
        if value is None:
            return ""
        if isinstance(value, (MultiValue, list, tuple)):
            return "\\".join(str(v) for v in value)
        return str(value)
    except Exception:  # noqa: BLE001 - an undecodable value is shown as such
        return "<undecodable>"


Trail = tuple[tuple[int, int], ...]
Found = dict[str, tuple[tuple[int, ...], Trail, DataElement]]


def _elements(ds: Dataset, trail: Trail = ()) -> Iterator[tuple[Trail, DataElement]]:
    """Every element at every depth, in order (sequence items after their sequence)."""
    for element in ds:
        yield trail, element
        if element.VR == "SQ" and isinstance(element.value, Sequence):
            for index, item in enumerate(element.value):
                yield from _elements(item, trail + ((element.tag, index),))


def _index(ds: Dataset) -> Found:
    found: Found = {}
    meta = getattr(ds, "file_meta", None)
    for source in ([meta] if meta is not None else []) + [ds]:
        for trail, element in _elements(source):
            order = tuple(x for step in trail for x in step) + (int(element.tag),)
            found[format_path(trail, element.tag)] = (order, trail, element)
    return found


def _rule(source: str, note: str) -> str:
    return f"{source} ({note})" if note else source


def _decision(path: str, tag: int, trail: Trail, status: str, vr: str, changes: dict[str, Change],
              plan: Plan) -> tuple[str, str, str]:
    """(action, code, rule) of an element."""
    change = changes.get(path)
    if change is not None:
        return change.action, change.code, _rule(change.source, change.note)
    if tag >> 16 == 0x0002:
        action = {"removed": "X", "added": ADDED, "kept": "K"}.get(status, "U" if vr == "UI" else "D")
        return action, "", _META
    if status == "added":
        return ADDED, "", _MARKERS
    for depth in range(len(trail), 0, -1):  # inside a removed sequence
        parent = changes.get(format_path(trail[:depth - 1], trail[depth - 1][0]))
        if parent is not None and parent.outcome == "removed":
            return "X", parent.code, _rule(parent.source, f"removed with its sequence {parent.path}")
    rule = plan.rule_for(tag)
    code, source = (rule.code, rule.source) if rule is not None else ("K", "not in PS3.15 E.1-1: kept and cleaned")
    action = "X" if status == "removed" else code if code in ("K", "C") else "K"
    return action, code, _rule(source, "sequence kept; its items are listed")


def diff_rows(original: Dataset, result: Dataset, changes: list[Change], plan: Plan) -> list[dict[str, str]]:
    """One row (:data:`DIFF_COLUMNS`) per element of ``original`` or ``result``, at every depth."""
    by_path: dict[str, Change] = {}
    for change in changes:
        by_path.setdefault(change.path, change)
    before, after = _index(original), _index(result)
    rows = []
    dirty: set[str] = set()  # a sequence is changed when anything inside it is
    for path in sorted(before.keys() | after.keys(), key=lambda p: (before.get(p) or after[p])[0]):
        _, trail, element = before.get(path) or after[path]
        old = _value(before[path][2]) if path in before else ""
        new = _value(after[path][2]) if path in after else ""
        status = ("added" if path not in before else "removed" if path not in after
                  else "kept" if old == new else "changed")
        if status != "kept":
            dirty.update(format_path(trail[:depth - 1], trail[depth - 1][0]) for depth in range(1, len(trail) + 1))
        action, code, rule = _decision(path, int(element.tag), trail, status, element.VR, by_path, plan)
        keyword = "(private)" if element.tag.is_private else (element.keyword or "")
        rows.append({"path": path, "keyword": keyword, "name": element.name, "vr": element.VR,
                     "original": old, "deidentified": new, "status": status, "action": action,
                     "code": code, "rule": rule})
    for row in rows:
        if row["vr"] == "SQ" and row["status"] == "kept" and row["path"] in dirty:
            row["status"] = "changed"
    return rows


# -- the study ------------------------------------------------------------------------------

class _Identities:
    """The identity each patient has in the store, or a provisional one (never stored)."""

    def __init__(self, store: LookupStore, policy: PseudonymPolicy) -> None:
        self.store, self.policy = store, policy
        found = store.find_secret()
        self.secret_existing = found is not None
        self.secret = found if found is not None else rules.new_secret()
        self._cache: dict[PatientKey, PreviewIdentity] = {}

    def of(self, key: PatientKey) -> PreviewIdentity:
        if key not in self._cache:
            known = self.store.find_patient(key)
            self._cache[key] = (
                PreviewIdentity(known.pseudonym, known.date_shift_days, True, self.secret_existing)
                if known is not None else
                PreviewIdentity(rules.new_pseudonym(self.policy), rules.new_date_shift(self.policy),
                                False, self.secret_existing))
        return self._cache[key]


def _run(data: bytes, plan: Plan, identities: _Identities, index: IdentifierIndex,
         stage: PixelStage, reading: Reading | None,
         ) -> tuple[Dataset, Outcome, Dataset, PreviewIdentity, PixelScan | None]:
    """The original, the engine's outcome, the de-identified dataset as it would be written
    (encoded and read back, so that the diff shows the file's own File Meta Information), and
    what the pixel stage found. The pixel stage reads what the real run would read (``reading``,
    the study's sampling, or anything a reviewer decided about) and a reviewer's decision in
    the store is applied as the run would apply it."""
    original = parse_instance(data, label="instance", with_pixels=True).dataset
    identity = identities.of(patient_key(original))
    lookup = Lookup(identities.secret, identity.pseudonym, identity.date_shift_days)
    known = index.known(scope_key(original))
    scan = decision = None
    if plan.burned_in.reads_pixels and has_pixels(original):
        chosen = reading if reading is not None else reading_alone(original, plan)
        uid = str(original.get("SOPInstanceUID", "") or "")
        decision = identities.store.review(uid) if uid else None
        if decision is not None and not chosen.reads:
            chosen = REVIEWED
        if chosen.reads:
            found = collect_identifiers(original, plan).merged(known)
            scan = stage.scan(original, chosen, sorted(found.names | found.tokens | found.phrases))
    outcome = deidentify(original, plan, lookup, record_values=True, record_kept=True, known=known,
                         pixels=None if scan is None else reviewed_scan(scan, decision))
    written = parse_instance(encode_instance(outcome.dataset, None), label="output", with_pixels=True)
    return original, outcome, written.dataset, identity, scan


def _summary(counts: Counter[tuple[str, str]], present: Counter[tuple[str, str]]) -> pd.DataFrame:
    order = {s: i for i, s in enumerate(STATUSES)}
    keys = sorted(counts, key=lambda k: (order[k[0]], k[1]))
    return pd.DataFrame([{"status": s, "action": a, "elements": counts[(s, a)], "instances": present[(s, a)]}
                         for s, a in keys], columns=SUMMARY_COLUMNS).astype({"elements": "int64", "instances": "int64"})


def preview_study(source: Source, study: str, *, db_url: str | None, profile: SiteProfile | None = None,
                  instance: str | None = None, progress: Callable[[int, int], None] | None = None,
                  ) -> StudyPreview:
    """What de-identifying ``study`` of ``source`` would do — a dry run that writes nothing.

    ``db_url`` names the lookup store (None: the default SQLite file), opened read-only;
    ``instance`` picks the instance shown in the diff and images (default: the study's first);
    ``progress(done, total)`` is called after each of the ``2 × instances`` reads (the study's
    identifying values first, then the dry run of each), so that a long study shows life.
    Raises :class:`ConfigError` for an instance not in the study and
    :class:`~anonlib.errors.InputError` when no instance of the study can be de-identified.
    """
    quiet_pydicom()
    profile = profile or SiteProfile()
    plan = build_plan(profile)
    keys = source.instances(study)
    chosen = instance or (keys[0] if keys else "")
    if chosen not in keys:
        raise ConfigError("the instance to preview is not one of the study's instances")
    counts: Counter[tuple[str, str]] = Counter()
    present: Counter[tuple[str, str]] = Counter()
    problems: list[dict[str, str]] = []
    shown: tuple[list[dict[str, str]], Thumbnail, Thumbnail, PreviewIdentity] | None = None
    boxes: tuple[tuple[PixelBox, ...], tuple[PixelBox, ...], tuple[int, int]] = ((), (), (0, 0))
    first: PreviewIdentity | None = None
    policy = pseudonym_policy(profile)
    store = open_store(db_url, policy, readonly=True)
    try:
        identities = _Identities(store, policy)
        tick = progress or (lambda _done, _total: None)
        index, readings, series = _study_index(source, keys, plan, lambda done: tick(done, 2 * len(keys)))
        stage = PixelStage(plan.burned_in)
        escalated: set[str] = set()
        ordered = ([k for k in keys if readings.get(k) != LATER] + [k for k in keys if readings.get(k) == LATER])
        for position, key in enumerate(ordered):
            tick(len(keys) + position, 2 * len(keys))  # the previous ones are done
            data = source.read(key)
            reading = readings.get(key)
            if reading == LATER and series.get(key) in escalated:
                reading = ESCALATED
            try:
                original, outcome, written, identity, scan = _run(data, plan, identities, index, stage, reading)
            except StoreError:
                raise
            except AnonlibError as exc:  # the real run rejects such an instance
                problems.append({"instance": key, "outcome": "rejected", "reason": getattr(exc, "reason", str(exc))})
                continue
            except Exception as exc:  # noqa: BLE001 - so does it on anything unexpected
                problems.append({"instance": key, "outcome": "rejected",
                                 "reason": f"internal error ({type(exc).__name__})"})
                continue
            first = first or identity
            rows = diff_rows(original, written, outcome.changes, plan)
            tally = Counter((r["status"], r["action"]) for r in rows)
            counts.update(tally)
            present.update(tally.keys())
            if outcome.pixel_boxes or (outcome.quarantine or "").startswith("pixels:"):
                escalated.add(series.get(key, ""))
            if outcome.quarantine:
                problems.append({"instance": key, "outcome": "quarantined", "reason": outcome.quarantine})
            if key == chosen:
                shown = (rows, render_dataset(original), render_dataset(written), identity)
                boxes = (pixel_boxes(scan.boxes) if scan is not None else (), pixel_boxes(outcome.pixel_boxes),
                         (int(original.get("Rows", 0) or 0), int(original.get("Columns", 0) or 0)))
        tick(2 * len(keys), 2 * len(keys))
    finally:
        store.close()
    if first is None:
        raise InputError("study", "no instance of the study can be de-identified")
    rows, before, after, identity = shown if shown is not None else (
        [], Thumbnail(placeholder(), "rejected"), Thumbnail(placeholder(), "rejected"), first)
    return StudyPreview(
        study=study, instance=chosen, instances=len(keys), identity=identity,
        diff=pd.DataFrame(rows, columns=DIFF_COLUMNS), summary=_summary(counts, present),
        quarantine=pd.DataFrame(problems, columns=QUARANTINE_COLUMNS),
        original_image=before.image, deidentified_image=after.image,
        image_notes=(before.reason, after.reason),
        quarantined=next((p["reason"] for p in problems if p["instance"] == chosen), None),
        found_boxes=boxes[0], masked_boxes=boxes[1], frame_shape=boxes[2])


def _study_index(source: Source, keys: list[str], plan: Plan, tick: Callable[[int], None],
                 ) -> tuple[IdentifierIndex, dict[str, Reading], dict[str, str]]:
    """The identifying values of every instance of the study, as the real run collects them
    before de-identifying any (a value in one header is scrubbed from every instance's text),
    and what the pixel stage reads of each (the run's sampling) with each one's series."""
    index = IdentifierIndex(plan)
    infos: list[ImageInfo] = []
    for done, key in enumerate(keys, start=1):
        try:
            header = parse_instance(source.read(key), label="instance").dataset
        except AnonlibError:
            continue  # rejected below, with its reason
        finally:
            tick(done)
        index.add(header)
        infos.append(image_info(header, key, plan))
    if not plan.burned_in.reads_pixels:
        return index, {}, {}
    return index, plan_series(infos, plan.burned_in.sample_min_series), {i.key: i.series for i in infos}
