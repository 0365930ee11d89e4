"""Putting studies on the queue: one study, every study of a patient, or a ``/tools/find`` query.

The plugin (STABLE_STUDY, REST), the CLI (batch) and the catch-up all go through
:class:`StudyQueue`, so automatic and batch work share one job system: one waiting job per study
(deferring a study that already waits is a no-op that reports the waiting job) and one running
job per patient at a time (see :mod:`anonlib.jobs.locks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from procrastinate import App
from procrastinate import exceptions as pq_exceptions

from anonlib.errors import ConfigError, StoreError
from anonlib.jobs.app import QUEUE, TASK_NAME
from anonlib.jobs.intake import StudySource
from anonlib.jobs.locks import patient_lock, study_queueing_lock

__all__ = ["Enqueued", "StudyQueue", "enqueue_patient", "enqueue_query", "enqueue_study", "open_queue_app",
           "open_study_queue", "read_secret"]


@dataclass(frozen=True)
class Enqueued:
    """The job a study is waiting in: ``created`` is False when it was already queued."""

    node: str
    study_id: str
    job_id: int | None
    created: bool


class StudyQueue:
    """Defers study jobs on a (synchronously opened) procrastinate ``app``; ``secret`` is the
    project secret keying the patient locks."""

    def __init__(self, app: App, secret: bytes) -> None:
        self.app = app
        self._secret = secret

    def defer(self, node: str, study_id: str, patient_id: str, *, force: bool = False,
              delay: float = 0) -> Enqueued:
        """Queue the study of ``node`` whose Orthanc patient is ``patient_id``; idempotent while
        a job for it waits (a waiting job is kept as it is, ``force`` or not). ``force``: process
        it even if it was delivered in its current state; ``delay``: not before that many seconds."""
        qlock = study_queueing_lock(node, study_id)
        deferrer = self.app.configure_task(TASK_NAME, queue=QUEUE, queueing_lock=qlock,
                                           lock=patient_lock(self._secret, patient_id),
                                           schedule_in={"seconds": int(delay + 0.999)} if delay > 0 else None)
        try:
            job_id = deferrer.defer(node=node, study_id=study_id, **({"force": True} if force else {}))
        except pq_exceptions.AlreadyEnqueued:
            waiting = self.app.job_manager.list_jobs(queueing_lock=qlock, status="todo")
            return Enqueued(node, study_id, waiting[0].id if waiting else None, False)
        except pq_exceptions.ConnectorException as exc:
            raise StoreError(f"could not queue a study ({type(exc.__cause__ or exc).__name__})") from None
        return Enqueued(node, study_id, int(job_id), True)


def open_queue_app(db_url: str) -> App:
    """The queue's schema ensured, then a small synchronous app on it (opened)."""
    from anonlib.jobs.app import ensure_queue_schema, open_sync_app

    ensure_queue_schema(db_url)
    return open_sync_app(db_url, max_connections=2)


def read_secret(db_url: str) -> bytes:
    """The project secret (it keys the patient locks), read from the lookup store."""
    from anonlib.store import open_store

    store = open_store(db_url)
    try:
        return bytes(store.secret())
    finally:
        store.close()


def open_study_queue(db_url: str, *, open_app: Callable[[str], App] = open_queue_app,
                     secret: Callable[[str], bytes] = read_secret) -> StudyQueue:
    """A :class:`StudyQueue` on ``db_url``: schema ensured, app opened, project secret read
    (the app is closed again if the secret cannot be read). Close it with ``queue.app.close()``."""
    app = open_app(db_url)
    try:
        key = secret(db_url)
    except BaseException:
        app.close()
        raise
    return StudyQueue(app, key)


class FindingSource(StudySource, Protocol):
    def find_studies(self, query: Mapping[str, str]) -> list[str]:
        """Orthanc IDs of the studies matching a ``/tools/find`` query."""


def enqueue_study(queue: StudyQueue, source: StudySource, study_id: str, *,
                  force: bool = False) -> Enqueued | None:
    """Queue one study of ``source``; ``None`` if the node has no such study."""
    state = source.study(study_id)
    if state is None:
        return None
    return queue.defer(source.name, study_id, state.patient_id, force=force)


def enqueue_patient(queue: StudyQueue, source: StudySource, patient_id: str, *,
                    force: bool = False) -> list[Enqueued] | None:
    """Queue every study of one patient of ``source``; ``None`` if there is no such patient."""
    studies = source.patient_studies(patient_id)
    if studies is None:
        return None
    return [queue.defer(source.name, study_id, patient_id, force=force) for study_id in studies]


def enqueue_query(queue: StudyQueue, source: FindingSource, query: Mapping[str, str], *,
                  force: bool = False) -> list[Enqueued]:
    """Queue every study of ``source`` matching a ``/tools/find`` study-level query, e.g.
    ``{"StudyDate": "20230101-20231231", "ModalitiesInStudy": "CT"}``."""
    if not isinstance(query, Mapping) or not query or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in query.items()):
        raise ConfigError("a query is a non-empty JSON object of DICOM keywords to strings")
    queued = []
    for study_id in source.find_studies(query):
        found = enqueue_study(queue, source, study_id, force=force)
        if found is not None:  # deleted between the find and now
            queued.append(found)
    return queued
