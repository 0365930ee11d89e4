"""Is everything done? What failed? Retry it. (Used by ``anonlib jobs`` and the plugin's routes.)

:func:`check` answers "done" only when three things hold at once: no study of a source node is
still waiting to become stable, no study job is queued or running, and every stable study has a
delivery record matching its current LastUpdate (and no job that failed because a node was
down waits to be resumed, :mod:`anonlib.jobs.resume`). The third matters: a study that just became
stable but whose event is not processed yet has no job, yet is not done. "Done" is not
"delivered": a study the audit gate held has a record too, and is listed in
:attr:`QueueStatus.held` (see :mod:`anonlib.jobs.held`); one delivered without some instances
in :attr:`QueueStatus.partial` (see :mod:`anonlib.jobs.partial`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from anonlib.jobs.db import JobRow, JobsDb
from anonlib.jobs.enqueue import Enqueued, StudyQueue
from anonlib.jobs.intake import HttpSource
from anonlib.jobs.resume import TRANSIENT_ERRORS
from anonlib.jobs.runtime import is_delivered

__all__ = ["QueueStatus", "RESUME_GRACE", "check", "retry_job", "wait"]

#: Seconds a transiently failed job is expected to be resumed within once every node answers
#: (a worker looks at the nodes every few seconds).
RESUME_GRACE = 20.0


@dataclass
class QueueStatus:
    """A snapshot of the queue and the source nodes (Orthanc IDs only)."""

    counts: dict[str, int] = field(default_factory=dict)
    unstable: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    failures: list[JobRow] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # stable studies the audit gate holds as they are
    partial: list[str] = field(default_factory=list)  # delivered without some instances (anonlib.jobs.partial)
    #: studies whose job failed on a transient error that a worker will resume (a node is down,
    #: or the failure is younger than RESUME_GRACE seconds): not settled yet
    resuming: list[str] = field(default_factory=list)

    @property
    def active(self) -> int:
        return self.counts.get("todo", 0) + self.counts.get("doing", 0)

    @property
    def settled(self) -> bool:
        """Nothing more will happen by itself: no unstable study, no active job, and every
        undelivered study is explained by a failed job."""
        failed = {f.study_id for f in self.failures}
        return not self.unstable and self.active == 0 and not self.resuming and set(self.undelivered) <= failed

    @property
    def done(self) -> bool:
        return self.settled and not self.failures and not self.undelivered


def check(db: JobsDb, sources: Mapping[str, HttpSource], down: Callable[[], set[str]] | None = None) -> QueueStatus:
    """One snapshot (see the module docstring); ``down`` names the nodes that do not answer
    now (a transient failure is then still to be resumed)."""
    status = QueueStatus(counts=db.counts())
    for node, source in sources.items():
        records = db.deliveries(node)
        for state in source.studies():
            if not state.stable:
                status.unstable.append(state.study_id)
                continue
            record = records.get(state.study_id)
            if not is_delivered(state, record):  # studies() has no instance counts
                status.undelivered.append(state.study_id)
            elif record is not None and record.status == "held":
                status.held.append(state.study_id)
            elif record is not None and record.reason.startswith("partial:"):
                status.partial.append(state.study_id)
    status.failures = db.jobs(outstanding_failures=True, limit=None)
    transient = [f for f in status.failures if f.error_class in TRANSIENT_ERRORS]
    if transient and down is not None:
        nodes_down = down()
        status.resuming = [f.study_id for f in transient if nodes_down or f.outcome_age < RESUME_GRACE]
    return status


def wait(db: JobsDb, sources: Mapping[str, HttpSource], timeout: float, poll: float = 1.0,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep,
         down: Callable[[], set[str]] | None = None) -> tuple[bool, QueueStatus]:
    """Poll :func:`check` until settled or ``timeout`` seconds pass. ``(True, status)`` when
    everything is done; ``(False, status)`` on timeout or when jobs failed (for good: a job
    that failed because a node is down is waited for, see :mod:`anonlib.jobs.resume`)."""
    deadline = clock() + timeout
    while True:
        status = check(db, sources, down)
        if status.settled:
            return status.done, status
        if clock() >= deadline:
            return False, status
        sleep(min(poll, max(0.0, deadline - clock())))


def retry_job(db: JobsDb, queue: StudyQueue, sources: Mapping[str, HttpSource], job_id: int) -> Enqueued | None:
    """Retry a failed (or aborted) job: a new job for the same study, with a fresh attempt
    budget (the failed job stays in the history with its error). ``None`` if the job is not a
    failed study job or its study is gone."""
    job = db.job(job_id)
    if job is None or job.status not in ("failed", "aborted") or job.node not in sources:
        return None
    state = sources[job.node].study(job.study_id)
    if state is None:
        return None
    return queue.defer(job.node, job.study_id, state.patient_id)
