"""When a failed study job is tried again: only for transient errors, with exponential backoff.

A :class:`~anonlib.studyjob.TransientError` (or an Orthanc node that cannot be reached while the
job reads the study's state) is retried after ``base * 2**attempts`` seconds, capped, up to
``max_attempts`` runs in all; then the job fails and keeps its error. A
:class:`~anonlib.studyjob.StudyJobError` — or any other exception — fails the job at once. A
node that dropped the connection while storing an instance
(:class:`~anonlib.orthanc.client.NodeDropped`: it may have crashed on it), or that accepted an
upload and does not hold what it accepted (:class:`~anonlib.orthanc.client.UploadNotKept`: a
malformed UID, a filter dropping it), is tried again once, never more, and such a job is not
resumed automatically: a poison instance must not crash the research node again and again, nor
be sent eight times to a node that keeps none of it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.jobs import Job

from anonlib.errors import ConfigError

__all__ = ["StudyRetry", "is_transient"]


def is_transient(exc: BaseException) -> bool:
    """True for the errors a later attempt may not meet (see the module docstring)."""
    from anonlib.jobs.intake import OrthancUnavailable
    from anonlib.studyjob import TransientError

    return isinstance(exc, TransientError | OrthancUnavailable)


#: Runs in all for a job whose node dropped the connection while storing an instance, or did
#: not keep what it accepted.
DROPPED_ATTEMPTS = 2


def _dropped(exc: BaseException) -> bool:
    from anonlib.orthanc.client import NodeDropped, UploadNotKept

    return isinstance(exc, NodeDropped | UploadNotKept)


@dataclass(frozen=True)
class StudyRetry(BaseRetryStrategy):
    """Exponential backoff on transient errors: ``min(cap, base * 2**attempts)`` seconds."""

    max_attempts: int = 8
    base_seconds: float = 5.0
    cap_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_seconds < 0 or self.cap_seconds < self.base_seconds:
            raise ConfigError("retry: max_attempts >= 1 and 0 <= base_seconds <= cap_seconds")

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next run, after ``attempts`` failed runs (0-based)."""
        return float(min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts)))

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if not is_transient(exception):
            return None
        if job.attempts + 1 >= self.max_attempts:  # job.attempts counts the earlier runs
            return None
        if _dropped(exception) and job.attempts + 1 >= DROPPED_ATTEMPTS:
            return None
        return RetryDecision(retry_at=datetime.datetime.now(datetime.UTC)
                             + datetime.timedelta(seconds=self.delay(job.attempts)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StudyRetry:
        """``ANONLIB_RETRY_MAX_ATTEMPTS`` (8), ``ANONLIB_RETRY_BASE_SECONDS`` (5),
        ``ANONLIB_RETRY_CAP_SECONDS`` (600)."""
        env = os.environ if env is None else env
        try:
            return cls(
                max_attempts=int(env.get("ANONLIB_RETRY_MAX_ATTEMPTS") or 8),
                base_seconds=float(env.get("ANONLIB_RETRY_BASE_SECONDS") or 5.0),
                cap_seconds=float(env.get("ANONLIB_RETRY_CAP_SECONDS") or 600.0),
            )
        except ValueError:
            raise ConfigError("ANONLIB_RETRY_* must be numbers") from None
