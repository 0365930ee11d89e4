"""The study job as a procrastinate task: ``deidentify_study(node, study_id)``.

Each attempt reads the study's state on its node (a study that no longer exists ends as
``gone``; one not yet stable, or that changes while the job works on it, as ``waiting``, with a
new job queued for a little later), records what it saw (``running``: catch-up reads it so as not to queue a duplicate
while this attempt covers the study's current state) and calls
:func:`anonlib.studyjob.process_study`, which itself does nothing for a study already delivered
in its current state (``unchanged``) unless ``force``. Every end — success or error — is written to
``anonlib_job_outcome`` with the error's class and, for anonlib's own (PHI-free) errors, its
message; other exceptions keep only their class. Every instance a delivered (or held) study was
processed without is written to ``anonlib_rejected_instance`` with its reason
(:mod:`anonlib.jobs.partial`). Retries: :mod:`anonlib.jobs.retry`.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import App, JobContext

from anonlib.errors import AnonlibError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import QUEUE, TASK_NAME
from anonlib.jobs.intake import StudyState
from anonlib.jobs.retry import StudyRetry
from anonlib.orthanc.client import NotStable

__all__ = ["deidentify_study", "error_summary", "register"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 500
RESULT_STATES = ("done", "held", "gone", "unchanged")

#: Seconds before a study that is not stable yet is looked at again (or its node's StableAge, if shorter).
WAIT_STABLE_SECONDS = 10.0


def error_summary(exc: BaseException) -> tuple[str, str]:
    """``(class name, message)`` safe to store: anonlib's errors promise PHI-free messages;
    any other exception may quote data, so only its class is kept."""
    name = type(exc).__name__
    if isinstance(exc, AnonlibError):
        return name, str(exc)[:MESSAGE_LIMIT]
    return name, "(message withheld: not an anonlib error)"


def _record(rt: runtime_module.Runtime, *args: Any, **kwargs: Any) -> None:
    """Outcomes are informational: failing to write one never fails the job."""
    try:
        rt.outcomes.record_outcome(*args, **kwargs)
    except AnonlibError as exc:
        log.warning("could not record a job outcome (%s)", type(exc).__name__)


def _record_rejections(rt: runtime_module.Runtime, node: str, study_id: str, last_update: str,
                       rejections: list[tuple[str, str]]) -> None:
    """Like outcomes, informational: failing to write them never fails the job (the delivery
    record's reason names the first few, the worker's log all)."""
    try:
        rt.outcomes.record_rejections(node, study_id, last_update, rejections)
    except AnonlibError as exc:
        log.warning("could not record the rejected instances of study %s (%s)", study_id, type(exc).__name__)


def deidentify_study(context: JobContext, node: str, study_id: str, force: bool = False) -> dict[str, Any]:
    """Run the study job for ``study_id`` of ``node`` (see the module docstring)."""
    rt = runtime_module.current()
    job = context.job
    where = (int(job.id or 0), node, study_id, job.attempts + 1)
    seen: dict[str, Any] = {}
    try:
        source = rt.source(node)
        state = source.study(study_id, count=True)
        if state is None:
            _record(rt, *where, "gone")
            return {"status": "gone"}
        seen = {"last_update": state.last_update, "instances": state.instances or 0}
        if not state.stable:
            return _later(rt, where, seen, state, force, NotStable(f"{node}: study {study_id} is not yet stable"),
                          getattr(source, "stable_age", 0))
        _record(rt, *where, "running", **seen)
        try:
            result = rt.process(rt.info, study_id, node=node, force=force)
        except NotStable as exc:
            return _later(rt, where, seen, state, force, exc, getattr(source, "stable_age", 0))
    except BaseException as exc:
        error_class, message = error_summary(exc)
        _record(rt, *where, "error", error_class=error_class, error_message=message, **seen)
        raise
    status = str(getattr(result, "status", "done"))
    reason = str(getattr(result, "reason", "") or "")
    if status in ("done", "held"):  # every instance not delivered, with its reason (none: whole)
        _record_rejections(rt, node, study_id, str(seen.get("last_update", "")),
                           list(getattr(result, "rejections", None) or []))
    if status == "held":  # the audit gate held the study: say why in the job's state
        _record(rt, *where, "held", error_class="AuditHeld", error_message=reason[:MESSAGE_LIMIT], **seen)
    elif status == "done" and reason:  # delivered without its poison instances: say which and why
        _record(rt, *where, "done", error_class="Partial",
                error_message=reason.removeprefix("partial: ")[:MESSAGE_LIMIT], **seen)
    else:
        _record(rt, *where, status if status in RESULT_STATES else "done", **seen)
    return {"status": status, "instances": getattr(result, "instances", 0),
            "rejected": getattr(result, "rejected", 0),
            "released": getattr(result, "released", 0), "quarantined": getattr(result, "quarantined", 0)}


def _later(rt: runtime_module.Runtime, where: tuple[int, str, str, int], seen: dict[str, Any],
           state: StudyState, force: bool, why: NotStable, stable_age: float) -> dict[str, Any]:
    """The study is still arriving (or changed while this attempt worked on it): queue a job
    for it a little later (the node's StableAge, at most :data:`WAIT_STABLE_SECONDS`) and end
    this one as ``waiting`` — not a failure, and no attempt of the retry budget spent. Without
    a way to queue (a fake runtime), ``why`` is raised and the retry strategy takes it again."""
    if rt.requeue is None:
        raise why
    delay = min(WAIT_STABLE_SECONDS, stable_age) if stable_age > 0 else WAIT_STABLE_SECONDS
    try:
        rt.requeue(where[1], where[2], state.patient_id, force=force, delay=delay)
    except AnonlibError as exc:
        raise NotStable(f"{why} (could not queue it again: {type(exc).__name__})") from None
    _record(rt, *where, "waiting", error_message=f"{why}: queued again in {delay:g} s"[:MESSAGE_LIMIT], **seen)
    return {"status": "waiting"}


def register(app: App, retry: StudyRetry) -> None:
    """Register the study task on ``app`` as :data:`~anonlib.jobs.app.TASK_NAME`."""
    app.task(name=TASK_NAME, queue=QUEUE, pass_context=True, retry=retry)(deidentify_study)
