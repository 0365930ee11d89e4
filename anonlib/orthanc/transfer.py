"""Study-level REST operations: snapshot a study, fetch and upload instances, verify, forward."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pyorthanc

from anonlib.orthanc.client import NodeDropped, NotFound, StudyJobError, TransientError, call
from anonlib.orthanc.stability import is_settled

__all__ = ["DestinationWentDown", "JobFailed", "StudySnapshot", "snapshot", "fetch_instances", "upload", "upload_all", "find_study", "study_sop_uids",
           "forward", "follow_job", "delete_study", "destination_answers"]


class JobFailed(TransientError):
    """An Orthanc job ended in Failure (or Paused)."""


class DestinationWentDown(TransientError):
    """A destination that answered before a forward stopped answering during it (it may have
    crashed on one of the study's instances)."""


class DestinationRefused(TransientError):
    """A forward failed while the destination answered before and after: it refused the study —
    or it crashed on another study's instance and was started again in between, which no probe
    can tell apart. Tried again once (the study job gives up on the second refusal)."""


@dataclass(frozen=True)
class StudySnapshot:
    """A study as the node holds it at one moment."""

    study_id: str
    parent_patient: str
    last_update: str
    is_stable: bool
    instance_ids: tuple[str, ...]


def snapshot(client: pyorthanc.Orthanc, node: str, study_id: str, stable_age: float = 0) -> StudySnapshot | None:
    """The study's state and instance IDs, or None when it no longer exists on the node. With
    ``stable_age`` (the node's StableAge), stable only that long after its last change by the
    node's clock, whatever Orthanc says after a restart (:mod:`anonlib.orthanc.stability`)."""
    try:
        now = str(call(node, "read the node's clock", client.get_tools_now_local)) if stable_age > 0 else ""
        study = cast(dict[str, Any], call(node, "read study", client.get_studies_id, study_id))
        instances = cast(list[dict[str, Any]], call(node, "list instances", client.get_studies_id_instances, study_id))
    except NotFound:
        return None
    last_update = str(study.get("LastUpdate", ""))
    return StudySnapshot(study_id, str(study.get("ParentPatient", "")), last_update,
                         is_settled(bool(study.get("IsStable", False)), last_update, now, stable_age),
                         tuple(sorted(i["ID"] for i in instances)))


def fetch_instances(client: pyorthanc.Orthanc, node: str, ids: tuple[str, ...]) -> Iterator[tuple[str, bytes | None]]:
    """(instance ID, its DICOM file) for each ID; None for one deleted meanwhile."""
    for instance_id in ids:
        try:
            yield instance_id, cast(bytes, call(node, "fetch instance", client.get_instances_id_file, instance_id))
        except NotFound:
            yield instance_id, None


def upload(client: pyorthanc.Orthanc, node: str, data: bytes) -> str:
    """Store one instance on the node; returns its Orthanc ID (already stored is fine)."""
    try:
        answer = cast(dict[str, Any], call(node, "upload instance", client.post_instances, data))
    except TransientError as exc:
        if isinstance(exc.__cause__, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            raise NodeDropped(f"{node}: the connection dropped while an instance was stored "
                              "(the node may have crashed on it)") from exc
        raise
    if answer.get("Status") not in ("Success", "AlreadyStored"):
        raise TransientError(f"{node}: upload answered {answer.get('Status')!r}")
    return str(answer["ID"])


#: Instances sent to a node at once by :func:`upload_all`: Orthanc stores them in parallel
#: (its HTTP server has a pool of threads) while this process builds the next requests.
UPLOAD_THREADS = 4


def upload_all(client: pyorthanc.Orthanc, node: str, instances: Iterable[bytes],
               threads: int = UPLOAD_THREADS) -> None:
    """:func:`upload` every instance, ``threads`` at a time. Every upload is finished (or
    failed) when this returns; a failure raises one of the errors, a :class:`NodeDropped`
    first: the node may have crashed on one instance, and the uploads that ran beside it then
    fail too, with other errors, which must not hide it (:mod:`anonlib.jobs.retry`)."""
    items = list(instances)
    if threads <= 1 or len(items) <= 1:
        for data in items:
            upload(client, node, data)
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="upload") as pool:
        for future in [pool.submit(upload, client, node, data) for data in items]:
            error = future.exception()
            if error is not None:
                errors.append(error)
    if errors:
        raise next((e for e in errors if isinstance(e, NodeDropped)), errors[0])


def find_study(client: pyorthanc.Orthanc, node: str, study_uid: str, holding: Collection[str] = ()) -> str | None:
    """The Orthanc ID of the study with this Study Instance UID on the node, if any. One UID
    can be under two patients (a damaged PatientID): Orthanc then holds two studies with it, and
    with ``holding`` (SOP Instance UIDs) the one that holds most of them is returned."""
    found = cast(list[dict[str, Any]], call(
        node, "look up study", client.post, f"{client.url}/tools/lookup", content=study_uid.encode("ascii")))
    studies = [str(item["ID"]) for item in found if item.get("Type") == "Study"]
    if len(studies) > 1 and holding:
        wanted = set(holding)
        return max(studies, key=lambda study: len(wanted & study_sop_uids(client, node, study)))
    return studies[0] if studies else None


def study_sop_uids(client: pyorthanc.Orthanc, node: str, study_id: str) -> set[str]:
    """The SOP Instance UIDs the node holds for one study."""
    instances = cast(list[dict[str, Any]], call(node, "list instances", client.get_studies_id_instances, study_id))
    return {str(i.get("MainDicomTags", {}).get("SOPInstanceUID", "")) for i in instances}


def forward(client: pyorthanc.Orthanc, node: str, destination: str, study_id: str,
            timeout: float = 600.0, answers: Callable[[], bool] | None = None) -> None:
    """Send a study from ``node`` to a destination with an asynchronous Orthanc job, and follow
    the job to its end. ``destination`` is a DICOM modality name, or ``peer:<name>``. When the
    job fails, whether the destination answers (``answers``, by default C-ECHO or the peer's
    ``/system`` from ``node``; a destination that refuses C-ECHO needs another probe) before
    and after tells a refusal (:class:`DestinationRefused`) and a crash while receiving
    (:class:`DestinationWentDown`) from a destination that was down (:class:`TransientError`)."""
    if answers is None:
        def answers() -> bool:
            return destination_answers(client, node, destination)
    body = {"Resources": [study_id], "Asynchronous": True, "Synchronous": False}
    if destination.startswith("peer:"):
        name, send = destination[5:], client.post_peers_id_store
    else:
        name, send = destination, client.post_modalities_id_store
    answered = answers()
    try:
        job = cast(dict[str, Any], call(node, f"forward to {destination}", send, name, json=body))
    except NotFound:
        raise StudyJobError(f"{node}: destination {destination!r} is not configured there") from None
    try:
        follow_job(client, node, str(job["ID"]), f"forward to {destination}", timeout)
    except JobFailed as exc:
        if answers():
            raise DestinationRefused(f"{exc}; the destination answers, so it refused the study") from None
        if answered:
            raise DestinationWentDown(f"{exc}; the destination answered before and went down while "
                                      "receiving this study") from None
        raise


def destination_answers(client: pyorthanc.Orthanc, node: str, destination: str) -> bool:
    """Whether ``node`` reaches the destination now: C-ECHO for a DICOM modality, ``/system``
    through the peer for ``peer:<name>``."""
    try:
        if destination.startswith("peer:"):
            call(node, "reach peer", client.get, f"{client.url}/peers/{destination[5:]}/system")
        else:
            call(node, "echo destination", client.post_modalities_id_echo, destination, json={"Timeout": 10})
    except (TransientError, StudyJobError, NotFound):
        return False
    return True


def follow_job(client: pyorthanc.Orthanc, node: str, job_id: str, what: str, timeout: float) -> None:
    """Poll ``/jobs/{id}`` (with a deadline) until Success; a failed or paused job is a
    :class:`JobFailed`, a vanished one a :class:`TransientError` (a destination that was down
    may be up on the next attempt; :func:`forward` tells a refusal from that)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            job = cast(dict[str, Any], call(node, what, client.get_jobs_id, job_id))
        except NotFound:
            raise TransientError(f"{node}: {what}: the Orthanc job vanished (JobsHistorySize?)") from None
        state = job.get("State")
        if state == "Success":
            return
        if state in ("Failure", "Paused"):
            raise JobFailed(f"{node}: {what}: Orthanc job {state} "
                            f"(error {job.get('ErrorCode')}: {job.get('ErrorDescription', '')})")
        if time.monotonic() > deadline:
            call(node, "cancel job", client.post_jobs_id_cancel, job_id)
            raise TransientError(f"{node}: {what}: Orthanc job still {state} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def delete_study(client: pyorthanc.Orthanc, node: str, study_id: str) -> None:
    try:
        call(node, "delete study", client.delete_studies_id, study_id)
    except NotFound:
        return
