"""Rules every store follows: policy validation, random pseudonyms, shifts and secrets, and the
checks on records that the SQL schema also enforces (so the in-memory fake fails the same way).

Messages name fields, never their values: keys and records carry PHI.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from anonlib.errors import ConfigError, StoreError
from anonlib.store.base import (
    ACCESS_ACTIONS,
    FINDING_OUTCOMES,
    REVIEW_DECISIONS,
    AccessEntry,
    InstanceRecord,
    PatientKey,
    PixelBox,
    PixelFindings,
    PseudonymPolicy,
    Region,
    ReviewDecision,
    StudyRecord,
)

__all__ = [
    "CROCKFORD_ALPHABET",
    "DEFAULT_POLICY",
    "INSTANCE_STATUSES",
    "MAX_PSEUDONYM_ATTEMPTS",
    "PSEUDONYM_RANDOM_CHARS",
    "SECRET_BYTES",
    "check_access",
    "merge_uid_maps",
    "check_findings",
    "check_instance",
    "check_key",
    "check_review",
    "check_study",
    "new_date_shift",
    "new_pseudonym",
    "new_secret",
    "stamped",
    "validate_policy",
]

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O, U, so pseudonyms survive being read aloud or retyped."""

PSEUDONYM_RANDOM_CHARS = 8
"""Random characters after the prefix: 32**8 (about 1.1e12) possible pseudonyms."""

DEFAULT_POLICY = PseudonymPolicy()
"""The policy stores use when given none (prefix ``ANON``, shifts of 1 to 10 years back)."""

SECRET_BYTES = 32
INSTANCE_STATUSES = frozenset({"written", "quarantined"})
MAX_PSEUDONYM_ATTEMPTS = 16
"""Fresh pseudonyms tried when the random one is already taken before giving up."""

_PREFIX = re.compile(r"[A-Za-z0-9_.-]{0,32}")


def validate_policy(policy: PseudonymPolicy) -> None:
    """Raise :class:`ConfigError` unless ``policy`` can produce valid pseudonyms and shifts.

    The prefix must be at most 32 characters from ``A-Z a-z 0-9 _ . -`` (safe in PatientID,
    PatientName and file names); the shift range must satisfy min <= max and contain a
    non-zero value.
    """
    if not isinstance(policy.prefix, str) or not _PREFIX.fullmatch(policy.prefix):
        raise ConfigError(
            "pseudonym prefix must be at most 32 characters from A-Z, a-z, 0-9, '_', '.', '-'"
        )
    low, high = policy.shift_min_days, policy.shift_max_days
    if not isinstance(low, int) or not isinstance(high, int):
        raise ConfigError("date shift limits must be whole numbers of days")
    if low > high:
        raise ConfigError(f"date shift minimum ({low}) is greater than its maximum ({high})")
    if low == high == 0:
        raise ConfigError("date shift range must contain a non-zero number of days")


def new_pseudonym(policy: PseudonymPolicy) -> str:
    """``policy.prefix`` followed by random Crockford base32 characters (never derived from
    any original value)."""
    chars = "".join(secrets.choice(CROCKFORD_ALPHABET) for _ in range(PSEUDONYM_RANDOM_CHARS))
    return policy.prefix + chars


def new_date_shift(policy: PseudonymPolicy) -> int:
    """A shift drawn uniformly from [shift_min_days, shift_max_days] without 0."""
    low, high = policy.shift_min_days, policy.shift_max_days
    spans_zero = low <= 0 <= high
    shift = low + secrets.randbelow(high - low + 1 - int(spans_zero))
    if spans_zero and shift >= 0:
        shift += 1
    return shift


def new_secret() -> bytes:
    """A fresh project secret."""
    return secrets.token_bytes(SECRET_BYTES)


def check_key(key: PatientKey) -> None:
    """Raise :class:`StoreError` unless ``key`` is a usable patient key."""
    if not isinstance(key.patient_id, str) or not isinstance(key.issuer, str):
        raise StoreError("patient key fields must be strings")
    if not key.patient_id:
        raise StoreError("patient key has an empty PatientID; the engine must derive one")


def check_study(record: StudyRecord) -> None:
    """Raise :class:`StoreError` unless ``record`` has its keys."""
    if not record.original_study_uid or not record.new_study_uid or not record.pseudonym:
        raise StoreError("study record needs original_study_uid, new_study_uid and pseudonym")


def check_instance(record: InstanceRecord) -> None:
    """Raise :class:`StoreError` unless ``record`` has its keys and a known status."""
    if not record.original_sop_uid or not record.new_sop_uid:
        raise StoreError("instance record needs original_sop_uid and new_sop_uid")
    if record.status not in INSTANCE_STATUSES:
        raise StoreError(
            f"instance status must be one of {sorted(INSTANCE_STATUSES)}, not {record.status!r}"
        )


def _check_rectangle(box: Region | PixelBox, what: str) -> None:
    values = (box.frame, box.x, box.y, box.width, box.height)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise StoreError(f"{what}: frame, x, y, width and height must be whole numbers")
    if min(box.frame, box.x, box.y) < 0 or min(box.width, box.height) <= 0:
        raise StoreError(f"{what}: frame, x and y must be >= 0, width and height > 0")


def check_findings(findings: PixelFindings) -> None:
    """Raise :class:`StoreError` unless ``findings`` has its keys, a known outcome and valid
    boxes (whole-pixel rectangles with a finite score)."""
    if not findings.original_sop_uid or not findings.new_sop_uid:
        raise StoreError("pixel findings need original_sop_uid and new_sop_uid")
    if findings.outcome not in FINDING_OUTCOMES:
        raise StoreError(f"pixel findings outcome must be one of {list(FINDING_OUTCOMES)}, not {findings.outcome!r}")
    for box in findings.boxes:
        if not isinstance(box, PixelBox):
            raise StoreError("pixel findings boxes must be PixelBox (frame, x, y, width, height, score)")
        _check_rectangle(box, "pixel box")
        if not isinstance(box.score, (int, float)) or not math.isfinite(box.score):
            raise StoreError("pixel box: score must be a finite number")


def check_review(decision: ReviewDecision) -> None:
    """Raise :class:`StoreError` unless ``decision`` names an instance and a known decision,
    with regions exactly when it is ``mask``."""
    if not decision.original_sop_uid:
        raise StoreError("review decision needs original_sop_uid")
    if decision.decision not in REVIEW_DECISIONS:
        raise StoreError(f"review decision must be one of {list(REVIEW_DECISIONS)}, not {decision.decision!r}")
    if decision.decision == "mask" and not decision.regions:
        raise StoreError("review decision mask needs at least one region to mask")
    if decision.decision != "mask" and decision.regions:
        raise StoreError(f"review decision {decision.decision} takes no regions (only mask does)")
    for region in decision.regions:
        if not isinstance(region, Region):
            raise StoreError("review regions must be Region (frame, x, y, width, height)")
        _check_rectangle(region, "review region")
    if not isinstance(decision.reviewer, str):
        raise StoreError("review decision reviewer must be text")


def stamped(decided_at: datetime | None) -> datetime:
    """``decided_at`` as an aware UTC time, now when ``None``; a naive time is taken as UTC
    (SQLite returns them so)."""
    if decided_at is None:
        return datetime.now(UTC)
    if decided_at.tzinfo is None:
        return decided_at.replace(tzinfo=UTC)
    return decided_at.astimezone(UTC)


def check_access(entry: AccessEntry) -> None:
    """Raise :class:`StoreError` unless ``entry`` names who, a known action and a count >= 0
    (what the access log's schema enforces)."""
    if not entry.accessor.strip():
        raise StoreError("could not record access: it needs who accessed the key")
    if entry.action not in ACCESS_ACTIONS:
        raise StoreError(f"could not record access: action must be one of {', '.join(ACCESS_ACTIONS)}")
    if entry.entries < 0:
        raise StoreError("could not record access: entries must not be negative")


def merge_uid_maps(studies: Iterable[tuple[str, str]], instances: Iterable[tuple[str, str]],
                   others: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(original, new) pairs of the study, instance and UID tables, each original once: studies,
    then instances, then the other UIDs, each ordered by original UID (a store recorded before
    ``anonlib_uid`` existed still gives its studies and instances)."""
    merged: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pairs in (studies, instances, others):
        for original, new in sorted(pairs):
            if original not in seen:
                seen.add(original)
                merged.append((original, new))
    return merged
