"""Connections to Orthanc nodes, and what their failures mean for a job.

Every call goes through :func:`call`, which turns transport errors and HTTP 5xx answers into
:class:`~anonlib.studyjob.TransientError` (try again later) and 4xx answers other than 404 into
:class:`~anonlib.studyjob.StudyJobError`; a 404 becomes :class:`NotFound`. Messages name the node
and the operation, never a DICOM value.

A read (``get_…``) whose connection the node closed without answering is sent once more at once,
on a new connection: Orthanc closes an idle keep-alive connection after a short timeout, and a
request that meets that close on a pooled connection never reached the node (seen under load:
``RemoteProtocolError: Server disconnected without sending a response``). Writes are never sent
twice by this; their retry is the job queue's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pyorthanc

from anonlib.constellation.info import NodeInfo
from anonlib.errors import AnonlibError
from anonlib.orthanc.http import client_options

__all__ = ["connect", "call", "client_options", "node_answers", "NodeDropped", "NotFound", "NotStable",
           "TransientError", "StudyJobError", "UploadNotKept"]


class TransientError(AnonlibError):
    """The job may succeed if tried again later."""


class NotStable(TransientError):
    """The study is still arriving (not stable), or changed while the job worked on it: take it
    again once it is stable. Not a failure: the task queues it again for later."""


class StudyJobError(AnonlibError):
    """The job cannot succeed as things are; retrying will not help."""


class NodeDropped(TransientError):
    """The node dropped the connection while storing an instance: it may have crashed on that
    instance. Tried again once (it may have been restarted meanwhile), never more: an
    instance that crashes a node must not crash it again and again
    (:mod:`anonlib.jobs.retry`)."""


class UploadNotKept(TransientError):
    """The node answered "Success" to the upload of a study's instances and then does not hold
    them all: it dropped them, or cannot find them by the UIDs they carry (a malformed UID).
    Tried again once (the node may have changed meanwhile), never more: the same bytes would
    not be kept again (:mod:`anonlib.jobs.retry`)."""


class NotFound(AnonlibError):
    """The resource does not exist (any more) on the node."""


def connect(node: NodeInfo, timeout: float = 120.0) -> pyorthanc.Orthanc:
    """A REST client for ``node`` (HTTP basic auth, generous timeout for large transfers)."""
    return pyorthanc.Orthanc(node.url, username=node.username, password=node.password,
                             return_raw_response=True, timeout=httpx.Timeout(timeout, connect=10.0),
                             **client_options())


def node_answers(node: NodeInfo, timeout: float = 3.0) -> bool:
    """Whether the node answers now: ``GET /system`` with its ``Name`` (a bare 200 can come
    from another server on that port)."""
    try:
        answer = httpx.get(f"{node.url}/system", auth=(node.username, node.password), timeout=timeout,
                           **client_options())
        return answer.status_code == 200 and answer.json().get("Name") == node.name
    except (httpx.HTTPError, ValueError):
        return False


def _reads(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a pyorthanc read (GET): safe to send again."""
    name = getattr(fn, "__name__", "")
    return name == "get" or name.startswith("get_")


def call(node: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` — a pyorthanc call answering the raw response — with Orthanc's
    failures translated (see the module docstring); returns the decoded body."""
    try:
        try:
            response = fn(*args, **kwargs)
        except (httpx.RemoteProtocolError, httpx.ConnectError):
            if not _reads(fn):
                raise
            response = fn(*args, **kwargs)  # a pooled connection the node had just closed
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        if code == 404:
            raise NotFound(f"{node}: {what}: not found") from exc
        if code >= 500 or code in (408, 429):
            raise TransientError(f"{node}: {what}: HTTP {code}") from exc
        raise StudyJobError(f"{node}: {what}: HTTP {code}") from exc
    except httpx.HTTPError as exc:
        raise TransientError(f"{node}: {what}: {type(exc).__name__}") from exc
    kind = response.headers.get("content-type", "")
    if "application/json" in kind:
        return response.json()
    if "text/plain" in kind:
        return response.text
    return response.content
