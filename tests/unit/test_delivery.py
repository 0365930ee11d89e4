"""Deliver only what is whole, in order (issue 11 item 4), without servers: stability with a quiet
time that survives an Orthanc restart, a study folder replaced whole at once, the spool that a
retry delivers from, the task's "not yet stable" (a later job, not a failure), and the node
watch that resumes transiently failed jobs once per reconnection."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from procrastinate.testing import InMemoryConnector

from anonlib.constellation.info import NodeInfo
from anonlib.errors import SinkError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import TASK_NAME, make_app
from anonlib.jobs.db import JobRow
from anonlib.jobs.enqueue import Enqueued, StudyQueue
from anonlib.jobs.intake import StudyState, study_state_from_json
from anonlib.jobs.resume import NodeWatch, resume_failed
from anonlib.jobs.retry import StudyRetry
from anonlib.orthanc.client import NotStable
from anonlib.orthanc.stability import is_settled
from anonlib.sinks.folder import ManifestRow
from anonlib.sinks.study_tree import write_studies
from anonlib.spool import Prepared, Spool, spool_key
from anonlib.studyjob import StudyResult

STUDY = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
PATIENT = "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718"
A = "PSEUDO1/20200101_abcdef0123/1_CT/2.25.1.dcm"
B = "PSEUDO1/20200101_abcdef0123/1_CT/2.25.2.dcm"
C = "PSEUDO1/20200101_abcdef0123/2_CT/2.25.3.dcm"


# -- stability ----------------------------------------------------------------------------------

@pytest.mark.parametrize("is_stable, last_update, now, age, expected", [
    (False, "20240101T120000", "20240101T130000", 60, False),  # Orthanc says not stable
    (True, "20240101T120000", "20240101T120100", 60, True),  # a minute of quiet
    (True, "20240101T120000", "20240101T120030", 60, False),  # "stable" at once after a restart
    (True, "20240101T120000", "", 0, True),  # no StableAge known: Orthanc's word
    (True, "garbage", "20240101T120100", 60, False),  # unreadable: not settled
])
def test_a_study_is_stable_only_after_its_quiet_time(is_stable: bool, last_update: str, now: str, age: int,
                                                     expected: bool) -> None:
    assert is_settled(is_stable, last_update, now, age) is expected
    state = study_state_from_json({"ID": STUDY, "ParentPatient": PATIENT, "IsStable": is_stable,
                                   "LastUpdate": last_update}, now, age)
    assert state.stable is expected


# -- the study folder, whole at once ------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_study_folder_is_written_whole_and_grows_whole(tmp_path: Path) -> None:
    write_studies(tmp_path, {A: b"a", B: b"b"})
    assert _tree(tmp_path) == {A: b"a", B: b"b"}
    assert stat.S_IMODE((tmp_path / A).stat().st_mode) == 0o600
    inode = (tmp_path / A).stat().st_ino
    write_studies(tmp_path, {C: b"c"})  # a late instance: the delivered ones stay (hard-linked)
    assert _tree(tmp_path) == {A: b"a", B: b"b", C: b"c"}
    assert (tmp_path / A).stat().st_ino == inode
    write_studies(tmp_path, {B: b"b2"}, drop=[C])  # C moved to the quarantine tree
    assert _tree(tmp_path) == {A: b"a", B: b"b2"}
    assert not [p for p in (tmp_path / "PSEUDO1").iterdir() if p.name.startswith(".")]  # no leftovers


def test_an_unchanged_study_is_not_touched_and_leftovers_of_a_crash_go(tmp_path: Path) -> None:
    write_studies(tmp_path, {A: b"a"})
    folder = tmp_path / "PSEUDO1" / "20200101_abcdef0123"
    before = folder.stat().st_ino
    stale = tmp_path / "PSEUDO1" / ".tmp-20200101_abcdef0123-x1"
    stale.mkdir()
    (stale / "half.dcm").write_bytes(b"half")
    write_studies(tmp_path, {A: b"a"})
    assert folder.stat().st_ino == before and not stale.exists()
    write_studies(tmp_path, {}, drop=[A])  # its only instance moved away: the folder goes
    assert not folder.exists()


def test_a_path_outside_the_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="not a path of the organized tree"):
        write_studies(tmp_path, {"../x/y.dcm": b"x"})


# -- the spool ----------------------------------------------------------------------------------

def _row(path: str, data: bytes, status: str = "written") -> ManifestRow:
    import hashlib

    return ManifestRow(path, "PSEUDO1", "2.25.9", "2.25.8", path.rsplit("/", 1)[1][:-4], "1.2.840.10008.5.1.4.1.1.2",
                       "CT", "20200101", "1", hashlib.sha256(data).hexdigest(), status)


def test_the_spool_keeps_a_result_privately_for_its_key_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    prepared = Prepared(3, 1, ("2.25.9",), ((_row(A, b"a"), b"a"), (_row(B, b"b", "quarantined"), b"b")))
    key = spool_key("20240101T120000", ["i2", "i1"], "plan", "reviews")
    assert key == spool_key("20240101T120000", ["i1", "i2"], "plan", "reviews")  # order-free
    spool.save("intake", STUDY, key, prepared)
    folder = tmp_path / "spool" / "intake" / STUDY
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    assert spool.load("intake", STUDY, key) == prepared
    other = spool_key("20240101T120500", ["i1", "i2", "i3"], "plan", "reviews")  # the study grew
    assert spool.load("intake", STUDY, other) is None and not folder.exists()  # discarded


def test_a_damaged_spool_is_discarded_and_odd_ids_are_never_paths(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.save("intake", STUDY, "k", Prepared(1, 0, ("2.25.9",), ((_row(A, b"a"), b"a"),)))
    kept = next((tmp_path / "spool" / "intake" / STUDY).glob("*.dcm"))
    kept.write_bytes(b"tampered")
    assert spool.load("intake", STUDY, "k") is None
    spool.save("intake", "../../etc", "k", Prepared(0, 0, (), ()))
    assert spool.load("intake", "../../etc", "k") is None and not (tmp_path / "etc").exists()


# -- the task: not yet stable is a later job, not a failure ------------------------------------

@dataclass
class Source:
    states: list[StudyState]
    name: str = "intake"
    stable_age: float = 3

    def study(self, study_id: str, *, count: bool = False) -> StudyState | None:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def patient_studies(self, patient_id: str) -> list[str] | None:
        return None


@dataclass
class Outcomes:
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record_outcome(self, job_id: int, node: str, study_id: str, attempt: int, state: str, **kw: Any) -> None:
        self.rows.append((state, kw))

    def record_rejections(self, *args: Any) -> None:
        pass


def _run(source: Source, process: Any, requeue: Any) -> tuple[Outcomes, list[dict[str, Any]]]:
    connector = InMemoryConnector()
    app = make_app(connector=connector, retry=StudyRetry(max_attempts=2, base_seconds=0, cap_seconds=0))
    outcomes = Outcomes()
    previous = runtime_module.install(runtime_module.Runtime(
        info=None, process=process, source=lambda node: source, outcomes=outcomes, requeue=requeue))
    try:
        StudyQueue(app, b"s" * 32).defer("intake", STUDY, PATIENT, force=True)
        app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
    finally:
        runtime_module.install(previous)
    return outcomes, sorted(connector.jobs.values(), key=lambda j: j["id"])


def test_a_study_not_yet_stable_gets_a_later_job_and_no_failure() -> None:
    requeued: list[tuple[Any, ...]] = []
    calls: list[str] = []
    unstable = StudyState(STUDY, PATIENT, False, "20240101T120000", 1)
    outcomes, jobs = _run(Source([unstable]), lambda *a, **k: calls.append("process"),
                          lambda *a, **k: requeued.append((*a, k)))
    assert calls == [] and jobs[0]["status"] == "succeeded"
    assert requeued == [("intake", STUDY, PATIENT, {"force": True, "delay": 3})]
    state, kept = outcomes.rows[-1]
    assert state == "waiting" and "not yet stable" in kept["error_message"]


def test_a_study_that_changed_while_processed_is_taken_again_later() -> None:
    requeued: list[tuple[Any, ...]] = []

    def process(*args: Any, **kwargs: Any) -> StudyResult:
        raise NotStable("intake: study x changed while the job worked on it")

    stable = StudyState(STUDY, PATIENT, True, "20240101T120000", 6)
    outcomes, jobs = _run(Source([stable]), process, lambda *a, **k: requeued.append(a))
    assert jobs[0]["status"] == "succeeded" and len(requeued) == 1
    assert [s for s, _ in outcomes.rows] == ["running", "waiting"]
    assert "changed while the job worked" in outcomes.rows[-1][1]["error_message"]


def test_without_a_queue_not_yet_stable_is_retried() -> None:
    unstable = StudyState(STUDY, PATIENT, False, "20240101T120000", 1)
    stable = StudyState(STUDY, PATIENT, True, "20240101T120009", 6)
    done = StudyResult("intake", STUDY, "done", instances=6, released=6)
    outcomes, jobs = _run(Source([unstable, stable]), lambda *a, **k: done, None)
    assert jobs[0]["status"] == "succeeded" and jobs[0]["attempts"] == 2  # one retry
    assert [s for s, _ in outcomes.rows] == ["error", "running", "done"]


# -- resume after a reconnection ----------------------------------------------------------------

def _node(name: str) -> NodeInfo:
    return NodeInfo(name, name, f"http://{name}.invalid:8042", "u", "p", "127.0.0.1", 4242, "AET")


def test_the_watch_resumes_once_per_reconnection_when_nothing_is_down() -> None:
    answering = {"intake": True, "research": True}
    watch = NodeWatch({n: _node(n) for n in answering}, probe=lambda node: answering[node.name])
    back, down = watch.poll()
    assert back == {"intake", "research"} and watch.should_resume(back, down)  # first look
    assert not watch.should_resume(*watch.poll())  # nothing changed
    answering["research"] = False
    assert not watch.should_resume(*watch.poll())
    answering["research"], answering["intake"] = True, False  # research back, intake down: wait
    back, down = watch.poll()
    assert back == {"research"} and down == {"intake"} and not watch.should_resume(back, down)
    answering["intake"] = True
    assert watch.should_resume(*watch.poll())
    assert not watch.should_resume(*watch.poll())


def _job(job_id: int, error_class: str, study: str, force: bool = False) -> JobRow:
    return JobRow(job_id, TASK_NAME, "intake", study, "failed", 8, "error", error_class, "m", "", False, force)


def test_only_transient_failures_are_resumed_with_their_force() -> None:
    class Db:
        def jobs(self, **kwargs: Any) -> list[JobRow]:
            assert kwargs["outstanding_failures"]
            return [_job(1, "TransientError", "s1", force=True), _job(2, "StudyJobError", "s2"),
                    _job(3, "OrthancUnavailable", "gone")]

    class Queue:
        deferred: list[tuple[str, str, str, bool]] = []

        def defer(self, node: str, study_id: str, patient_id: str, *, force: bool = False) -> Enqueued:
            self.deferred.append((node, study_id, patient_id, force))
            return Enqueued(node, study_id, 9, True)

    source = Source([StudyState("s1", PATIENT, True, "x", 1)])
    source.study = lambda study_id, count=False: (  # type: ignore[method-assign]
        None if study_id == "gone" else StudyState(study_id, PATIENT, True, "x", 1))
    queue = Queue()
    again = resume_failed(Db(), queue, {"intake": source})  # type: ignore[arg-type]
    assert queue.deferred == [("intake", "s1", PATIENT, True)] and len(again) == 1


def test_private_spool_survives_a_umask_of_zero(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        Spool(tmp_path / "spool").save("intake", STUDY, "k", Prepared(1, 0, ("2.25.9",), ((_row(A, b"a"), b"a"),)))
    finally:
        os.umask(old)
    for path in (tmp_path / "spool").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_jobs_wait_waits_for_a_transient_failure_to_be_resumed() -> None:
    from anonlib.jobs.status import RESUME_GRACE, QueueStatus, check

    class Db:
        def counts(self) -> dict[str, int]:
            return {"failed": 2}

        def deliveries(self, node: str) -> dict[str, Any]:
            return {}

        def jobs(self, **kwargs: Any) -> list[JobRow]:
            old = JobRow(1, TASK_NAME, "intake", "s1", "failed", 8, "error", "TransientError", "m", "", False,
                         outcome_age=RESUME_GRACE + 5)
            return [old, _job(2, "StudyJobError", "s2")]

    class Listing:
        def studies(self) -> list[StudyState]:
            return [StudyState(s, PATIENT, True, "x") for s in ("s1", "s2")]

    down_now: set[str] = {"research"}
    status = check(Db(), {"intake": Listing()}, lambda: down_now)  # type: ignore[arg-type, dict-item]
    assert status.resuming == ["s1"] and not status.settled  # research is down: it will be resumed
    down_now.clear()
    status = check(Db(), {"intake": Listing()}, lambda: down_now)  # type: ignore[arg-type, dict-item]
    assert status.resuming == [] and status.settled and not status.done  # old, nodes up: for good
    assert not QueueStatus(resuming=["s"]).settled


def test_a_waiting_job_says_why_in_its_line() -> None:
    from anonlib.jobs.commands import describe_job

    line = describe_job(JobRow(5, TASK_NAME, "intake", STUDY, "succeeded", 1, "waiting", "",
                               "intake: study x is not yet stable: queued again in 4 s", "", False))
    assert "waiting" in line and "not yet stable: queued again in 4 s" in line and "Error" not in line


# -- a destination that refuses, crashes or is down ------------------------------------------------

def _research(job_state: str, echo: list[int]) -> Any:
    """A research node whose forward job ends in ``job_state``; C-ECHO answers ``echo`` in turn."""
    import httpx
    import pyorthanc

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/echo"):
            return httpx.Response(echo.pop(0), json={})
        if path.endswith("/store"):
            return httpx.Response(200, json={"ID": "job-1"})
        if path.startswith("/jobs/"):
            return httpx.Response(200, json={"State": job_state, "ErrorCode": 9,
                                             "ErrorDescription": "Error in the network protocol"})
        return httpx.Response(404, json={})

    return pyorthanc.Orthanc("http://research.invalid", return_raw_response=True,
                             transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("echo, expected, message", [
    ([200, 200], "DestinationRefused", "refused the study"),  # answers before and after: a refusal (or a restart)
    ([200, 500], "DestinationWentDown", "went down while receiving this study"),  # a crash
    ([500, 500], "JobFailed", "Orthanc job Failure"),  # it was down: transient
])
def test_a_failed_forward_is_told_apart(echo: list[int], expected: str, message: str) -> None:
    from anonlib.orthanc.transfer import forward

    with pytest.raises(Exception) as caught:
        forward(_research("Failure", echo), "research", "dest", "study-1")
    assert type(caught.value).__name__ == expected and message in str(caught.value)
    forward(_research("Success", [200]), "research", "dest", "study-1")  # and a success is one


def test_of_two_studies_with_one_uid_the_one_holding_the_instances_is_found() -> None:
    """A damaged PatientID puts one StudyInstanceUID under two patients: two Orthanc studies."""
    import httpx
    import pyorthanc

    from anonlib.orthanc.transfer import find_study

    held = {"s-1": ["2.25.1"], "s-2": ["2.25.2", "2.25.3"]}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/tools/lookup":
            return httpx.Response(200, json=[{"ID": "s-1", "Type": "Study"}, {"ID": "s-2", "Type": "Study"}])
        study = path.split("/")[2]
        return httpx.Response(200, json=[{"MainDicomTags": {"SOPInstanceUID": uid}} for uid in held[study]])

    client = pyorthanc.Orthanc("http://research.invalid", return_raw_response=True,
                               transport=httpx.MockTransport(handler))
    assert find_study(client, "research", "1.2.3", {"2.25.2", "2.25.3"}) == "s-2"
    assert find_study(client, "research", "1.2.3", {"2.25.1"}) == "s-1"
    assert find_study(client, "research", "1.2.3") == "s-1"  # without instances: the first


# -- intake's plugin when Orthanc (re)starts ---------------------------------------------------

def test_the_plugin_reconciles_when_orthanc_starts() -> None:
    import json
    from contextlib import contextmanager

    from anonlib.jobs.plugin import IntakePlugin

    studies = [{"ID": "s-stable", "ParentPatient": PATIENT, "IsStable": True, "LastUpdate": "20240101T120000"},
               {"ID": "s-arriving", "ParentPatient": PATIENT, "IsStable": False, "LastUpdate": "20240101T120000"}]

    def rest_get(path: str) -> bytes:
        assert path == "/studies?expand"
        return json.dumps(studies).encode()

    class Db:
        @contextmanager
        def try_lock(self, name: str) -> Iterator[object]:
            yield object()

        def deliveries(self, node: str, ids: Any = None) -> dict[str, Any]:
            return {}

        def study_jobs(self, node: str, ids: Any = None) -> dict[str, Any]:
            return {}

    deferred: list[tuple[str, str, str]] = []

    class Queue:
        def defer(self, node: str, study_id: str, patient_id: str, **kwargs: Any) -> Enqueued:
            deferred.append((node, study_id, patient_id))
            return Enqueued(node, study_id, 1, True)

    logged: list[str] = []
    plugin = IntakePlugin("intake", "postgresql://x/y", rest_get, logged.append, logged.append)
    plugin._jobs_db = lambda: Db()  # type: ignore[method-assign, assignment, return-value]
    plugin.queue = lambda: Queue()  # type: ignore[method-assign, assignment, return-value]
    plugin.on_started().join(timeout=10)
    assert deferred == [("intake", "s-stable", PATIENT)]  # the study job waits for its quiet time
    assert logged == ["anonlib: node started: 1 stable studies considered, 1 queued"]

    def broken(path: str) -> bytes:
        raise RuntimeError("Orthanc is stopping")

    failing = IntakePlugin("intake", "postgresql://x/y", broken, logged.append, logged.append)
    failing.on_started().join(timeout=10)  # never raises into Orthanc
    assert "reconcile at start failed (intake: GET studies?expand: RuntimeError)" in logged[-1]


def test_catch_up_reconciles_when_a_node_reconnects_and_again_after_its_stable_age(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.jobs import catchup as catchup_module
    from anonlib.jobs.catchup import CatchUp, CatchUpReport

    answering = {"intake": True, "research": True}
    watch = NodeWatch({n: _node(n) for n in answering}, probe=lambda node: answering[node.name])
    now = [100.0]
    resumed: list[float] = []
    reconciled: list[float] = []
    monkeypatch.setattr(catchup_module, "resume_failed", lambda db, queue, sources: resumed.append(now[0]) or [])
    catchup = CatchUp(None, None, {"intake": Source([])}, watch=watch, clock=lambda: now[0])  # type: ignore[arg-type, dict-item]
    monkeypatch.setattr(catchup, "follow_changes", lambda node, report: report)
    monkeypatch.setattr(catchup, "reconcile", lambda node, report: reconciled.append(now[0]) or report)

    def tick(seconds: float) -> CatchUpReport:
        now[0] += seconds
        return catchup.run_once(reconcile=False)

    assert tick(0).reconnected == ("intake", "research")  # the first look: everything is "back"
    assert reconciled == [100.0] and resumed == [100.0]
    tick(1)
    assert reconciled == [100.0]  # nothing new
    answering["intake"] = False
    tick(1)
    answering["intake"] = True
    assert tick(1).reconnected == ("intake",)
    assert reconciled == [100.0, 103.0] and resumed == [100.0, 103.0]
    tick(1)
    tick(2)
    assert reconciled == [100.0, 103.0]
    tick(1)  # Source.stable_age is 3: once more at 103 + 3 + 1
    assert reconciled == [100.0, 103.0, 107.0]
    tick(10)
    assert reconciled == [100.0, 103.0, 107.0] and resumed == [100.0, 103.0]
