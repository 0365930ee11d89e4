"""Live progress of the studies a notebook put on the constellation's queue.

:func:`study_progress` turns the queue's job rows and the audit gate's held studies into one
row per queued study (queued, running, done, held with its reason, failed); :class:`Poller`
asks for it every few seconds in a background thread and hands each table to a callback, until
every study has settled (done, held, failed) or it is stopped (a Cancel button, a new run).
Both take plain functions, so they run against a fake queue in unit tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pandas as pd

__all__ = ["PROGRESS_COLUMNS", "SETTLED", "Poller", "settled", "study_progress"]

PROGRESS_COLUMNS = ["node", "study", "job", "state", "attempts", "reason"]

#: States after which a study's job does nothing more on its own.
SETTLED = ("done", "held", "failed", "cancelled")

_STATE = {"todo": "queued", "doing": "running", "succeeded": "done", "failed": "failed", "aborted": "failed",
          "cancelled": "cancelled"}


def study_progress(queued: Sequence[tuple[str, str]], jobs: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """One row per queued ``(node, study)``: its latest job (``jobs``: the rows of
    :func:`anonlib.workflows.job_states`, newest first) and what that means — a study whose
    job succeeded but which the audit gate holds (``held``: :func:`anonlib.workflows.held_studies`)
    is ``held`` with the gate's reason; a failed job gives its error class."""
    latest: dict[tuple[str, str], dict[str, object]] = {}
    for job in jobs.to_dict("records") if not jobs.empty else []:
        latest.setdefault((str(job["node"]), str(job["study_id"])), job)
    reasons = {(str(h["node"]), str(h["study"])): str(h["reason"])
               for h in (held.to_dict("records") if not held.empty else [])}
    rows = []
    for node, study in queued:
        job = latest.get((node, study))
        state = _STATE.get(str(job["status"]), str(job["status"])) if job else "waiting"
        reason = ""
        if state == "done" and (node, study) in reasons:
            state, reason = "held", reasons[(node, study)] or "held by the audit gate"
        elif state == "done" and job and job.get("outcome") not in ("", "done", None):
            reason = str(job["outcome"])
        elif state == "failed" and job:
            reason = str(job.get("error_class") or "failed")
        rows.append({"node": node, "study": study, "job": job["id"] if job else "", "state": state,
                     "attempts": job["attempts"] if job else 0, "reason": reason})
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


def settled(progress: pd.DataFrame) -> bool:
    """Whether every study of ``progress`` has settled (nothing more to watch)."""
    return bool(progress["state"].isin(SETTLED).all())


class Poller:
    """Calls ``fetch()`` every ``interval`` seconds in a daemon thread and gives each table to
    ``on_update``, until :func:`settled` or :meth:`stop`; an exception from ``fetch`` goes to
    ``on_error`` and ends the polling (shown once, not every few seconds)."""

    def __init__(self, fetch: Callable[[], pd.DataFrame], on_update: Callable[[pd.DataFrame], None], *,
                 on_error: Callable[[Exception], None], interval: float = 3.0) -> None:
        self.fetch, self.on_update, self.on_error, self.interval = fetch, on_update, on_error, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="anonlib-job-progress", daemon=True)
        self.polls = 0

    def start(self) -> Poller:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop after the poll in progress (if any); no further callback is made."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                table = self.fetch()
            except Exception as exc:  # noqa: BLE001 - shown to the user, polling ends
                if not self._stop.is_set():
                    self.on_error(exc)
                return
            self.polls += 1
            if self._stop.is_set():
                return
            self.on_update(table)
            if settled(table):
                return
            self._stop.wait(self.interval)
