"""Rules every store follows: policy validation, random pseudonyms, shifts and secrets, and the
checks on records that the SQL schema also enforces (so the in-memory fake fails the same way).

Messages name fields, never their values: keys and records carry PHI.
"""

from __future__ import annotations

import re
import secrets

from anonlib.errors import ConfigError, StoreError
from anonlib.store.base import InstanceRecord, PatientKey, PseudonymPolicy, StudyRecord

__all__ = [
    "CROCKFORD_ALPHABET",
    "DEFAULT_POLICY",
    "INSTANCE_STATUSES",
    "MAX_PSEUDONYM_ATTEMPTS",
    "PSEUDONYM_RANDOM_CHARS",
    "SECRET_BYTES",
    "check_instance",
    "check_key",
    "check_study",
    "new_date_shift",
    "new_pseudonym",
    "new_secret",
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
