"""Never miss a study: follow each source node's ``/changes`` feed from a cursor kept in
PostgreSQL, and reconcile every study of the node against the delivery records.

* :meth:`CatchUp.follow_changes` reads ``GET /changes?since=<cursor>`` page by page and
  considers every ``StableStudy``. The cursor advances in the same transaction that holds the
  node's advisory lock, after the page's jobs are queued (at-least-once; queueing is
  idempotent). If Orthanc's feed restarted (its last sequence number is below the cursor: a new
  index database), the cursor goes back to 0.
* :meth:`CatchUp.reconcile` lists every study of the node and considers the stable ones. This
  catches a study that became stable while Orthanc was down (no ``StableStudy`` is ever
  generated for it) and one that changed after its delivery.

A study is queued when :func:`needs_enqueue` says so: it is stable, its delivery record is
missing or differs from its current LastUpdate/instance count, no job of it waits, no running
job of it has seen (or is about to see) its current state, and its latest job did not fail on
this very state (a permanent failure waits for a human, ``anonlib jobs retry``; a transient one
is queued again when the nodes are back, :mod:`anonlib.jobs.resume`). Several workers may
run catch-up at once: each node's feed and reconcile pass are guarded by advisory locks, and
the losers skip their turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from anonlib.jobs.db import JobsDb, StudyJobs
from anonlib.jobs.enqueue import StudyQueue
from anonlib.jobs.intake import HttpSource, StudyState
from anonlib.jobs.resume import NodeWatch, resume_failed
from anonlib.jobs.runtime import is_delivered
from anonlib.store.base import DeliveryRecord

__all__ = ["CatchUp", "CatchUpReport", "needs_enqueue"]

log = logging.getLogger(__name__)

STABLE_STUDY = "StableStudy"


def needs_enqueue(state: StudyState, record: DeliveryRecord | None, jobs: StudyJobs | None) -> bool:
    """Whether catch-up should queue this study (see the module docstring)."""
    if not state.stable or is_delivered(state, record):
        return False
    if jobs is None:
        return True
    if jobs.queued:
        return False
    if any(seen is None or seen == state.last_update for seen in jobs.running_seen):
        return False
    return jobs.failed_update is None or jobs.failed_update not in ("", state.last_update)


@dataclass
class CatchUpReport:
    """What one catch-up pass did (counts only)."""

    changes_read: int = 0
    considered: int = 0
    queued: int = 0
    skipped_locked: int = 0
    reconnected: tuple[str, ...] = ()  # nodes that answer again since the last pass
    resumed: int = 0  # transiently failed jobs queued again


class CatchUp:
    """Catch-up of the source nodes in ``sources`` (name -> reader), queueing on ``queue``."""

    def __init__(self, db: JobsDb, queue: StudyQueue, sources: Mapping[str, HttpSource],
                 page_size: int = 100, watch: NodeWatch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.queue = queue
        self.sources = dict(sources)
        self.page_size = page_size
        self.watch = watch
        self._clock = clock
        self._reconcile_again: float | None = None  # a follow-up reconcile after a reconnection

    def _consider(self, node: str, states: Iterable[StudyState], report: CatchUpReport,
                  records: Mapping[str, DeliveryRecord] | None = None,
                  jobs: Mapping[str, StudyJobs] | None = None) -> None:
        source = self.sources[node]
        states = list(states)
        ids = [s.study_id for s in states]
        records = self.db.deliveries(node, ids) if records is None else records
        jobs = self.db.study_jobs(node, ids) if jobs is None else jobs
        for state in states:
            if not state.stable:
                continue
            report.considered += 1
            record = records.get(state.study_id)
            if state.instances is None and is_delivered(state, record):
                counted = source.study(state.study_id, count=True)  # same LastUpdate: compare counts
                if counted is None:
                    continue
                state = counted
            if needs_enqueue(state, record, jobs.get(state.study_id)):
                self.queue.defer(node, state.study_id, state.patient_id)
                report.queued += 1

    def follow_changes(self, node: str, report: CatchUpReport | None = None) -> CatchUpReport:
        """Consume ``node``'s ``/changes`` feed up to its end (see the module docstring)."""
        report = report or CatchUpReport()
        source = self.sources[node]
        while True:
            with self.db.change_cursor(node) as cursor:
                if cursor is None:
                    report.skipped_locked += 1
                    return report
                page = source.changes(cursor.seq, self.page_size)
                if page.last < cursor.seq:
                    log.warning("%s: the changes feed restarted (last %d < cursor %d): reading it again "
                                "from the start", node, page.last, cursor.seq)
                    cursor.advance(0)
                    continue
                report.changes_read += len(page.changes)
                stable_ids = list(dict.fromkeys(c.resource_id for c in page.changes
                                                if c.change_type == STABLE_STUDY))
                states = [s for s in (source.study(i, count=True) for i in stable_ids) if s is not None]
                self._consider(node, states, report)
                if page.changes:
                    cursor.advance(max(page.last, max(c.seq for c in page.changes)))
                if page.done or not page.changes:
                    return report

    def reconcile(self, node: str, report: CatchUpReport | None = None) -> CatchUpReport:
        """Consider every study of ``node`` (see the module docstring)."""
        return self.reconcile_states(node, self.sources[node].studies(), report)

    def reconcile_states(self, node: str, states: Iterable[StudyState],
                         report: CatchUpReport | None = None) -> CatchUpReport:
        """Consider ``states``, every study of ``node`` (listed by the caller: the intake plugin
        lists them through Orthanc when it starts), under the node's reconcile lock."""
        report = report or CatchUpReport()
        with self.db.try_lock(f"reconcile:{node}") as held:
            if held is None:
                report.skipped_locked += 1
                return report
            records = self.db.deliveries(node)
            jobs = self.db.study_jobs(node)
            self._consider(node, states, report, records, jobs)
        return report

    def run_once(self, *, reconcile: bool) -> CatchUpReport:
        """Look at the nodes (with a :class:`NodeWatch`), follow every node's feed, then (if
        asked, or when a node came back) reconcile every node. After a node came back, and
        once no node is down, the transiently failed jobs are queued again
        (:func:`~anonlib.jobs.resume.resume_failed`), and every source node is reconciled once
        more when its StableAge has passed: a study cut off by a restart counts as stable only
        then (:mod:`anonlib.orthanc.stability`) and no ``StableStudy`` change comes for it."""
        report = CatchUpReport()
        now = self._clock()
        if self.watch is not None:
            back, down = self.watch.poll()
            report.reconnected = tuple(sorted(back))
            if back:
                reconcile = True
                ages = [getattr(s, "stable_age", 0) for s in self.sources.values()]
                self._reconcile_again = now + max(ages, default=0) + 1.0
            if self.watch.should_resume(back, down):
                report.resumed = len(resume_failed(self.db, self.queue, self.sources))
        if self._reconcile_again is not None and now >= self._reconcile_again:
            reconcile, self._reconcile_again = True, None
        for node in self.sources:
            self.follow_changes(node, report)
        if reconcile:
            for node in self.sources:
                self.reconcile(node, report)
        return report
