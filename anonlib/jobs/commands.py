"""The library side of ``anonlib enqueue`` and ``anonlib jobs ...`` (the CLI only parses and
prints): a :class:`Session` on the constellation's database and source nodes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from anonlib.constellation.info import ConstellationInfo
from anonlib.errors import ConfigError
from anonlib.jobs.db import JobRow, JobsDb
from anonlib.jobs.enqueue import (
    Enqueued,
    StudyQueue,
    enqueue_patient,
    enqueue_query,
    enqueue_study,
    open_study_queue,
)
from anonlib.jobs.intake import HttpSource
from anonlib.jobs.worker import source_nodes

__all__ = ["Session", "describe_job", "session"]


@dataclass
class Session:
    info: ConstellationInfo
    db: JobsDb
    sources: dict[str, HttpSource]
    _queue: StudyQueue | None = field(default=None, repr=False)

    def source(self, node: str) -> HttpSource:
        if node not in self.sources:
            raise ConfigError(f"{node!r} is not a source node ({', '.join(sorted(self.sources))})")
        return self.sources[node]

    @property
    def queue(self) -> StudyQueue:
        """Opened on first use: the queue's schema is ensured and the project secret read."""
        if self._queue is None:
            self._queue = open_study_queue(self.info.db_url)
        return self._queue

    def enqueue(self, node: str, *, study: str | None = None, patient: str | None = None,
                query: Mapping[str, str] | None = None, force: bool = False) -> list[Enqueued] | None:
        """Queue one study, a patient's studies or a query's; ``None`` if the study or patient
        does not exist."""
        source = self.source(node)
        if study is not None:
            one = enqueue_study(self.queue, source, study, force=force)
            return None if one is None else [one]
        if patient is not None:
            return enqueue_patient(self.queue, source, patient, force=force)
        if query is not None:
            return enqueue_query(self.queue, source, query, force=force)
        raise ConfigError("enqueue needs a study, a patient or a query")

    def close(self) -> None:
        if self._queue is not None:
            self._queue.app.close()
        for source in self.sources.values():
            source.close()
        self.db.close()


@contextmanager
def session(info: ConstellationInfo) -> Iterator[Session]:
    """A :class:`Session` on ``info``'s database and source nodes, closed on exit."""
    current = Session(info, JobsDb(info.db_url), {n: HttpSource(info.node(n)) for n in source_nodes(info)})
    try:
        yield current
    finally:
        current.close()


def describe_job(job: JobRow) -> str:
    """One PHI-free line: id, task, status, attempts, node, study, outcome, error."""
    error = f"{job.error_class}: {job.error_message}" if job.error_class else (
        job.error_message if job.outcome == "waiting" else "")  # "not yet stable: queued again in 4 s"
    when = f" (next try {job.scheduled_at})" if job.scheduled_at else ""
    note = " [superseded]" if job.superseded and job.status in ("failed", "aborted") else ""
    return (f"{job.id:>6}  {job.task}  {job.status:<9}{note} {job.attempts:>2}  {job.node:<8} {job.study_id}  "
            f"{job.outcome or '-':<8} {error}{when}").rstrip()
