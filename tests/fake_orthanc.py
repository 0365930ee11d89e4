"""An in-memory Orthanc for the study job's unit tests: the handful of REST calls
:mod:`anonlib.orthanc.transfer` makes, answered as pyorthanc's raw responses, so that
:func:`anonlib.studyjob.process_study` runs without servers (``install`` replaces its
``connect``). A node can be told to accept uploads and keep none of them (``drop_uploads``) or only the
first ones (``keep_at_most``)."""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydicom
import pytest

from anonlib.constellation.info import ConstellationInfo, NodeInfo

__all__ = ["FakeNode", "FakeClient", "install", "info_for"]

LAST_UPDATE = "20240101T120000"


def _id(*parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[n:n + 8] for n in range(0, 40, 8))


@dataclass
class FakeNode:
    """One node: its studies (Orthanc study ID -> instance ID -> file) and what it was asked."""

    name: str
    studies: dict[str, dict[str, bytes]] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)  # study ID -> StudyInstanceUID (uploads)
    last_update: str = LAST_UPDATE
    drop_uploads: bool = False  # answer Success to an upload and keep nothing
    keep_at_most: int | None = None  # answer Success to every upload, keep only the first ones
    uploads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)  # uploads come in threads
    deleted_studies: list[str] = field(default_factory=list)
    deleted_instances: list[str] = field(default_factory=list)

    def add_study(self, study_id: str, instances: dict[str, bytes]) -> None:
        self.studies[study_id] = dict(instances)

    def client(self) -> FakeClient:
        return FakeClient(self)

    def sop_uids(self) -> set[str]:
        return {str(pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True).SOPInstanceUID)
                for study in self.studies.values() for d in study.values()}


def _answer(method: str, url: str, status: int = 200, body: Any = None, content: bytes | None = None
            ) -> httpx.Response:
    request = httpx.Request(method, url)
    if content is not None:
        return httpx.Response(status, content=content, headers={"content-type": "application/dicom"},
                              request=request)
    return httpx.Response(status, json=body if body is not None else {}, request=request)


class FakeClient:
    """What the study job calls on a ``pyorthanc.Orthanc`` (raw responses)."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.url = f"http://{node.name}.invalid:8042"

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _study(self, study_id: str) -> dict[str, bytes] | None:
        return self.node.studies.get(study_id)

    def get_tools_now_local(self) -> httpx.Response:
        return httpx.Response(200, text="20990101T000000", request=httpx.Request("GET", self.url))

    def get_studies_id(self, study_id: str) -> httpx.Response:
        if self._study(study_id) is None:
            return _answer("GET", f"{self.url}/studies/{study_id}", 404)
        return _answer("GET", self.url, body={"ID": study_id, "ParentPatient": "p", "IsStable": True,
                                              "LastUpdate": self.node.last_update})

    def get_studies_id_instances(self, study_id: str) -> httpx.Response:
        study = self._study(study_id)
        if study is None:
            return _answer("GET", f"{self.url}/studies/{study_id}/instances", 404)
        listed = []
        for instance_id, data in study.items():
            try:
                sop = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
            except Exception:  # noqa: BLE001 - a poison instance has no readable tags
                sop = ""
            listed.append({"ID": instance_id, "MainDicomTags": {"SOPInstanceUID": sop}})
        return _answer("GET", self.url, body=listed)

    def get_instances_id_file(self, instance_id: str) -> httpx.Response:
        for study in self.node.studies.values():
            if instance_id in study:
                return _answer("GET", self.url, content=study[instance_id])
        return _answer("GET", f"{self.url}/instances/{instance_id}/file", 404)

    def post_instances(self, data: bytes) -> httpx.Response:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        study_uid, sop_uid = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
        study_id, instance_id = _id(study_uid), _id(study_uid, sop_uid)
        with self.node.lock:
            self.node.uploads += 1
            limit = self.node.keep_at_most
            if not self.node.drop_uploads and (limit is None or self.node.uploads <= limit):
                self.node.uids[study_id] = study_uid
                self.node.studies.setdefault(study_id, {})[instance_id] = data
        return _answer("POST", self.url, body={"Status": "Success", "ID": instance_id})

    def post(self, url: str, content: bytes = b"") -> httpx.Response:
        assert url.endswith("/tools/lookup"), url
        uid = content.decode()
        found = [{"Type": "Study", "ID": study_id} for study_id, known in self.node.uids.items() if known == uid]
        return _answer("POST", url, body=found)

    def delete_studies_id(self, study_id: str) -> httpx.Response:
        self.node.deleted_studies.append(study_id)
        if self.node.studies.pop(study_id, None) is None:
            return _answer("DELETE", f"{self.url}/studies/{study_id}", 404)
        return _answer("DELETE", self.url)

    def delete_instances_id(self, instance_id: str) -> httpx.Response:
        self.node.deleted_instances.append(instance_id)
        for study in self.node.studies.values():
            if study.pop(instance_id, None) is not None:
                return _answer("DELETE", self.url)
        return _answer("DELETE", f"{self.url}/instances/{instance_id}", 404)


def _node_info(name: str, role: str) -> NodeInfo:
    return NodeInfo(name, role, f"http://{name}.invalid:8042", "u", "p", "127.0.0.1", 4242, name.upper())


def info_for(home: str, export_dir: str, db_url: str) -> ConstellationInfo:
    """A constellation of an intake and a research node, no destinations."""
    return ConstellationInfo(home, {"intake": _node_info("intake", "intake"),
                                    "research": _node_info("research", "research")}, export_dir, db_url)


def install(monkeypatch: pytest.MonkeyPatch, *nodes: FakeNode) -> None:
    """Make the study job connect to these nodes (by name) instead of real ones."""
    import anonlib.studyjob as studyjob

    by_name = {node.name: node for node in nodes}
    monkeypatch.setattr(studyjob, "connect", lambda info, *a, **k: by_name[info.name].client())
