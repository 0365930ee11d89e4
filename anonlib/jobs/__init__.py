"""The durable job queue (procrastinate, in the lookup store's PostgreSQL database).

One job per study of a source node (``anonlib.deidentify_study``), deduplicated while queued and
serialized per patient; retried with backoff on transient errors, and resumed when the nodes
answer again; caught up from Orthanc's ``/changes`` feed and reconciled against the delivery
records so that no study is missed. Modules: ``app`` (procrastinate app, schema), ``tasks`` (the
task), ``enqueue`` (study, patient, query), ``catchup`` (changes feed, reconcile), ``resume``
(node watch, transiently failed jobs queued again), ``status`` (wait, retry), ``worker`` (the
``anonlib worker`` process), ``plugin`` (what the Orthanc plugin calls). Importing connects to
nothing.
"""

from anonlib.jobs.app import QUEUE, TASK_NAME, ensure_queue_schema, make_app, open_sync_app, sync_app
from anonlib.jobs.enqueue import Enqueued, StudyQueue, enqueue_patient, enqueue_query, enqueue_study
from anonlib.jobs.locks import patient_lock, study_queueing_lock

__all__ = [
    "QUEUE",
    "TASK_NAME",
    "Enqueued",
    "StudyQueue",
    "enqueue_patient",
    "enqueue_query",
    "enqueue_study",
    "ensure_queue_schema",
    "make_app",
    "open_sync_app",
    "patient_lock",
    "study_queueing_lock",
    "sync_app",
]
