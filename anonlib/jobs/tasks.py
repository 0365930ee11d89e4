"""The study job as a procrastinate task: ``deidentify_study(node, study_id)``.

Each attempt reads the study's state on its node (a study that no longer exists ends as
``gone``), records what it saw (``running``: catch-up reads it so as not to queue a duplicate
while this attempt covers the study's current state) and calls
:func:`anonlib.studyjob.process_study`, which itself does nothing for a study already delivered
in its current state (``unchanged``) unless ``force``. Every end — success or error — is written to
``anonlib_job_outcome`` with the error's class and, for anonlib's own (PHI-free) errors, its
message; other exceptions keep only their class. Retries: :mod:`anonlib.jobs.retry`.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import App, JobContext

from anonlib.errors import AnonlibError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import QUEUE, TASK_NAME
from anonlib.jobs.retry import StudyRetry

__all__ = ["deidentify_study", "error_summary", "register"]

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 500
RESULT_STATES = ("done", "held", "gone", "unchanged")


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


def deidentify_study(context: JobContext, node: str, study_id: str, force: bool = False) -> dict[str, Any]:
    """Run the study job for ``study_id`` of ``node`` (see the module docstring)."""
    rt = runtime_module.current()
    job = context.job
    where = (int(job.id or 0), node, study_id, job.attempts + 1)
    seen: dict[str, Any] = {}
    try:
        state = rt.source(node).study(study_id, count=True)
        if state is None:
            _record(rt, *where, "gone")
            return {"status": "gone"}
        seen = {"last_update": state.last_update, "instances": state.instances or 0}
        _record(rt, *where, "running", **seen)
        result = rt.process(rt.info, study_id, node=node, force=force)
    except BaseException as exc:
        error_class, message = error_summary(exc)
        _record(rt, *where, "error", error_class=error_class, error_message=message, **seen)
        raise
    status = str(getattr(result, "status", "done"))
    reason = str(getattr(result, "reason", "") or "")
    if status == "held":  # the audit gate held the study: say why in the job's state
        _record(rt, *where, "held", error_class="AuditHeld", error_message=reason[:MESSAGE_LIMIT], **seen)
    else:
        _record(rt, *where, status if status in RESULT_STATES else "done", **seen)
    return {"status": status, "instances": getattr(result, "instances", 0),
            "released": getattr(result, "released", 0), "quarantined": getattr(result, "quarantined", 0)}


def register(app: App, retry: StudyRetry) -> None:
    """Register the study task on ``app`` as :data:`~anonlib.jobs.app.TASK_NAME`."""
    app.task(name=TASK_NAME, queue=QUEUE, pass_context=True, retry=retry)(deidentify_study)
