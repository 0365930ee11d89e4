"""Read-only views of a source Orthanc node, as the queue needs them (never any DICOM content).

:class:`StudySource` is what enqueueing, catch-up and the task ask of a node: a study's
state (stable? last update? which patient?), a patient's studies, a ``/tools/find``, the
``/changes`` feed. :class:`HttpSource` answers over REST with timeouts; the Orthanc plugin
answers through ``orthanc.RestApiGet`` (``anonlib.jobs.plugin``). Errors never quote an answer
body (Orthanc may echo DICOM values).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from anonlib.constellation.info import NodeInfo
from anonlib.errors import AnonlibError
from anonlib.orthanc.http import client_options
from anonlib.orthanc.stability import is_settled

__all__ = [
    "Change",
    "ChangesPage",
    "HttpSource",
    "JsonStudySource",
    "OrthancUnavailable",
    "StudySource",
    "StudyState",
    "study_state_from_json",
]

PAGE = 500


class OrthancUnavailable(AnonlibError):
    """An Orthanc node could not be reached or answered with a server error (try later)."""


@dataclass(frozen=True)
class StudyState:
    """What the queue knows of a study on a node: its patient (Orthanc ID), whether it is
    stable, its ``LastUpdate`` and (when asked for) its instance count."""

    study_id: str
    patient_id: str
    stable: bool
    last_update: str
    instances: int | None = None


@dataclass(frozen=True)
class Change:
    seq: int
    change_type: str
    resource_id: str


@dataclass(frozen=True)
class ChangesPage:
    changes: list[Change]
    last: int
    done: bool


def study_state_from_json(data: Mapping[str, Any], now: str = "", stable_age: float = 0) -> StudyState:
    """A :class:`StudyState` from ``GET /studies/{id}`` (or one item of ``/studies?expand``);
    with ``stable_age``, stable only that long after its LastUpdate by the node's clock ``now``
    (:mod:`anonlib.orthanc.stability`)."""
    last_update = str(data.get("LastUpdate", ""))
    return StudyState(study_id=str(data["ID"]), patient_id=str(data["ParentPatient"]),
                      stable=is_settled(bool(data.get("IsStable", False)), last_update, now, stable_age),
                      last_update=last_update)


class StudySource(Protocol):
    """Read-only questions about one source node."""

    name: str

    def study(self, study_id: str, *, count: bool = False) -> StudyState | None:
        """The study's state (``None`` if it does not exist); ``count`` adds its instance count."""

    def patient_studies(self, patient_id: str) -> list[str] | None:
        """The Orthanc IDs of a patient's studies (``None`` if the patient does not exist)."""


class JsonStudySource(ABC):
    """:class:`StudySource` on top of one JSON getter: the REST client (:class:`HttpSource`) and
    the Orthanc plugin's in-process reader differ only in how they ``GET``."""

    name: str
    stable_age: float = 0  # the node's StableAge: see :mod:`anonlib.orthanc.stability`

    @abstractmethod
    def _get_json(self, path: str, what: str) -> Any | None:
        """The JSON answer to ``GET path`` (``None`` if there is no such resource); ``what``
        names the request in error messages."""

    def _now(self) -> str:
        """The node's local time (``/tools/now-local``), read only when ``stable_age`` is set."""
        return ""

    def study(self, study_id: str, *, count: bool = False) -> StudyState | None:
        now = self._now() if self.stable_age > 0 else ""
        data = self._get_json(f"/studies/{study_id}", "read a study")
        if data is None:
            return None
        state = study_state_from_json(data, now, self.stable_age)
        if not count:
            return state
        stats = self._get_json(f"/studies/{study_id}/statistics", "count a study's instances")
        if stats is None:
            return None
        return StudyState(state.study_id, state.patient_id, state.stable, state.last_update,
                          int(stats["CountInstances"]))

    def patient_studies(self, patient_id: str) -> list[str] | None:
        data = self._get_json(f"/patients/{patient_id}", "read a patient")
        return None if data is None else [str(s) for s in data.get("Studies", [])]


class HttpSource(JsonStudySource):
    """:class:`StudySource` over Orthanc's REST API (plus ``/tools/find``, ``/changes`` and the
    list of every study, which the plugin does not need)."""

    def __init__(self, node: NodeInfo, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = node.name
        self.stable_age = node.stable_age
        self._client = httpx.Client(base_url=node.url, auth=(node.username, node.password),
                                    timeout=httpx.Timeout(timeout, connect=5.0), transport=transport,
                                    **client_options())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, *, as_text: bool = False, **kwargs: Any) -> Any | None:
        """JSON (or with ``as_text`` plain text) answer; ``None`` on 404; OrthancUnavailable on
        transport errors and 5xx."""
        try:
            answer = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OrthancUnavailable(f"{self.name}: {what}: {type(exc).__name__}") from None
        if answer.status_code == 404:
            return None
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise OrthancUnavailable(f"{self.name}: {what}: HTTP {answer.status_code}")
        if answer.status_code >= 400:
            raise AnonlibError(f"{self.name}: {what}: HTTP {answer.status_code}")
        if as_text:
            return answer.text
        try:
            return answer.json()
        except ValueError:
            raise OrthancUnavailable(f"{self.name}: {what}: the answer is not JSON") from None

    def _get_json(self, path: str, what: str) -> Any | None:
        return self._call("GET", path, what)

    def _now(self) -> str:
        return str(self._call("GET", "/tools/now-local", "read the node's clock", as_text=True) or "")

    def find_studies(self, query: Mapping[str, str]) -> list[str]:
        """Orthanc IDs of the studies matching a ``/tools/find`` query (Level Study)."""
        data = self._call("POST", "/tools/find", "find studies",
                          json={"Level": "Study", "Query": dict(query), "Expand": False})
        return [str(s) for s in data or []]

    def studies(self) -> Iterator[StudyState]:
        """Every study of the node (``/studies?expand`` in pages; no instance counts)."""
        since = 0
        now = self._now() if self.stable_age > 0 else ""
        while True:
            page = self._call("GET", "/studies", "list studies",
                              params={"expand": "", "since": since, "limit": PAGE}) or []
            for item in page:
                yield study_state_from_json(item, now, self.stable_age)
            if len(page) < PAGE:
                return
            since += len(page)

    def changes(self, since: int, limit: int = 100) -> ChangesPage:
        """One page of ``/changes`` after sequence number ``since``."""
        data = self._call("GET", "/changes", "read the changes feed",
                          params={"since": since, "limit": limit}) or {}
        changes = [Change(int(c["Seq"]), str(c["ChangeType"]), str(c["ID"]))
                   for c in data.get("Changes", [])]
        return ChangesPage(changes, int(data.get("Last", since)), bool(data.get("Done", True)))
