"""What a study job needs in a worker process, built once per process.

:class:`Runtime` bundles the constellation description, the study-job function, a reader per
source node and the outcome log. :func:`current` builds it on first use from
:func:`~anonlib.constellation.info.load_info` (``$ANONLIB_HOME/constellation.json``, or the
environment when that file is absent, as in docker; also importable from here);
:func:`install` replaces it (the worker does so at start, tests do so with fakes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from anonlib.constellation.info import ConstellationInfo, load_info
from anonlib.jobs.intake import HttpSource, StudySource, StudyState
from anonlib.store.base import DeliveryRecord

__all__ = ["OutcomeLog", "Runtime", "current", "install", "is_delivered", "load_info"]

DELIVERED = ("done", "held")


def is_delivered(state: StudyState, record: DeliveryRecord | None) -> bool:
    """The study was delivered (or held) exactly as it is now: same LastUpdate and, when
    known, the same instance count."""
    return (record is not None and record.status in DELIVERED and record.last_update == state.last_update
            and (state.instances is None or record.instances == state.instances))


class OutcomeLog(Protocol):
    def record_outcome(self, job_id: int, node: str, study_id: str, attempt: int, state: str, *,
                       last_update: str = "", instances: int = 0, error_class: str = "",
                       error_message: str = "") -> None:
        """Insert or replace the outcome of a job's latest attempt."""

    def record_rejections(self, node: str, study_id: str, last_update: str,
                          rejections: Sequence[tuple[str, str]]) -> None:
        """Replace the rejected instances recorded for a study: (instance ID, PHI-free reason)."""


Process = Callable[..., Any]  # process_study(info, study_id, node=..., force=...) -> StudyResult
Requeue = Callable[..., Any]  # requeue(node, study_id, patient_id, force=..., delay=...)


@dataclass
class Runtime:
    """Everything the task body uses; every part can be replaced by a fake."""

    info: Any  # ConstellationInfo (``Any`` so that fakes fit)
    process: Process
    source: Callable[[str], StudySource]
    outcomes: OutcomeLog
    closers: list[Callable[[], None]] = field(default_factory=list)
    #: queues a study again for later (a study not stable yet); None: the task raises NotStable
    #: and the retry strategy takes it again
    requeue: Requeue | None = None

    @classmethod
    def from_info(cls, info: ConstellationInfo) -> Runtime:
        """The real thing: HTTP readers, the study job, anonlib's job tables."""
        from anonlib.jobs.db import JobsDb

        db = JobsDb(info.db_url)
        sources: dict[str, HttpSource] = {}
        lock = threading.Lock()

        def source(node: str) -> StudySource:
            with lock:
                if node not in sources:
                    sources[node] = HttpSource(info.node(node))
                return sources[node]

        def process(info_: Any, study_id: str, *, node: str, force: bool = False) -> Any:
            from anonlib.studyjob import process_study

            return process_study(info_, study_id, node=node, force=force)

        queues: list[Any] = []

        def requeue(node: str, study_id: str, patient_id: str, *, force: bool = False, delay: float = 0) -> Any:
            from anonlib.jobs.enqueue import open_study_queue

            with lock:
                if not queues:
                    queues.append(open_study_queue(info.db_url))
                queue = queues[0]
            return queue.defer(node, study_id, patient_id, force=force, delay=delay)

        def close() -> None:
            for reader in sources.values():
                reader.close()
            for queue in queues:
                queue.app.close()
            db.close()

        return cls(info=info, process=process, source=source, outcomes=db, closers=[close], requeue=requeue)

    def close(self) -> None:
        for closer in self.closers:
            closer()


_current: Runtime | None = None
_current_lock = threading.Lock()


def install(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's runtime (``None``: build it again on next use); returns
    the previous one."""
    global _current
    with _current_lock:
        previous, _current = _current, runtime
    return previous


def current() -> Runtime:
    """The process's runtime, built from :func:`load_info` on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime.from_info(load_info())
        return _current
