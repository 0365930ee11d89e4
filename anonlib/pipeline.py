"""One instance end to end — read, look up, de-identify, write, record.

:class:`InstanceProcessor` is what every caller shares (folder runs, :mod:`anonlib.folder_run`;
the constellation's study job; the notebooks): it owns the lookup store's identities and the
sinks. A bad file is reported (its path and the reason), never raised.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom.dataset import Dataset

from anonlib.dicomio import (
    ParsedInstance,
    encode_instance,
    parse_instance,
    read_instance,
)
from anonlib.dicomvalues import text_of
from anonlib.engine import (
    Identifiers,
    Lookup,
    Outcome,
    UidMapper,
    collect_identifiers,
    deidentify,
    needs_pixel_data,
    patient_key,
)
from anonlib.errors import AnonlibError, DeidentificationError, InputError, StoreError
from anonlib.pixels.review import REVIEWED, machine_findings, reviewed_scan
from anonlib.pixels.select import Reading, has_pixels, reading_alone
from anonlib.pixels.stage import PixelStage
from anonlib.profile import Plan, SiteProfile
from anonlib.sinks.folder import (
    FolderSink,
    ManifestRow,
    relative_path,
    update_manifest,
)
from anonlib.store import LookupStore, PatientIdentity, PatientKey, PseudonymPolicy
from anonlib.store.base import InstanceRecord, PixelFindings, ReviewDecision, StudyRecord

__all__ = ["FileResult", "InstanceProcessor", "pseudonym_policy", "rejection_reason", "MANIFEST",
           "QUARANTINE_MANIFEST", "REJECTED_LIST", "CONFLICT_LIST"]

log = logging.getLogger("anonlib.pipeline")
MANIFEST = "manifest.csv"
QUARANTINE_MANIFEST = "quarantine.csv"
REJECTED_LIST = "rejected.csv"
CONFLICT_LIST = "conflicts.csv"


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file. ``source`` (and ``kept``, the input processed in place
    of a conflict or duplicate) are the operator's own paths, relative to the source folder;
    everything else is PHI-free. ``status``: written | unchanged | replaced (released) |
    quarantined | rejected | conflict | duplicate (see :mod:`anonlib.inputs`); ``change``: what
    the sink did with a delivered instance, released or quarantined (written | unchanged | replaced)."""

    source: str
    status: str
    output: str = ""
    reason: str = ""
    row: ManifestRow | None = None
    change: str = ""
    kept: str = ""
    text_found: bool = False  # the pixel stage found text in it, or could not read it: its series is read in full


def rejection_reason(exc: BaseException) -> str:
    """Why one instance is rejected, PHI-free: an anonlib error's own reason; for anything else
    what it means (nesting too deep for the parser, too large for memory) or, failing that, its
    class — never its message, which may quote a value."""
    if isinstance(exc, InputError | DeidentificationError):
        return str(getattr(exc, "reason", "") or exc)
    if isinstance(exc, AnonlibError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nesting too deep to parse"
    if isinstance(exc, MemoryError):
        return "too large to process in memory"
    return f"internal error ({type(exc).__name__})"


def pseudonym_policy(profile: SiteProfile) -> PseudonymPolicy:
    low, high = profile.date_shift_days
    return PseudonymPolicy(prefix=profile.pseudonym_prefix, shift_min_days=low, shift_max_days=high)


class InstanceProcessor:
    """De-identifies instances with one plan and one lookup store, writing to folder sinks."""

    def __init__(self, plan: Plan, store: LookupStore, output: FolderSink,
                 quarantine: FolderSink) -> None:
        self.plan = plan
        self.store = store
        self.output = output
        self.quarantine = quarantine
        self._secret = store.secret()
        self._identities: dict[PatientKey, PatientIdentity] = {}
        self._studies: set[str] = set()
        self._pending: list[InstanceRecord] = []
        self._uids: dict[str, str] = {}  # UIDs the buffered instances replaced, original -> new
        self.pixels = PixelStage(plan.burned_in)
        # new SOP UID -> (the pixel stage read it, what it found): recorded when it is delivered
        self._findings: dict[str, tuple[bool, PixelFindings | None]] = {}
        self._clean: list[str] = []  # original SOP UIDs read and found clean: findings discarded
        self._reviews: dict[str, ReviewDecision] | None = None  # see review()
        self._reviews_read = 0.0

    #: Instance records are written to the store in batches of this many (one transaction each).
    BATCH = 64

    def flush(self) -> None:
        """Write the buffered instance records, and the UIDs they replaced, to the store (and
        forget the pixel findings of the instances read again and found clean)."""
        if self._uids:  # before the instances: an instance on record has its UIDs on record
            self.store.record_uids(self._uids)
            self._uids = {}
        if self._pending:
            self.store.record_instances(self._pending)
            self._pending = []
        if self._clean:
            self.store.discard_pixel_findings(*self._clean)
            self._clean = []
        self._findings.clear()  # of instances never delivered (a held study)
        self._reviews = None

    #: Seconds the reviewers' decisions are kept in memory before they are read again.
    REVIEWS_MAX_AGE = 10.0

    def review(self, ds: Dataset) -> ReviewDecision | None:
        """The reviewer's decision about the instance ``ds`` (original header), if any. The
        decisions are read from the store at most every :data:`REVIEWS_MAX_AGE` seconds and
        after each :meth:`flush`, not once per instance (a CT series has hundreds)."""
        if self._reviews is None or time.monotonic() - self._reviews_read > self.REVIEWS_MAX_AGE:
            self._reviews = {d.original_sop_uid: d for d in self.store.reviews()}
            self._reviews_read = time.monotonic()
        return self._reviews.get(text_of(ds, "SOPInstanceUID"))

    def uid_mapper(self) -> UidMapper:
        """The project's UID mapping (what the engine does to every UID)."""
        return UidMapper(self._secret, self.plan.uid_root)

    def identity(self, key: PatientKey) -> PatientIdentity:
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = self.store.patient(key)
        return found

    def deidentify_file(self, path: Path, label: str, known: Identifiers | None = None,
                        reading: Reading | None = None, *,
                        changes: bool = True) -> tuple[Outcome, bytes, PatientIdentity]:
        """Read and de-identify one file (no writing); InputError/DeidentificationError if bad.
        ``known``: identifiers of its study and patient beyond the file (see the engine);
        ``reading``: what the pixel stage reads of it (the run's sampling; None: decided from
        this file alone, see :func:`anonlib.pixels.select.reading_alone`); ``changes=False``:
        the outcome's record of changes is left empty (nothing else differs)."""
        # Every private element removed and nothing recorded: the ones that are neither names
        # (collected as identifiers) nor sequences need not be read into the data set at all.
        private = changes or self.plan.private.code != "X"
        return self._deidentify_read(lambda pixels: read_instance(path, with_pixels=pixels, label=label,
                                                                   limits=self.plan.limits, private=private),
                                     known, reading, changes)

    def deidentify_bytes(self, data: bytes, label: str, known: Identifiers | None = None,
                         reading: Reading | None = None) -> tuple[Outcome, bytes, PatientIdentity]:
        """De-identify one instance held in memory (for example fetched from Orthanc)."""
        return self._deidentify_read(lambda pixels: parse_instance(data, label=label, with_pixels=pixels,
                                                                    limits=self.plan.limits),
                                     known, reading)

    def _deidentify_read(self, read: Callable[[bool], ParsedInstance], known: Identifiers | None = None,
                         reading: Reading | None = None,
                         changes: bool = True) -> tuple[Outcome, bytes, PatientIdentity]:
        """``read(with_pixels)`` once without pixel data, again with it only when the pixel
        stage reads this instance (or a pixel-mask rule needs the pixels), then de-identify. A
        file read whole at once (``pixel_bytes`` None: deflated, or no pixel data) is not read
        again, but its pixels are read by the pixel stage all the same."""
        parsed = read(False)
        whole = parsed.pixel_bytes is None
        if self.plan.burned_in.reads_pixels and (not whole or has_pixels(parsed.dataset)):
            chosen = reading if reading is not None else reading_alone(parsed.dataset, self.plan)
            if not chosen.reads and self.review(parsed.dataset) is not None:
                chosen = REVIEWED  # a decision is applied on every run: its pixels are read
            if chosen.reads:
                return self.deidentify_parsed(parsed if whole else read(True), known, chosen, changes=changes)
        elif not whole and not self.plan.burned_in.reads_pixels and needs_pixel_data(parsed.dataset, self.plan):
            parsed = read(True)
        return self.deidentify_parsed(parsed, known, changes=changes)

    def deidentify_parsed(self, parsed: ParsedInstance, known: Identifiers | None = None,
                          reading: Reading | None = None, *,
                          changes: bool = True) -> tuple[Outcome, bytes, PatientIdentity]:
        """De-identify a parsed instance; with ``reading`` (and its pixels parsed) the pixel
        stage reads it first."""
        scan, decision = None, None
        if reading is not None and reading.reads:
            values: list[str] = []
            if self.plan.burned_in.mask == "phi":
                found = collect_identifiers(parsed.dataset, self.plan).merged(known)
                values = sorted(found.names | found.tokens | found.phrases)
            scan = self.pixels.scan(parsed.dataset, reading, values)
            decision = self.review(parsed.dataset)
        identity = self.identity(patient_key(parsed.dataset))
        lookup = Lookup(self._secret, identity.pseudonym, identity.date_shift_days)
        outcome = deidentify(parsed.dataset, self.plan, lookup, copy=False, known=known,
                             pixels=None if scan is None else reviewed_scan(scan, decision),
                             record_changes=changes)
        keys = outcome.keys
        findings = machine_findings(keys.original_sop_uid, keys.new_sop_uid, scan, outcome.quarantine,
                                    decision is not None)
        if findings is not None or scan is not None:
            self._findings[keys.new_sop_uid] = (scan is not None, findings)
        if outcome.pixels_cleaned:
            return outcome, encode_instance(outcome.dataset, None), identity
        return outcome, encode_instance(outcome.dataset, parsed.pixel_bytes, parsed.source), identity

    def deliver(self, outcome: Outcome, data: bytes, identity: PatientIdentity, label: str) -> FileResult:
        """Write a de-identified instance to the output (or quarantine) tree and record it."""
        row = self.place(outcome, data, identity)
        sink, other = (self.quarantine, self.output) if outcome.quarantine else (self.output, self.quarantine)
        change = sink.write(row.path, data)
        if other.remove(row.path):  # it moved (a reviewer's decision, a new profile): no stale copy
            update_manifest(other.root / (MANIFEST if other is self.output else QUARANTINE_MANIFEST), {},
                            drop=[row.path])
        self.record_placed(outcome, identity, row)
        return FileResult(label, "quarantined" if outcome.quarantine else change, row.path,
                          outcome.quarantine or "", row, change)

    def place(self, outcome: Outcome, data: bytes, identity: PatientIdentity) -> ManifestRow:
        """Where a de-identified instance goes in its tree (``row.path``) and its manifest row;
        nothing is written (the study job writes a whole study at once)."""
        keys = outcome.keys
        relative = relative_path(identity.pseudonym, keys.study_date, keys.new_study_uid,
                                 keys.series_number, keys.modality, keys.new_sop_uid)
        return ManifestRow(relative, identity.pseudonym, keys.new_study_uid, keys.new_series_uid,
                           keys.new_sop_uid, keys.sop_class_uid, keys.modality, keys.study_date,
                           keys.series_number, hashlib.sha256(data).hexdigest(),
                           "quarantined" if outcome.quarantine else "written", outcome.quarantine or "")

    def record_placed(self, outcome: Outcome, identity: PatientIdentity, row: ManifestRow) -> None:
        """Record an instance placed at ``row.path`` in the store (with what the pixel stage
        found in it); buffered until :meth:`flush`."""
        self._record(outcome, identity, row.path, row.sha256)
        read, found = self._findings.pop(outcome.keys.new_sop_uid, (False, None))
        if found is not None:
            self.store.record_pixel_findings(found)
        elif read:
            self._clean.append(outcome.keys.original_sop_uid)

    def process(self, path: Path, label: str, known: Identifiers | None = None,
                reading: Reading | None = None) -> FileResult:
        """De-identify ``path`` and deliver it; never raises for a bad file. ``known``: the
        identifying values of its study and patient collected by the run's pre-pass;
        ``reading``: the run's decision for the pixel stage."""
        try:
            outcome, data, identity = self.deidentify_file(path, label, known, reading, changes=False)
            result = self.deliver(outcome, data, identity, label)
            escalate = bool(outcome.pixel_boxes) or (outcome.quarantine or "").startswith("pixels:")
            return replace(result, text_found=True) if escalate else result
        except StoreError:
            raise
        except (AnonlibError, RecursionError, MemoryError) as exc:
            return FileResult(label, "rejected", reason=rejection_reason(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
            log.warning("unexpected %s while processing a file", type(exc).__name__)
            return FileResult(label, "rejected", reason=rejection_reason(exc))

    def _record(self, outcome: Outcome, identity: PatientIdentity, relative: str, digest: str) -> None:
        keys = outcome.keys
        if keys.original_study_uid not in self._studies:
            self.store.record_study(StudyRecord(keys.original_study_uid, keys.original_accession,
                                                identity.pseudonym, keys.new_study_uid, keys.study_date))
            self._studies.add(keys.original_study_uid)
        self._uids.update(outcome.uids)
        self._pending.append(InstanceRecord(
            keys.original_sop_uid, keys.new_sop_uid, keys.original_study_uid,
            "quarantined" if outcome.quarantine else "written", relative,
            outcome.quarantine or "", digest))
        if len(self._pending) >= self.BATCH:
            self.flush()
