"""What the intake node's Orthanc plugin does, without importing ``orthanc``.

``env/orthanc/plugin/anonlib_plugin.py`` only registers callbacks and hands them to
:class:`IntakePlugin`, which reads Orthanc through a ``rest_get`` function (the plugin passes
``orthanc.RestApiGet``: read-only, no store-causing call can deadlock Orthanc) and queues work
through :mod:`anonlib.jobs.enqueue`. The database is opened on first use. Callbacks never raise
and log only PHI-free text (Orthanc IDs, exception classes, anonlib's messages).

REST routes (under ``/anonlib/``):

* ``POST /anonlib/enqueue`` with ``{"study": id}`` or ``{"patient": id}`` -> ``{"queued": [...]}``
* ``GET /anonlib/jobs[?status=S&limit=N]`` -> ``{"counts": {...}, "jobs": [...]}``
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from procrastinate import App

from anonlib.errors import AnonlibError
from anonlib.jobs.enqueue import (
    Enqueued,
    StudyQueue,
    enqueue_patient,
    enqueue_study,
    open_queue_app,
    open_study_queue,
    read_secret,
)
from anonlib.jobs.intake import JsonStudySource, OrthancUnavailable

if TYPE_CHECKING:
    from anonlib.jobs.db import JobsDb

__all__ = ["IntakePlugin", "OrthancRestSource", "UNKNOWN_RESOURCE"]

UNKNOWN_RESOURCE = 17
"""Orthanc's error code for a missing resource (``OrthancException.args[0]``)."""

STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


class OrthancRestSource(JsonStudySource):
    """:class:`~anonlib.jobs.intake.StudySource` through Orthanc's in-process REST API."""

    def __init__(self, name: str, rest_get: Callable[[str], Any]) -> None:
        self.name = name
        self._get = rest_get

    def _get_json(self, path: str, what: str) -> Any | None:
        try:
            answer = self._get(path)
        except Exception as exc:  # noqa: BLE001 - orthanc.OrthancException, or anything else
            if exc.args and exc.args[0] == UNKNOWN_RESOURCE:
                return None
            raise OrthancUnavailable(f"{self.name}: GET {path.split('/')[1]}: {type(exc).__name__}") from None
        return json.loads(answer)

    def list_studies(self) -> list[Any]:
        """Every study of the node, expanded (``/studies?expand``)."""
        return list(self._get_json("/studies?expand", "list studies") or [])


def _enqueued(items: list[Enqueued]) -> list[dict[str, Any]]:
    return [{"study": e.study_id, "job": e.job_id, "created": e.created} for e in items]


class IntakePlugin:
    """The plugin's behaviour for node ``node``; ``log``/``error`` are Orthanc's log functions."""

    def __init__(self, node: str, db_url: str, rest_get: Callable[[str], Any],
                 log: Callable[[str], None], error: Callable[[str], None],
                 app_factory: Callable[[str], App] | None = None,
                 secret_factory: Callable[[str], bytes] | None = None) -> None:
        self.node = node
        self.db_url = db_url
        self.source = OrthancRestSource(node, rest_get)
        self._log, self._error = log, error
        self._app_factory = app_factory or open_queue_app
        self._secret_factory = secret_factory or read_secret
        self._queue: StudyQueue | None = None
        self._db: JobsDb | None = None
        self._lock = threading.Lock()

    def queue(self) -> StudyQueue:
        """The queue, opened on first use (schema ensured, project secret read)."""
        with self._lock:
            if self._queue is None:
                self._queue = open_study_queue(self.db_url, open_app=self._app_factory,
                                               secret=self._secret_factory)
            return self._queue

    def _jobs_db(self) -> JobsDb:
        """The job tables, opened on first use (one engine and pool for every request)."""
        with self._lock:
            if self._db is None:
                from anonlib.jobs.db import JobsDb

                self._db = JobsDb(self.db_url)
            return self._db

    def close(self) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.app.close()
                self._queue = None
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- on-change ----------------------------------------------------------------------------

    def on_stable_study(self, study_id: str) -> None:
        """Queue the study that just became stable; never raises (catch-up covers failures)."""
        try:
            found = enqueue_study(self.queue(), self.source, study_id)
        except Exception as exc:  # noqa: BLE001 - nothing may escape into Orthanc
            self._error(f"anonlib: could not queue study {study_id} ({_describe(exc)}); "
                        "the worker's catch-up will find it")
            if not isinstance(exc, AnonlibError | OrthancUnavailable):
                self.close()  # reopen on next use (the database may have restarted)
            return
        if found is None:
            self._log(f"anonlib: study {study_id} is gone; nothing queued")
        else:
            self._log(f"anonlib: study {study_id} {'queued as' if found.created else 'already queued in'} "
                      f"job {found.job_id}")

    def on_started(self) -> threading.Thread:
        """Orthanc (re)started: the StableStudy events of the studies it was receiving when it
        stopped never come (and it now calls them stable at once). Queue every study of the node
        not delivered as it is — a reconcile, in a thread so that Orthanc's start is not held up;
        the study job itself waits for the quiet time of a study cut off by the stop
        (:mod:`anonlib.orthanc.stability`). Never raises."""
        thread = threading.Thread(target=self._reconcile, name="anonlib-reconcile", daemon=True)
        thread.start()
        return thread

    def _reconcile(self) -> None:
        from anonlib.jobs.catchup import CatchUp
        from anonlib.jobs.intake import study_state_from_json

        try:
            listing = self.source.list_studies()
            reader = cast(Any, self.source)  # reconcile_states reads it through study() only
            report = CatchUp(self._jobs_db(), self.queue(), {self.node: reader}).reconcile_states(
                self.node, [study_state_from_json(item) for item in listing])
        except Exception as exc:  # noqa: BLE001 - nothing may escape into Orthanc
            self._error(f"anonlib: reconcile at start failed ({_describe(exc)}); the workers' catch-up "
                        "will find the studies")
            return
        self._log(f"anonlib: node started: {report.considered} stable studies considered, "
                  f"{report.queued} queued")

    # -- REST ---------------------------------------------------------------------------------

    def handle_rest(self, method: str, route: str, body: bytes | str | None,
                    query: Mapping[str, str] | None) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, JSON answer)`` for ``/anonlib/<route>``; never raises."""
        try:
            if route == "enqueue":
                if method != "POST":
                    return 405, {"error": "use POST", "allowed": "POST"}
                return self._enqueue(body)
            if route == "jobs":
                if method != "GET":
                    return 405, {"error": "use GET", "allowed": "GET"}
                return self._jobs(query or {})
            return 404, {"error": "unknown route (enqueue, jobs)"}
        except Exception as exc:  # noqa: BLE001 - nothing may escape into Orthanc
            self._error(f"anonlib: /anonlib/{route} failed ({_describe(exc)})")
            return 503, {"error": _describe(exc)}

    def _enqueue(self, body: bytes | str | None) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": "the body must be JSON"}
        if not isinstance(request, dict) or len(request) != 1 or not isinstance(
                next(iter(request.values())), str) or next(iter(request)) not in ("study", "patient"):
            return 400, {"error": 'expected {"study": "<orthanc id>"} or {"patient": "<orthanc id>"}'}
        if "study" in request:
            one = enqueue_study(self.queue(), self.source, request["study"])
            return (404, {"error": "no such study"}) if one is None else (200, {"queued": _enqueued([one])})
        many = enqueue_patient(self.queue(), self.source, request["patient"])
        return (404, {"error": "no such patient"}) if many is None else (200, {"queued": _enqueued(many)})

    def _jobs(self, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            return 400, {"error": f"status must be one of {', '.join(STATUSES)}"}
        try:
            limit = max(1, min(1000, int(query.get("limit") or 100)))
        except ValueError:
            return 400, {"error": "limit must be an integer"}
        db = self._jobs_db()
        return 200, {"counts": db.counts(), "jobs": [j.as_dict() for j in db.jobs(status=status, limit=limit)]}


def _describe(exc: BaseException) -> str:
    """PHI-free: anonlib's messages, otherwise the exception's class only."""
    return str(exc) if isinstance(exc, AnonlibError) else type(exc).__name__

