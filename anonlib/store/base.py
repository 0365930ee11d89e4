"""The lookup store's interface: what the pipeline asks of the re-identification key.

The store maps each original patient (PatientID + IssuerOfPatientID) to one pseudonym and one
date shift, forever; it holds the project secret that keys the UID mapping; it records which
studies and instances were processed. It is the re-identification key, so it lives in the
identified zone and never inside an output folder.

Implementations: :class:`anonlib.store.sql.SqlStore` (PostgreSQL, SQLite) and
:class:`anonlib.store.memory.MemoryStore` (unit-test fake with the same behaviour).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

__all__ = [
    "PatientKey",
    "PatientIdentity",
    "PseudonymPolicy",
    "StudyRecord",
    "InstanceRecord",
    "DeliveryRecord",
    "PixelBox",
    "Region",
    "PixelFindings",
    "ReviewDecision",
    "Original",
    "AccessEntry",
    "ACCESS_ACTIONS",
    "FINDING_OUTCOMES",
    "REVIEW_DECISIONS",
    "LookupStore",
]

FINDING_OUTCOMES = ("masked", "quarantined")
"""What the pixel stage did with an instance in which it found (or could not look for) text."""

ACCESS_ACTIONS = ("lookup", "export")
"""What an access-log entry records: one re-identification lookup, or one mapping export."""

REVIEW_DECISIONS = ("release", "mask", "reject")
"""What a reviewer may decide about an instance the pixel stage masked or quarantined."""


@dataclass(frozen=True)
class PatientKey:
    """Who a patient is in the source system. ``patient_id`` is never empty here: the engine
    derives a substitute key for instances without a PatientID (see ``engine.subject``)."""

    patient_id: str
    issuer: str = ""


@dataclass(frozen=True)
class PatientIdentity:
    """What the research copy knows of a patient: a pseudonym and a date shift in days (never 0)."""

    pseudonym: str
    date_shift_days: int


@dataclass(frozen=True)
class PseudonymPolicy:
    """How new patients are given a pseudonym and a date shift.

    Pseudonyms are ``prefix`` + random characters, never derived from the original
    (45 CFR 164.514(c)). Shifts are drawn uniformly from [shift_min_days, shift_max_days],
    excluding 0.
    """

    prefix: str = "ANON"
    shift_min_days: int = -3652
    shift_max_days: int = -366


@dataclass(frozen=True)
class StudyRecord:
    """One processed study: the original keys and what they became."""

    original_study_uid: str
    original_accession: str
    pseudonym: str
    new_study_uid: str
    shifted_study_date: str  # "" when the study has no (valid) date


@dataclass(frozen=True)
class InstanceRecord:
    """One processed instance. ``status`` is ``written`` or ``quarantined``; ``output`` is the
    PHI-free path relative to the output root (empty when nothing was written); ``reason`` is a
    PHI-free explanation for quarantine; ``sha256`` is the digest of the bytes written."""

    original_sop_uid: str
    new_sop_uid: str
    original_study_uid: str
    status: str
    output: str = ""
    reason: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class DeliveryRecord:
    """What became of a study taken from an Orthanc node. ``last_update`` and ``instances``
    describe the study on the node when its delivery was verified (``done``) or ``held``; a
    study whose LastUpdate or instance count changed since is processed again."""

    node: str
    orthanc_study_id: str
    last_update: str
    instances: int
    released: int
    quarantined: int
    new_study_uid: str
    status: str  # done | held
    reason: str = ""  # PHI-free
    runs: int = 1  # how many times the study was processed (set by the store)


@dataclass(frozen=True)
class Region:
    """A rectangle of one frame in the frame's own pixel coordinates (``x``/``y`` the top-left
    corner, ``frame`` 0-based): where a reviewer asks for more masking."""

    frame: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class PixelBox:
    """Where the pixel stage found text, as :class:`Region` plus the detector's ``score``. Never
    the text: recognized text is PHI and has no field here."""

    frame: int
    x: int
    y: int
    width: int
    height: int
    score: float = 1.0


@dataclass(frozen=True)
class PixelFindings:
    """What the pixel stage found in one instance and did about it. ``outcome`` is ``masked``
    (the boxes were masked, the instance released) or ``quarantined`` (``reason``, PHI-free,
    starts with ``pixels:``). It is the machine's verdict: a reviewer's decision
    (:class:`ReviewDecision`) is kept apart and never changes it."""

    original_sop_uid: str
    new_sop_uid: str
    outcome: str
    reason: str = ""
    boxes: tuple[PixelBox, ...] = ()


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's decision about one instance the pixel stage masked or quarantined, applied
    whenever the instance is processed again: ``release`` (without quarantine; the boxes the
    pixel stage finds are still masked), ``mask`` (mask ``regions`` too, then release) or
    ``reject`` (quarantine). ``reviewer`` is free text; ``decided_at`` (UTC) is set by the store
    when the decision is recorded without one."""

    original_sop_uid: str
    decision: str
    regions: tuple[Region, ...] = ()
    reviewer: str = ""
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Original:
    """What a de-identified value stood for, read from the store (PHI: for authorised eyes
    only). ``kind`` is ``patient`` (``value`` the original PatientID, ``issuer`` its
    IssuerOfPatientID), ``study``, ``instance`` or ``uid`` (any other UID: series, frame of
    reference, a reference; ``value`` the original UID)."""

    kind: str
    value: str
    issuer: str = ""


@dataclass(frozen=True)
class AccessEntry:
    """One use of the re-identification key, as the access log keeps it: who (``accessor``),
    when (``accessed_at``, UTC; set by the store when ``None``), what (``action``: ``lookup``
    or ``export``; ``result``: the kind found, ``not found``, or what was exported), how many
    entries it revealed, and ``digest``: the queried value keyed by the project secret (empty
    for an export). Never a value, neither the query nor the answer."""

    accessor: str
    action: str
    result: str = ""
    entries: int = 0
    digest: str = ""
    accessed_at: datetime | None = None


class ClosingMixin:
    """``with store: ...`` closes the store on exit (shared by the implementations)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class LookupStore(Protocol):
    """Behaviour every store implementation provides (and the contract tests check)."""

    def secret(self) -> bytes:
        """The project secret (32 bytes), created once on first use and never changed."""

    def find_secret(self) -> bytes | None:
        """The project secret if it exists; never creates it (used by dry runs)."""

    def patient(self, key: PatientKey) -> PatientIdentity:
        """Get or create the identity of ``key``. Race-free: concurrent callers, in any number
        of processes, all receive the same identity for the same key."""

    def find_patient(self, key: PatientKey) -> PatientIdentity | None:
        """The identity of ``key`` if it exists; never creates one (used by dry runs)."""

    def patients(self) -> Iterator[tuple[PatientKey, PatientIdentity]]:
        """Every patient in the store."""

    def record_study(self, record: StudyRecord) -> None:
        """Insert or update the study keyed by ``original_study_uid``."""

    def study(self, original_study_uid: str) -> StudyRecord | None:
        """The record of one processed study, if any."""

    def record_instance(self, record: InstanceRecord) -> None:
        """Insert or update the instance keyed by ``original_sop_uid``."""

    def record_instances(self, records: Sequence[InstanceRecord]) -> None:
        """Insert or update many instances in one transaction."""

    def record_delivery(self, record: DeliveryRecord) -> None:
        """Insert or update the delivery keyed by (node, orthanc_study_id)."""

    def deliveries(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """The deliveries from ``node`` (all, or those of ``study_ids``), keyed by Orthanc study ID."""

    def instance(self, original_sop_uid: str) -> InstanceRecord | None:
        """The record of one processed instance, if any."""

    def instances(self) -> Iterator[InstanceRecord]:
        """Every processed instance."""

    def record_pixel_findings(self, findings: PixelFindings) -> None:
        """Insert or replace the pixel findings of the instance ``findings.original_sop_uid``."""

    def discard_pixel_findings(self, *original_sop_uids: str) -> None:
        """Forget the pixel findings of these instances (read again, nothing to report)."""

    def pixel_findings(self, outcome: str | None = None) -> list[PixelFindings]:
        """The pixel findings of every instance (or of those with ``outcome``), ordered by
        original SOP Instance UID."""

    def record_review(self, decision: ReviewDecision) -> None:
        """Insert or replace the decision about ``decision.original_sop_uid`` (the latest wins)."""

    def review(self, original_sop_uid: str) -> ReviewDecision | None:
        """The decision about one instance, if any."""

    def reviews(self) -> list[ReviewDecision]:
        """Every decision, ordered by original SOP Instance UID."""

    def original_patient(self, pseudonym: str) -> Original | None:
        """The original patient of ``pseudonym``, if the store has one (kind ``patient``)."""

    def record_uids(self, pairs: Mapping[str, str]) -> None:
        """Record that each original UID of ``pairs`` became its new UID (a pair already
        recorded is left as it is: the mapping never changes)."""

    def original_uid(self, new_uid: str) -> Original | None:
        """The original UID that became ``new_uid``, if the store recorded it (kind ``study``,
        ``instance`` or ``uid``)."""

    def uid_map(self) -> list[tuple[str, str]]:
        """Every recorded (original UID, new UID) pair, once each: studies, instances, then the
        other UIDs, each ordered by original UID (:func:`~anonlib.store.rules.merge_uid_maps`)."""

    def record_access(self, entry: AccessEntry) -> None:
        """Append ``entry`` to the access log (never updated, never deleted by anonlib)."""

    def access_log(self, limit: int | None = None) -> list[AccessEntry]:
        """The access log, newest first (the ``limit`` newest entries)."""

    def close(self) -> None:
        """Release connections."""
