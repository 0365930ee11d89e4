"""An in-memory lookup store with the same behaviour as :class:`anonlib.store.sql.SqlStore`.

For unit tests of other modules. Thread-safe. Several :class:`MemoryStore` objects built on one
:class:`MemoryData` behave like several connections to one database (reopening, workers).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from anonlib.errors import StoreError
from anonlib.store import rules
from anonlib.store.base import (
    AccessEntry,
    ClosingMixin,
    DeliveryRecord,
    InstanceRecord,
    Original,
    PatientIdentity,
    PatientKey,
    PixelFindings,
    PseudonymPolicy,
    ReviewDecision,
    StudyRecord,
)

__all__ = ["MemoryData", "MemoryStore"]


@dataclass
class MemoryData:
    """What a database would hold; share one between stores to simulate reopening."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    secret: bytes | None = None
    patients: dict[PatientKey, PatientIdentity] = field(default_factory=dict)
    pseudonyms: set[str] = field(default_factory=set)
    studies: dict[str, StudyRecord] = field(default_factory=dict)
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], DeliveryRecord] = field(default_factory=dict)
    findings: dict[str, PixelFindings] = field(default_factory=dict)
    reviews: dict[str, ReviewDecision] = field(default_factory=dict)
    access: list[AccessEntry] = field(default_factory=list)
    uids: dict[str, str] = field(default_factory=dict)


class MemoryStore(ClosingMixin):
    """In-memory :class:`~anonlib.store.base.LookupStore`.

    Raises :class:`~anonlib.errors.ConfigError` for an invalid ``policy`` and
    :class:`~anonlib.errors.StoreError` where the SQL store's constraints would fail.
    """

    def __init__(
        self, policy: PseudonymPolicy = rules.DEFAULT_POLICY, data: MemoryData | None = None
    ) -> None:
        rules.validate_policy(policy)
        self.policy = policy
        self.data = data if data is not None else MemoryData()
        self._closed = False

    def _open(self) -> MemoryData:
        if self._closed:
            raise StoreError("the lookup store is closed")
        return self.data

    def secret(self) -> bytes:
        """The project secret (32 bytes), created once on first use and never changed."""
        data = self._open()
        with data.lock:
            if data.secret is None:
                data.secret = rules.new_secret()
            return data.secret

    def find_secret(self) -> bytes | None:
        """The project secret if it exists; never creates it."""
        data = self._open()
        with data.lock:
            return data.secret

    def patient(self, key: PatientKey) -> PatientIdentity:
        """Get or create the identity of ``key``."""
        rules.check_key(key)
        data = self._open()
        with data.lock:
            found = data.patients.get(key)
            if found is not None:
                return found
            for _ in range(rules.MAX_PSEUDONYM_ATTEMPTS):
                pseudonym = rules.new_pseudonym(self.policy)
                if pseudonym not in data.pseudonyms:
                    break
            else:
                raise StoreError("could not create patient identity: no free pseudonym found")
            identity = PatientIdentity(pseudonym, rules.new_date_shift(self.policy))
            data.patients[key] = identity
            data.pseudonyms.add(pseudonym)
            return identity

    def find_patient(self, key: PatientKey) -> PatientIdentity | None:
        """The identity of ``key`` if it exists; never creates one."""
        rules.check_key(key)
        data = self._open()
        with data.lock:
            return data.patients.get(key)

    def patients(self) -> Iterator[tuple[PatientKey, PatientIdentity]]:
        """Every patient, in order of creation."""
        data = self._open()
        with data.lock:
            items = list(data.patients.items())
        return iter(items)

    def record_study(self, record: StudyRecord) -> None:
        """Insert or update the study keyed by ``original_study_uid``."""
        rules.check_study(record)
        data = self._open()
        with data.lock:
            if record.pseudonym not in data.pseudonyms:
                raise StoreError("could not record study: its pseudonym is not in the store")
            for other in data.studies.values():
                if (
                    other.new_study_uid == record.new_study_uid
                    and other.original_study_uid != record.original_study_uid
                ):
                    raise StoreError("could not record study: new_study_uid already used")
            data.studies[record.original_study_uid] = record

    def study(self, original_study_uid: str) -> StudyRecord | None:
        """The record of one processed study, if any."""
        data = self._open()
        with data.lock:
            return data.studies.get(original_study_uid)

    def record_instance(self, record: InstanceRecord) -> None:
        """Insert or update the instance keyed by ``original_sop_uid``."""
        self.record_instances([record])

    def record_instances(self, records: Sequence[InstanceRecord]) -> None:
        """Insert or update many instances at once."""
        for record in records:
            rules.check_instance(record)
        data = self._open()
        with data.lock:
            for record in records:
                data.instances[record.original_sop_uid] = record

    def instance(self, original_sop_uid: str) -> InstanceRecord | None:
        """The record of one processed instance, if any."""
        data = self._open()
        with data.lock:
            return data.instances.get(original_sop_uid)

    def instances(self) -> Iterator[InstanceRecord]:
        """Every processed instance, ordered by original SOP Instance UID."""
        data = self._open()
        with data.lock:
            items = sorted(data.instances.values(), key=lambda r: r.original_sop_uid)
        return iter(items)

    def record_delivery(self, record: DeliveryRecord) -> None:
        """Insert or update the delivery keyed by (node, orthanc_study_id)."""
        if record.status not in ("done", "held") or not record.node or not record.orthanc_study_id:
            raise StoreError("delivery record needs a node, a study ID and status done or held")
        data = self._open()
        key = (record.node, record.orthanc_study_id)
        with data.lock:
            previous = data.deliveries.get(key)
            data.deliveries[key] = replace(record, runs=previous.runs + 1 if previous else 1)

    def deliveries(self, node: str, study_ids: Sequence[str] | None = None) -> dict[str, DeliveryRecord]:
        """The deliveries from ``node`` (all, or those of ``study_ids``), keyed by Orthanc study ID."""
        wanted = None if study_ids is None else set(study_ids)
        data = self._open()
        with data.lock:
            return {study: r for (n, study), r in data.deliveries.items()
                    if n == node and (wanted is None or study in wanted)}

    def record_pixel_findings(self, findings: PixelFindings) -> None:
        """Insert or replace the pixel findings of ``findings.original_sop_uid``."""
        rules.check_findings(findings)
        data = self._open()
        with data.lock:
            data.findings[findings.original_sop_uid] = replace(findings, boxes=tuple(findings.boxes))

    def discard_pixel_findings(self, *original_sop_uids: str) -> None:
        """Forget the pixel findings of these instances."""
        data = self._open()
        with data.lock:
            for uid in original_sop_uids:
                data.findings.pop(uid, None)

    def pixel_findings(self, outcome: str | None = None) -> list[PixelFindings]:
        """Every instance's pixel findings (or those with ``outcome``), by original SOP UID."""
        data = self._open()
        with data.lock:
            found = [f for f in data.findings.values() if outcome is None or f.outcome == outcome]
        return sorted(found, key=lambda f: f.original_sop_uid)

    def record_review(self, decision: ReviewDecision) -> None:
        """Insert or replace the decision about ``decision.original_sop_uid``."""
        rules.check_review(decision)
        data = self._open()
        with data.lock:
            data.reviews[decision.original_sop_uid] = replace(
                decision, regions=tuple(decision.regions), decided_at=rules.stamped(decision.decided_at))

    def review(self, original_sop_uid: str) -> ReviewDecision | None:
        """The decision about one instance, if any."""
        data = self._open()
        with data.lock:
            return data.reviews.get(original_sop_uid)

    def reviews(self) -> list[ReviewDecision]:
        """Every decision, by original SOP Instance UID."""
        data = self._open()
        with data.lock:
            return sorted(data.reviews.values(), key=lambda d: d.original_sop_uid)

    def original_patient(self, pseudonym: str) -> Original | None:
        """The original patient of ``pseudonym``, if any."""
        data = self._open()
        with data.lock:
            for key, identity in data.patients.items():
                if identity.pseudonym == pseudonym:
                    return Original("patient", key.patient_id, key.issuer)
        return None

    def record_uids(self, pairs: Mapping[str, str]) -> None:
        """Record each (original, new) UID pair not yet recorded."""
        data = self._open()
        with data.lock:
            for original, new in pairs.items():
                data.uids.setdefault(original, new)

    def original_uid(self, new_uid: str) -> Original | None:
        """The original UID that became ``new_uid``: a study's, an instance's or another one."""
        data = self._open()
        with data.lock:
            for record in data.studies.values():
                if record.new_study_uid == new_uid:
                    return Original("study", record.original_study_uid)
            for original, new in data.uids.items():
                if new == new_uid:
                    return Original("instance" if original in data.instances else "uid", original)
            for inst in data.instances.values():
                if inst.new_sop_uid == new_uid:
                    return Original("instance", inst.original_sop_uid)
        return None

    def uid_map(self) -> list[tuple[str, str]]:
        """Every recorded (original UID, new UID) pair, once each."""
        data = self._open()
        with data.lock:
            studies = [(r.original_study_uid, r.new_study_uid) for r in data.studies.values()]
            instances = [(r.original_sop_uid, r.new_sop_uid) for r in data.instances.values()]
            others = list(data.uids.items())
        return rules.merge_uid_maps(studies, instances, others)

    def record_access(self, entry: AccessEntry) -> None:
        """Append ``entry`` to the access log."""
        rules.check_access(entry)
        data = self._open()
        with data.lock:
            data.access.append(replace(entry, accessed_at=rules.stamped(entry.accessed_at)))

    def access_log(self, limit: int | None = None) -> list[AccessEntry]:
        """The access log, newest first."""
        data = self._open()
        with data.lock:
            newest = data.access[::-1]
        return newest if limit is None else newest[:limit]

    def close(self) -> None:
        """Mark this store closed; the shared data stays for other stores."""
        self._closed = True
