"""The two lock strings every study job carries, and what they mean.

* ``queueing_lock`` = ``study:<node>:<orthanc study id>``: at most one job per study waits in
  the queue (procrastinate refuses a second ``todo`` job with the same queueing lock; anonlib
  turns that refusal into "already queued").
* ``lock`` = ``patient:<digest>``: jobs with the same lock never run at the same time and run
  in the order they were queued, so two studies of one new patient never race for the
  pseudonym. Lock strings are shown in job listings, so the digest is a keyed HMAC-SHA256 of the
  Orthanc patient ID under the project secret, truncated: it tells nothing without the secret.

Orthanc study and patient IDs are SHA-1 digests of DICOM identifiers; study IDs include the
Study Instance UID (high entropy) and appear as such in listings. Patient IDs hash only the
PatientID, which is guessable by brute force, hence the key.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["PATIENT_LOCK_HEX", "patient_lock", "study_queueing_lock", "parse_queueing_lock"]

PATIENT_LOCK_HEX = 24
"""Hex digits kept from the HMAC (96 bits: collisions only over-serialize, never corrupt)."""

_STUDY_PREFIX = "study:"


def study_queueing_lock(node: str, study_id: str) -> str:
    """``study:<node>:<study_id>`` (one waiting job per study of a node)."""
    if not node or ":" in node or not study_id:
        raise ValueError("node must be a non-empty name without ':' and study_id non-empty")
    return f"{_STUDY_PREFIX}{node}:{study_id}"


def parse_queueing_lock(lock: str | None) -> tuple[str, str] | None:
    """``(node, study_id)`` from a study queueing lock, ``None`` for anything else."""
    if not lock or not lock.startswith(_STUDY_PREFIX):
        return None
    node, sep, study_id = lock[len(_STUDY_PREFIX):].partition(":")
    return (node, study_id) if sep and node and study_id else None


def patient_lock(secret: bytes, orthanc_patient_id: str) -> str:
    """``patient:<hex>``: HMAC-SHA256(secret, Orthanc patient ID), truncated; PHI-free."""
    if len(secret) < 16:
        raise ValueError("the lock key must be the project secret (at least 16 bytes)")
    if not orthanc_patient_id:
        raise ValueError("orthanc_patient_id must not be empty")
    digest = hmac.new(secret, b"anonlib-patient-lock\x00" + orthanc_patient_id.encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return f"patient:{digest[:PATIENT_LOCK_HEX]}"
