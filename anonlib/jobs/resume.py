"""Nothing waits for a human because a node was down: jobs that failed on a transient error are
queued again when the nodes are back, and catch-up reconciles right after a node reconnects.

:class:`NodeWatch` probes every Orthanc node of the constellation (``GET /system``, checking its
``Name``) once per catch-up pass and reports the nodes that came back — those that did not answer
at the last look and answer now (every node, at the worker's first look: it cannot know what
happened while no worker ran). When a node came back and none is down, :func:`resume_failed`
queues every study whose latest job failed on a transient error (a node unreachable, a failed
transfer — see :data:`TRANSIENT_ERRORS`) with a fresh attempt budget, as ``anonlib jobs retry``
would. Permanent errors (a refused study, a malformed UID) are never resumed; and a transient
failure is resumed once per reconnection, so a study that fails while every node answers waits
for the next one (or for a human) instead of going round for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from anonlib.constellation.info import NodeInfo
from anonlib.errors import AnonlibError
from anonlib.jobs.db import JobsDb
from anonlib.jobs.enqueue import Enqueued, StudyQueue
from anonlib.jobs.intake import StudySource

__all__ = ["NodeWatch", "TRANSIENT_ERRORS", "resume_failed"]

log = logging.getLogger(__name__)

#: The error classes (as the task records them) that a reachable node may not meet again.
TRANSIENT_ERRORS = ("TransientError", "OrthancUnavailable", "NotStable")

Probe = Callable[[NodeInfo], bool]


def _answers(node: NodeInfo) -> bool:
    from anonlib.orthanc.client import node_answers

    return node_answers(node)


class NodeWatch:
    """Which of ``nodes`` answer, pass after pass (see the module docstring)."""

    def __init__(self, nodes: Mapping[str, NodeInfo], probe: Probe = _answers) -> None:
        self.nodes = dict(nodes)
        self._probe = probe
        self._up: dict[str, bool] = {}  # empty: not looked yet
        self._pending = False  # a node came back; failed jobs not resumed yet (another is down)

    def poll(self) -> tuple[set[str], set[str]]:
        """``(came back, down)`` after probing every node once."""
        back, down = set(), set()
        for name, node in self.nodes.items():
            try:
                up = self._probe(node)
            except Exception:  # noqa: BLE001 - a probe that fails means "down"
                up = False
            if up and not self._up.get(name, False):
                back.add(name)
            if not up:
                down.add(name)
                if self._up.get(name, True):
                    log.warning("node %s does not answer", name)
            elif name in self._up and not self._up[name]:
                log.info("node %s answers again", name)
            self._up[name] = up
        return back, down

    def should_resume(self, back: set[str], down: set[str]) -> bool:
        """True once after a node came back, as soon as no node is down."""
        self._pending = self._pending or bool(back)
        if self._pending and not down:
            self._pending = False
            return True
        return False


def resume_failed(db: JobsDb, queue: StudyQueue, sources: Mapping[str, StudySource]) -> list[Enqueued]:
    """Queue again every study whose latest job failed on a transient error (forced if that
    job was); studies gone from their node are left alone."""
    queued: list[Enqueued] = []
    for job in db.jobs(outstanding_failures=True, limit=None):
        if job.error_class not in TRANSIENT_ERRORS or job.node not in sources:
            continue
        try:
            state = sources[job.node].study(job.study_id)
        except AnonlibError as exc:
            log.warning("could not resume job %s (%s)", job.id, type(exc).__name__)
            continue
        if state is None:
            continue
        again = queue.defer(job.node, job.study_id, state.patient_id, force=job.force)
        log.info("job %s failed on a transient error (%s): study %s queued again as job %s", job.id,
                 job.error_class, job.study_id, again.job_id)
        queued.append(again)
    return queued
