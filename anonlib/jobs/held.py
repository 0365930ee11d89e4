"""Studies the audit gate holds: never delivered, so never silent.

A held study's job *succeeded* (the gate did its work) and its delivery record says ``held``
with a PHI-free reason — the failing or incomplete categories and their counts. Catch-up leaves
it alone (it is "delivered or held" as it is), so it stays held until a person acts:
``anonlib jobs list --status held`` lists them, ``anonlib jobs retry --held`` processes each
again (forced) once the cause is fixed (a site profile, dciodvfy installed), and
``anonlib jobs wait`` exits :data:`HELD_EXIT` while any is held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anonlib.jobs.db import JobsDb
from anonlib.jobs.enqueue import Enqueued, StudyQueue, enqueue_study
from anonlib.jobs.intake import StudySource

__all__ = ["HELD_EXIT", "HeldStudy", "count_held", "describe_held", "held_hint", "held_studies", "retry_held"]

#: ``anonlib jobs wait``'s exit status when everything settled but some studies are held.
HELD_EXIT = 5


@dataclass(frozen=True)
class HeldStudy:
    """One held study (PHI-free: Orthanc IDs, counts and the gate's reason)."""

    node: str
    study_id: str
    instances: int
    runs: int
    reason: str
    job_id: int | None  # its latest study job, when the queue still has it


def held_studies(db: JobsDb) -> list[HeldStudy]:
    """Every held study of every node, with its latest job."""
    records = db.held()
    latest = {(j.node, j.study_id): j.id for j in db.jobs(limit=None, latest_of=[
        (r.node, r.orthanc_study_id) for r in records])} if records else {}
    return [HeldStudy(r.node, r.orthanc_study_id, r.instances, r.runs, r.reason,
                      latest.get((r.node, r.orthanc_study_id))) for r in records]


def count_held(db_url: str) -> int:
    """How many studies the audit gate holds, on the constellation's database."""
    db = JobsDb(db_url)
    try:
        return len(db.held())
    finally:
        db.close()


def describe_held(study: HeldStudy) -> str:
    """One line: node, study, latest job, instances, runs and why it is held."""
    job = f"job {study.job_id}" if study.job_id is not None else "no job"
    return (f"held  {study.node:<8} {study.study_id}  {job:<10} {study.instances:>4} instances  "
            f"{study.runs:>2} run(s)  {study.reason or '(no reason recorded)'}")


def held_hint(count: int) -> str:
    """What ``jobs wait`` and ``constellation status`` say about ``count`` held studies."""
    studies = "study" if count == 1 else "studies"
    return (f"{count} {studies} held by the audit gate (not delivered): anonlib jobs list --status held; "
            "after a fix, anonlib jobs retry --held")


def retry_held(db: JobsDb, queue: StudyQueue, sources: Mapping[str, StudySource]
               ) -> list[tuple[HeldStudy, Enqueued | None]]:
    """Queue every held study again, forced (its delivery record matches its current state, so
    an ordinary job would not redo it); ``None`` for a study that is gone or whose node is not a
    source node."""
    done: list[tuple[HeldStudy, Enqueued | None]] = []
    for study in held_studies(db):
        source = sources.get(study.node)
        done.append((study, enqueue_study(queue, source, study.study_id, force=True) if source else None))
    return done
