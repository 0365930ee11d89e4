"""The study job: one Orthanc study from intake to every destination, verified.

Only a stable study is taken (:mod:`anonlib.orthanc.stability`). Fetch the instances from the
source node over HTTP; collect the identifying values of all of them (a name or station carried
by one instance is scrubbed from the text of every other); de-identify them with the core engine
and the shared lookup store; audit them (the release gate); keep the result in the spool
(:mod:`anonlib.spool`: a retry delivers it without doing all that again); check that the study
did not change meanwhile; upload to the research node and verify that it holds every released
instance; only then write the study's folder of the organized tree on disk, whole at once;
forward the study to the configured destinations with Orthanc's asynchronous jobs, following
each to its end; check again that the study did not change; and only then record the delivery
as done. Nothing is deleted from the source unless asked, and only after all that; a study
with a rejected or quarantined instance is never deleted (it stays whole on the source).

Errors say what the queue should do: :class:`TransientError` — try again later (a node or the
database is unreachable, a transfer failed); :class:`StudyJobError` — do not retry, keep the
error for a human; :class:`NotStable` (a TransientError) — the study is still arriving or
changed while the job worked: take it again later; :class:`UploadNotKept` (a TransientError) —
research answered "Success" and does not hold what it was sent: tried again once, not more. A
study that no longer exists is not an error (status ``gone``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyorthanc

from anonlib.audit.model import AuditResult
from anonlib.constellation.info import ConstellationInfo, NodeInfo
from anonlib.dicomio import parse_instance
from anonlib.engine import Identifiers, Outcome, collect_identifiers
from anonlib.errors import ConfigError, StoreError
from anonlib.orthanc.client import (
    NotStable,
    StudyJobError,
    TransientError,
    UploadNotKept,
    connect,
    node_answers,
)
from anonlib.orthanc.transfer import (
    DestinationRefused,
    DestinationWentDown,
    StudySnapshot,
    delete_study,
    fetch_instances,
    find_study,
    forward,
    snapshot,
    study_sop_uids,
    upload_all,
)
from anonlib.phases import PhaseTimer
from anonlib.pipeline import (
    MANIFEST,
    QUARANTINE_MANIFEST,
    InstanceProcessor,
    pseudonym_policy,
    rejection_reason,
)
from anonlib.pixels.select import ESCALATED, LATER, ImageInfo, Reading, image_info, plan_series
from anonlib.profile import Plan, SiteProfile, build_plan, load_site_profile
from anonlib.sinks.folder import FolderSink, ManifestRow, update_manifest
from anonlib.sinks.study_tree import write_studies
from anonlib.spool import Prepared, Spool, spool_key
from anonlib.store import DeliveryRecord, PatientIdentity, open_store

__all__ = ["study_plan", "TransientError", "NotStable", "StudyJobError", "StudyResult", "JobContext", "process_study",
           "hold_reason", "partial_reason", "study_identifiers", "gate_pixel_settings"]

if TYPE_CHECKING:
    from anonlib.audit.run import AuditOptions

log = logging.getLogger("anonlib.studyjob")


@dataclass
class StudyResult:
    """What one run of the job did (PHI-free)."""

    node: str
    study_id: str
    status: str  # done | held (failed the audit) | unchanged (already delivered) | gone (not on the node)
    instances: int = 0
    released: int = 0
    quarantined: int = 0
    rejected: int = 0
    new_study_uid: str = ""
    forwarded: list[str] = field(default_factory=list)
    reason: str = ""  # why it is held; or, delivered without some instances, ``partial: ...``
    #: every instance not delivered: (Orthanc instance ID, PHI-free reason) — the reason above
    #: names only the first few; the task records them all (:mod:`anonlib.jobs.partial`)
    rejections: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class JobContext:
    """What a worker process builds once and reuses for every job: the plan, the lookup store,
    the per-instance processor and the folder sinks."""

    info: ConstellationInfo
    processor: InstanceProcessor
    delete_after_delivery: bool = False
    audit: bool = True  # the release gate: audit each study before it leaves
    audit_conformance: bool = True  # include dciodvfy in the gate
    audit_pixels: str = "sample"  # the gate's pixel check: sample | all | off
    audit_pixel_engine: str = ""  # its OCR engine ("" for the project's default)
    spool: Spool | None = None  # results kept between attempts (:mod:`anonlib.spool`)

    @classmethod
    def create(cls, info: ConstellationInfo, profile: SiteProfile | None = None,
               delete_after_delivery: bool | None = None, audit: bool | None = None) -> JobContext:
        """Settings come from the environment unless given: ``ANONLIB_PROFILE``,
        ``ANONLIB_DELETE_AFTER_DELIVERY=1``, ``ANONLIB_AUDIT=0`` (no release gate) and
        ``ANONLIB_AUDIT_CONFORMANCE=0`` (gate without dciodvfy), ``ANONLIB_AUDIT_PIXELS``
        (``sample``, the default, ``all`` or ``off``: which released images the gate reads with
        OCR) and ``ANONLIB_AUDIT_PIXEL_ENGINE`` (the gate's OCR engine)."""
        if profile is None:
            path = os.environ.get("ANONLIB_PROFILE", "")
            profile = load_site_profile(Path(path)) if path else SiteProfile()
        if delete_after_delivery is None:
            delete_after_delivery = os.environ.get("ANONLIB_DELETE_AFTER_DELIVERY", "") == "1"
        export = Path(info.export_dir)
        store = open_store(info.db_url, pseudonym_policy(profile))
        processor = InstanceProcessor(build_plan(profile), store, FolderSink(export),
                                      FolderSink(_quarantine_dir(export)))
        if audit is None:
            audit = os.environ.get("ANONLIB_AUDIT", "1") != "0"
        conformance = os.environ.get("ANONLIB_AUDIT_CONFORMANCE", "1") != "0"
        pixels, pixel_engine = gate_pixel_settings(os.environ)
        spool = Spool(Path(info.home) / "spool") if info.home else None
        return cls(info, processor, delete_after_delivery, audit, conformance, pixels, pixel_engine, spool)

    def audit_options(self) -> AuditOptions:
        """The gate's audit options."""
        from anonlib.audit.run import AuditOptions

        return AuditOptions(conformance=self.audit_conformance, pixels=cast(Any, self.audit_pixels),
                            pixel_engine=self.audit_pixel_engine)


def gate_pixel_settings(environ: Mapping[str, str]) -> tuple[str, str]:
    """``(pixels, engine)`` of the gate's pixel check from ``ANONLIB_AUDIT_PIXELS`` and
    ``ANONLIB_AUDIT_PIXEL_ENGINE``; a mode that is not sample, all or off is a ConfigError."""
    from anonlib.audit.pixel_check import PIXEL_MODES

    pixels = environ.get("ANONLIB_AUDIT_PIXELS", "").strip().lower() or "sample"
    if pixels not in PIXEL_MODES:
        raise ConfigError(f"ANONLIB_AUDIT_PIXELS must be one of {', '.join(PIXEL_MODES)}, not {pixels!r}")
    return pixels, environ.get("ANONLIB_AUDIT_PIXEL_ENGINE", "").strip()


def _quarantine_dir(export: Path) -> Path:
    """Where quarantined instances go: next to the export folder, ``<export>-quarantine``."""
    return export.with_name(export.name + "-quarantine")


#: A destination that goes down while receiving the same study this many times is not tried again.
DESTINATION_DOWN_LIMIT = 2
#: A destination that refuses the same study this many times is not tried again.
DESTINATION_REFUSED_LIMIT = 2

_CONTEXTS: dict[str, JobContext] = {}


def _context(info: ConstellationInfo) -> JobContext:
    found = _CONTEXTS.get(info.db_url)
    if found is None:
        found = _CONTEXTS[info.db_url] = JobContext.create(info)
    return found


def process_study(info: ConstellationInfo, study_id: str, *, node: str = "intake",
                  context: JobContext | None = None, force: bool = False) -> StudyResult:
    """Run the job for one study of ``node`` (see the module docstring).

    A study whose delivery is already recorded for its current state (same LastUpdate, same
    instance count) is not processed again — status ``unchanged`` — so that however often it is
    enqueued (an automatic event, a batch, a catch-up), each state of a study is delivered once.
    ``force`` processes it anyway (for example after a profile change). A study that is not
    stable yet (:mod:`anonlib.orthanc.stability`), or that changes while the job works on it, is
    :class:`NotStable`: nothing is recorded, the task takes it again later.
    """
    ctx = context or _context(info)
    timer = PhaseTimer()
    source_node, research_node = info.node(node), info.research
    with connect(source_node) as source, connect(research_node) as research:
        with timer.phase("stability"):
            snap = snapshot(source, node, study_id, source_node.stable_age)
        if snap is None:
            if ctx.spool:
                ctx.spool.discard(node, study_id)  # a result kept for it will never be delivered
            return StudyResult(node, study_id, "gone", reason="the study is no longer on the node")
        try:
            with timer.phase("lookup"):
                previous = ctx.processor.store.deliveries(node, [study_id]).get(study_id)
        except StoreError as exc:
            raise TransientError(f"lookup store: {exc}") from exc
        if (not force and previous is not None and previous.status == "done"
                and previous.last_update == snap.last_update
                and previous.instances == len(snap.instance_ids)):
            return StudyResult(node, study_id, "unchanged", instances=previous.instances,
                               released=previous.released, quarantined=previous.quarantined,
                               new_study_uid=previous.new_study_uid)
        if not snap.is_stable:
            raise NotStable(f"{node}: study {study_id} is not yet stable")
        try:
            with timer.phase("lookup"):
                key = spool_key(snap.last_update, snap.instance_ids, ctx.processor.plan.fingerprint,
                                _reviews_digest(ctx))
                prepared = ctx.spool.load(node, study_id, key) if ctx.spool else None
            if prepared is not None:
                log.info("study %s of %s: delivering the result kept from an earlier attempt", study_id, node)
            else:
                outcome = _prepare(ctx, source, node, study_id, snap, timer)
                if isinstance(outcome, StudyResult):  # held by the gate
                    if ctx.spool:
                        ctx.spool.discard(node, study_id)
                    return outcome
                prepared = outcome
                if ctx.spool:
                    with timer.phase("spool"):
                        ctx.spool.save(node, study_id, key, prepared)
        except StoreError as exc:
            raise TransientError(f"lookup store: {exc}") from exc
        if len(prepared.new_study_uids) > 1:
            raise StudyJobError(f"{node}: study {study_id} de-identified into {len(prepared.new_study_uids)} studies")
        with timer.phase("unchanged"):
            _check_unchanged(source, node, study_id, snap, source_node.stable_age)
        result = StudyResult(node, study_id, "done", instances=prepared.instances, rejected=prepared.rejected,
                             new_study_uid=next(iter(prepared.new_study_uids), ""), reason=prepared.reason,
                             rejections=list(prepared.rejections))
        _deliver(ctx, info, research, research_node.name, prepared, result, timer)
        with timer.phase("unchanged"):
            _check_unchanged(source, node, study_id, snap, source_node.stable_age)
        try:
            with timer.phase("record"):
                ctx.processor.store.record_delivery(DeliveryRecord(
                    node, study_id, snap.last_update, len(snap.instance_ids), result.released,
                    result.quarantined, result.new_study_uid, "done", result.reason))
        except StoreError as exc:
            raise TransientError(f"lookup store: {exc}") from exc
        if ctx.spool:
            with timer.phase("spool"):
                ctx.spool.discard(node, study_id)
        if ctx.delete_after_delivery:
            _delete_if_whole(source, node, study_id, snap, result)
    log.info("study %s of %s: %d released, %d quarantined, %d rejected, forwarded to %s", study_id,
             node, result.released, result.quarantined, result.rejected, result.forwarded or "none")
    timer.log(f"study {study_id} of {node}, {result.instances} instances")
    return result


def _reviews_digest(ctx: JobContext) -> str:
    """The reviewers' decisions, as a digest (a kept result made before a decision is stale)."""
    decisions = sorted(repr(d) for d in ctx.processor.store.reviews())
    return hashlib.sha256("\n".join(decisions).encode()).hexdigest()


def _prepare(ctx: JobContext, source: pyorthanc.Orthanc, node: str, study_id: str,
             snap: StudySnapshot, timer: PhaseTimer | None = None) -> Prepared | StudyResult:
    """Fetch, de-identify and audit the study; the held result when the gate holds it, else
    what to deliver (each instance recorded in the store with its place in the trees)."""
    timer = timer or PhaseTimer()
    result = StudyResult(node, study_id, "held", instances=len(snap.instance_ids))
    ready: list[tuple[str, Outcome, bytes, PatientIdentity, bytes]] = []
    rejected: list[tuple[str, str]] = []  # (instance ID, reason): not delivered; the rest is
    with timer.phase("fetch"):
        fetched = list(fetch_instances(source, node, snap.instance_ids))
    result.instances -= sum(1 for _, data in fetched if data is None)  # deleted while we worked
    present = [(instance_id, data) for instance_id, data in fetched if data is not None]
    with timer.phase("identifiers"):
        known, readings, series = study_plan(ctx.processor.plan, present)
    escalated: set[str] = set()
    first = [item for item in present if readings.get(item[0]) != LATER]
    later = [item for item in present if readings.get(item[0]) == LATER]
    with timer.phase("deidentify"):
        for wave in (first, later):
            for instance_id, data in wave:
                reading = readings.get(instance_id)
                if reading == LATER and series.get(instance_id) in escalated:
                    reading = ESCALATED
                try:
                    outcome, encoded, identity = ctx.processor.deidentify_bytes(
                        data, f"{node}/{instance_id}", known, reading)
                except StoreError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one poison instance must not fail its study
                    _reject(rejected, instance_id, study_id, exc)
                    continue
                if outcome.pixel_boxes or (outcome.quarantine or "").startswith("pixels:"):
                    escalated.add(series.get(instance_id, ""))
                ready.append((instance_id, outcome, encoded, identity, data))
    result.rejected = len(rejected)
    partial = partial_reason(rejected, result.instances)
    with timer.phase("gate"):
        held = _audit_gate(ctx, ready)
    if held:
        result.reason = held + (f"; {partial}" if partial else "")
        result.rejections = list(rejected)
        result.quarantined = sum(1 for item in ready if item[1].quarantine)
        result.new_study_uid = ready[0][1].keys.new_study_uid if ready else ""
        ctx.processor.store.record_delivery(DeliveryRecord(
            node, study_id, snap.last_update, len(snap.instance_ids), 0, result.quarantined,
            result.new_study_uid, "held", result.reason))
        ctx.processor.flush()  # forget the pixel findings of instances never delivered
        log.warning("study %s of %s held: %s", study_id, node, held)
        return result
    items: list[tuple[ManifestRow, bytes]] = []
    with timer.phase("place"):
        for instance_id, outcome, encoded, identity, _ in ready:
            try:  # what the gate passed, one instance at a time: a failure rejects that one
                row = ctx.processor.place(outcome, encoded, identity)
                ctx.processor.record_placed(outcome, identity, row)
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - one instance must not fail its study
                _reject(rejected, instance_id, study_id, exc, "placing it")
                continue
            items.append((row, encoded))
        ctx.processor.flush()
    new_study_uids = tuple(sorted({row.study_instance_uid for row, _ in items}))
    return Prepared(result.instances, len(rejected), new_study_uids, tuple(items),
                    partial_reason(rejected, result.instances), tuple(rejected))


def _reject(rejected: list[tuple[str, str]], instance_id: str, study_id: str, exc: Exception,
            stage: str = "") -> None:
    """Reject one instance of the study (not delivered) with its PHI-free reason (and the
    stage after de-identification that failed, if any)."""
    rejected.append((instance_id, rejection_reason(exc) + (f" ({stage})" if stage else "")))
    log.warning("instance %s of study %s rejected: %s", instance_id, study_id, rejected[-1][1])


def partial_reason(rejected: list[tuple[str, str]], instances: int, limit: int = 5) -> str:
    """Why a delivered study is partial, PHI-free (Orthanc instance IDs and the reasons):
    ``partial: 1 of 6 instances not delivered: <id>: nesting too deep (...)``; "" when whole.
    The first ``limit`` are named; every one is recorded apart (:mod:`anonlib.jobs.partial`)."""
    if not rejected:
        return ""
    shown = "; ".join(f"{instance_id}: {reason}" for instance_id, reason in rejected[:limit])
    more = (f"; and {len(rejected) - limit} more (anonlib jobs list --status partial)"
            if len(rejected) > limit else "")
    return f"partial: {len(rejected)} of {instances} instances not delivered: {shown}{more}"


def _check_unchanged(source: pyorthanc.Orthanc, node: str, study_id: str, snap: StudySnapshot,
                     stable_age: float) -> None:
    """NotStable when the study changed (or became unstable) since ``snap``: what was prepared
    is not the whole study any more."""
    now = snapshot(source, node, study_id, stable_age)
    if now is None:
        raise NotStable(f"{node}: study {study_id} was deleted while the job worked on it")
    if now.last_update != snap.last_update or now.instance_ids != snap.instance_ids or not now.is_stable:
        raise NotStable(f"{node}: study {study_id} changed while the job worked on it")


def _deliver(ctx: JobContext, info: ConstellationInfo, research: pyorthanc.Orthanc, research_name: str,
             prepared: Prepared, result: StudyResult, timer: PhaseTimer | None = None) -> None:
    """Research first (uploaded and verified), then the export tree (a whole study folder at
    once, :mod:`anonlib.sinks.study_tree`) and its manifests, then each destination."""
    timer = timer or PhaseTimer()
    released = {row.sop_instance_uid: data for row, data in prepared.items if row.status != "quarantined"}
    research_study = _upload_and_verify(research, research_name, released, result.new_study_uid, timer)
    with timer.phase("export"):
        export = Path(info.export_dir)
        rows = {row.path: row for row, _ in prepared.items if row.status != "quarantined"}
        quarantined = {row.path: row for row, _ in prepared.items if row.status == "quarantined"}
        write_studies(export, {row.path: data for row, data in prepared.items if row.path in rows},
                      drop=list(quarantined))
        write_studies(_quarantine_dir(export), {row.path: data for row, data in prepared.items
                                                if row.path in quarantined}, drop=list(rows))
        if rows or quarantined and (export / MANIFEST).exists():
            update_manifest(export / MANIFEST, rows, drop=list(quarantined))
        if quarantined or rows and (_quarantine_dir(export) / QUARANTINE_MANIFEST).exists():
            update_manifest(_quarantine_dir(export) / QUARANTINE_MANIFEST, quarantined, drop=list(rows))
        result.released, result.quarantined = len(released), len(quarantined)
    if research_study is not None:
        for destination in info.destinations:
            try:
                forward(research, research_name, destination, research_study,
                        answers=_rest_probe(info.nodes.get(destination)))
            except (DestinationWentDown, DestinationRefused) as exc:
                # each tried once more: a destination restarted after crashing on another
                # study's instance answers again and looks like one that refused this study
                down = isinstance(exc, DestinationWentDown)
                limit = DESTINATION_DOWN_LIMIT if down else DESTINATION_REFUSED_LIMIT
                incident = f"{'down' if down else 'refused'}:{destination}"
                if ctx.spool and ctx.spool.count(result.node, result.study_id, incident) >= limit:
                    why = "an instance it cannot take?" if down else "see its log"
                    raise StudyJobError(f"{exc}, {limit} times: not retried ({why}); the study is on research "
                                        "and in the export folder") from None
                raise
            if destination in info.nodes:
                _verify_destination(info.nodes[destination], set(released), result.new_study_uid)
            result.forwarded.append(destination)


def _rest_probe(node: NodeInfo | None) -> Callable[[], bool] | None:
    """A destination that is a node of the constellation is asked over REST whether it answers
    (its DICOM port refuses C-ECHO); others through C-ECHO from research."""
    if node is None:
        return None

    def answers() -> bool:
        return node_answers(node)

    return answers


def _audit_gate(ctx: JobContext, ready: list[tuple[str, Outcome, bytes, PatientIdentity, bytes]]) -> str:
    """Audit the de-identified study against its originals before anything leaves; the reason
    to hold it ("" when it passes). It fails closed: a study whose audit is INCOMPLETE (an
    original that cannot be read, dciodvfy missing while the gate includes it) is held too.
    Quarantined instances are not released, so not audited."""
    if not ctx.audit or not ready:
        return ""
    from anonlib.audit.model import AuditInput
    from anonlib.audit.run import audit

    inputs = [AuditInput(f"instance #{n + 1}", encoded, original)
              for n, (_, outcome, encoded, _, original) in enumerate(ready) if not outcome.quarantine]
    if not inputs:
        return ""
    verdict = audit(inputs, map_uid=ctx.processor.uid_mapper(),
                    options=ctx.audit_options(), expect_originals=True)
    return "" if verdict.passed else hold_reason(verdict)


def _listed(counts: list[tuple[str, int]], limit: int = 8) -> str:
    shown = ", ".join(f"{name} ({n})" for name, n in counts[:limit])
    return shown + (f" and {len(counts) - limit} more" if len(counts) > limit else "")


def hold_reason(result: AuditResult) -> str:
    """Why a study is held, PHI-free: the failing categories with their counts of findings
    (``audit failed: leak/A names (3), ...``), or what could not be checked (``audit
    incomplete: 2 of 5 instances without their original (leak/originals); conformance/dciodvfy
    (1)``); "" when the audit passed."""
    if result.passed:
        return ""
    incomplete = result.counts("incomplete")
    missing = dict(incomplete).get("leak/originals", 0)
    parts = ([f"{missing} of {result.instances} instances without their original (leak/originals)"]
             if missing else []) + ([_listed([c for c in incomplete if c[0] != "leak/originals"])]
                                    if len(incomplete) > bool(missing) else [])
    if result.status == "FAIL":
        return "audit failed: " + _listed(result.counts("fail")) + ("; incomplete: " + "; ".join(parts) if parts else "")
    return "audit incomplete: " + ("; ".join(parts) or "nothing audited")


def _upload_and_verify(client: pyorthanc.Orthanc, node: str, released: dict[str, bytes],
                       study_uid: str, timer: PhaseTimer | None = None) -> str | None:
    """Upload every released instance, then check the node holds each of them (else
    :class:`UploadNotKept`: tried again once, not eight times)."""
    if not released:
        return None
    timer = timer or PhaseTimer()
    with timer.phase("upload"):
        upload_all(client, node, released.values())
    with timer.phase("verify"):
        research_study = find_study(client, node, study_uid, released)
        if research_study is None:
            raise UploadNotKept(f"{node}: the uploaded study is not there (tried again once: see its log)")
        missing = set(released) - study_sop_uids(client, node, research_study)
    if missing:
        raise UploadNotKept(f"{node}: {len(missing)} of {len(released)} uploaded instances are missing "
                            "(tried again once: see its log)")
    return research_study


def _verify_destination(node: NodeInfo, sop_uids: set[str], study_uid: str) -> None:
    """A destination that is a node of the constellation holds every released instance after a
    forward that succeeded — or it dropped some without a word (Orthanc answers "Success" for a
    C-STORE its filter drops): a permanent error, the same bytes would be dropped again."""
    with connect(node) as client:
        found = find_study(client, node.name, study_uid, sop_uids)
        held = study_sop_uids(client, node.name, found) if found is not None else set()
    missing = sop_uids - held
    if missing:
        raise StudyJobError(f"{node.name}: holds {len(sop_uids) - len(missing)} of {len(sop_uids)} instances after "
                            "a forward it answered with success: it dropped the others (not retried: see its log)")


def _delete_if_whole(client: pyorthanc.Orthanc, node: str, study_id: str, snap: StudySnapshot,
                     result: StudyResult) -> None:
    """Delete the identified study from the source once every instance of it was released and
    verified, unless it changed while we delivered it. A study with a rejected or quarantined
    instance stays whole on the source: that instance was delivered nowhere (or only to the
    quarantine tree, de-identified), and another run for it (a fixed limit, a reviewer's
    release) needs its original and the rest of its study (the identifying values collected
    from every instance, the gate's originals). Deleting only the released instances would
    change the study and start a run that records it again without them."""
    if result.rejected or result.quarantined:
        log.info("study %s of %s kept on the node (not deleted): %d rejected, %d quarantined",
                 study_id, node, result.rejected, result.quarantined)
        return
    now = snapshot(client, node, study_id)
    if now is not None and now.last_update == snap.last_update and now.instance_ids == snap.instance_ids:
        delete_study(client, node, study_id)


def study_identifiers(plan: Plan, instances: list[bytes]) -> Identifiers:
    """The identifying values of every instance of one study (see :func:`study_plan`)."""
    return study_plan(plan, [(str(n), data) for n, data in enumerate(instances)])[0]


def study_plan(plan: Plan, instances: list[tuple[str, bytes]],
               ) -> tuple[Identifiers, dict[str, Reading], dict[str, str]]:
    """From the headers of every instance of one study (id, bytes): their identifying values,
    so that a value carried by one instance is scrubbed from the text of all (the job sees one
    study, so the values of the patient's other studies are not among them); what the pixel
    stage reads of each (sampling of large series, :mod:`anonlib.pixels.select`); and each one's
    series (for escalation). An unreadable instance is skipped here; de-identifying it rejects
    it with its reason."""
    known = Identifiers()
    infos: list[ImageInfo] = []
    for instance_id, data in instances:
        try:
            header = parse_instance(data, label="instance", limits=plan.limits).dataset
            found, info = collect_identifiers(header, plan), image_info(header, instance_id, plan)
        except Exception:  # noqa: BLE001 - unreadable here: de-identifying it rejects it with its reason
            continue
        known.merge(found)
        infos.append(info)
    if not plan.burned_in.reads_pixels:
        return known, {}, {}
    return known, plan_series(infos, plan.burned_in.sample_min_series), {i.key: i.series for i in infos}
