"""The job queue without a database: locks, retry policy, dedupe while queued, the task's
outcomes and retries (procrastinate's InMemoryConnector), catch-up decisions, wait logic,
the Orthanc REST reader (httpx mock transport)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from procrastinate.jobs import Job
from procrastinate.testing import InMemoryConnector

from anonlib.constellation.info import NodeInfo
from anonlib.errors import ConfigError
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import TASK_NAME, conninfo, make_app
from anonlib.jobs.catchup import needs_enqueue
from anonlib.jobs.db import JobRow, StudyJobs
from anonlib.jobs.enqueue import StudyQueue, enqueue_patient, enqueue_query, enqueue_study
from anonlib.jobs.intake import HttpSource, OrthancUnavailable, StudyState
from anonlib.jobs.locks import PATIENT_LOCK_HEX, parse_queueing_lock, patient_lock, study_queueing_lock
from anonlib.jobs.retry import StudyRetry
from anonlib.jobs.status import QueueStatus, wait
from anonlib.jobs.tasks import error_summary
from anonlib.jobs.worker import PhiSafeLogFilter
from anonlib.store.base import DeliveryRecord
from anonlib.studyjob import StudyJobError, StudyResult, TransientError

SECRET = b"s" * 32
OTHER_SECRET = b"t" * 32
PATIENT = "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718"
STUDY_A = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
STUDY_B = "11111111-22222222-33333333-44444444-55555555"
LAST_UPDATE = "20240101T120000"


# -- fakes ------------------------------------------------------------------------------------

@dataclass
class FakeSource:
    """A source node held in memory (the StudySource + find interface)."""

    studies: dict[str, StudyState] = field(default_factory=dict)
    name: str = "intake"

    def add(self, study_id: str, patient_id: str = PATIENT, stable: bool = True, instances: int = 3) -> None:
        self.studies[study_id] = StudyState(study_id, patient_id, stable, LAST_UPDATE, instances)

    def study(self, study_id: str, *, count: bool = False) -> StudyState | None:
        return self.studies.get(study_id)

    def patient_studies(self, patient_id: str) -> list[str] | None:
        found = [s.study_id for s in self.studies.values() if s.patient_id == patient_id]
        return found or None

    def find_studies(self, query: Mapping[str, str]) -> list[str]:
        return sorted(self.studies)


@dataclass
class FakeOutcomes:
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, int, str]] = field(default_factory=list)
    rejections: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)

    def record_outcome(self, job_id: int, node: str, study_id: str, attempt: int, state: str,
                       **kwargs: Any) -> None:
        self.rows[job_id] = {"node": node, "study_id": study_id, "attempt": attempt, "state": state, **kwargs}
        self.history.append((job_id, attempt, state))

    def record_rejections(self, node: str, study_id: str, last_update: str, rejections: Any) -> None:
        self.rejections[(node, study_id)] = list(rejections)


@dataclass
class FakeProcess:
    """Records calls; raises the queued exceptions first, then returns ``done``."""

    raises: list[BaseException] = field(default_factory=list)
    calls: list[tuple[str, str, bool]] = field(default_factory=list)

    def __call__(self, info: Any, study_id: str, *, node: str, force: bool = False) -> StudyResult:
        self.calls.append((node, study_id, force))
        if self.raises:
            raise self.raises.pop(0)
        return StudyResult(node, study_id, "done", instances=3, released=3)


@pytest.fixture
def source() -> FakeSource:
    fake = FakeSource()
    fake.add(STUDY_A)
    fake.add(STUDY_B, patient_id="other-patient")
    return fake


@pytest.fixture
def outcomes() -> FakeOutcomes:
    return FakeOutcomes()


@pytest.fixture
def process() -> FakeProcess:
    return FakeProcess()


@pytest.fixture
def runtime(source: FakeSource, outcomes: FakeOutcomes, process: FakeProcess) -> Iterator[runtime_module.Runtime]:
    fake = runtime_module.Runtime(info=None, process=process, source=lambda node: source, outcomes=outcomes)
    previous = runtime_module.install(fake)
    yield fake
    runtime_module.install(previous)


@pytest.fixture
def connector() -> InMemoryConnector:
    return InMemoryConnector()


@pytest.fixture
def queue(connector: InMemoryConnector) -> StudyQueue:
    app = make_app(connector=connector, retry=StudyRetry(max_attempts=3, base_seconds=0, cap_seconds=0))
    return StudyQueue(app, SECRET)


def run_jobs(queue: StudyQueue) -> None:
    queue.app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)


def jobs_of(connector: InMemoryConnector) -> list[dict[str, Any]]:
    return sorted(connector.jobs.values(), key=lambda j: j["id"])


# -- locks ------------------------------------------------------------------------------------

def test_patient_lock_is_keyed_stable_and_phi_free() -> None:
    lock = patient_lock(SECRET, PATIENT)
    assert lock == patient_lock(SECRET, PATIENT)
    assert lock.startswith("patient:") and len(lock) == len("patient:") + PATIENT_LOCK_HEX
    assert PATIENT not in lock and PATIENT[:8] not in lock
    assert lock != patient_lock(OTHER_SECRET, PATIENT)  # keyed: useless without the secret
    assert lock != patient_lock(SECRET, PATIENT + "x")


@pytest.mark.parametrize("secret, patient", [(b"short", PATIENT), (SECRET, "")])
def test_patient_lock_refuses_weak_input(secret: bytes, patient: str) -> None:
    with pytest.raises(ValueError):
        patient_lock(secret, patient)


def test_queueing_lock_round_trip() -> None:
    lock = study_queueing_lock("intake", STUDY_A)
    assert lock == f"study:intake:{STUDY_A}"
    assert parse_queueing_lock(lock) == ("intake", STUDY_A)
    assert parse_queueing_lock("patient:abc") is None and parse_queueing_lock(None) is None
    with pytest.raises(ValueError):
        study_queueing_lock("in:take", STUDY_A)


# -- retry policy -----------------------------------------------------------------------------

def _job(attempts: int) -> Job:
    return Job(id=1, queue="studies", lock=None, queueing_lock=None, task_name=TASK_NAME, attempts=attempts)


def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    strategy = StudyRetry(max_attempts=5, base_seconds=2, cap_seconds=10)
    now = datetime.datetime.now(datetime.UTC)
    delays = []
    for attempts in range(4):
        decision = strategy.get_retry_decision(exception=TransientError("x"), job=_job(attempts))
        assert decision is not None and decision.retry_at is not None
        delays.append(round((decision.retry_at - now).total_seconds()))
    assert delays == [2, 4, 8, 10]  # doubled, then capped
    assert strategy.get_retry_decision(exception=TransientError("x"), job=_job(4)) is None  # 5 runs in all
    assert strategy.get_retry_decision(exception=OrthancUnavailable("x"), job=_job(0)) is not None


@pytest.mark.parametrize("exc", [StudyJobError("bad"), ValueError("bug"), KeyError("x")])
def test_other_errors_are_not_retried(exc: Exception) -> None:
    assert StudyRetry().get_retry_decision(exception=exc, job=_job(0)) is None


def test_retry_settings_from_env() -> None:
    strategy = StudyRetry.from_env({"ANONLIB_RETRY_MAX_ATTEMPTS": "3", "ANONLIB_RETRY_BASE_SECONDS": "0.5"})
    assert (strategy.max_attempts, strategy.base_seconds, strategy.cap_seconds) == (3, 0.5, 600.0)
    with pytest.raises(ConfigError):
        StudyRetry.from_env({"ANONLIB_RETRY_MAX_ATTEMPTS": "many"})
    with pytest.raises(ConfigError):
        StudyRetry(max_attempts=0)


# -- dedupe while queued, patient locks ------------------------------------------------------

def test_a_study_waits_in_one_job_only(queue: StudyQueue, connector: InMemoryConnector) -> None:
    first = queue.defer("intake", STUDY_A, PATIENT)
    again = queue.defer("intake", STUDY_A, PATIENT)
    other = queue.defer("intake", STUDY_B, PATIENT)
    assert first.created and not again.created and again.job_id == first.job_id
    assert other.created and other.job_id != first.job_id
    rows = jobs_of(connector)
    assert len(rows) == 2
    assert rows[0]["queueing_lock"] == study_queueing_lock("intake", STUDY_A)
    assert rows[0]["lock"] == rows[1]["lock"] == patient_lock(SECRET, PATIENT)  # same patient
    assert rows[0]["args"] == {"node": "intake", "study_id": STUDY_A}
    assert rows[0]["task_name"] == TASK_NAME


def test_a_study_can_be_queued_again_once_its_job_ran(queue: StudyQueue, connector: InMemoryConnector,
                                                      runtime: runtime_module.Runtime) -> None:
    first = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    second = queue.defer("intake", STUDY_A, PATIENT)
    assert second.created and second.job_id != first.job_id


def test_enqueue_by_study_patient_and_query(queue: StudyQueue, source: FakeSource,
                                            connector: InMemoryConnector) -> None:
    assert enqueue_study(queue, source, "missing") is None
    assert enqueue_patient(queue, source, "missing") is None
    one = enqueue_study(queue, source, STUDY_A)
    assert one is not None and one.created
    by_patient = enqueue_patient(queue, source, PATIENT)
    assert by_patient is not None and [e.created for e in by_patient] == [False]
    by_query = enqueue_query(queue, source, {"ModalitiesInStudy": "CT"})
    assert sorted((e.study_id, e.created) for e in by_query) == sorted([(STUDY_A, False), (STUDY_B, True)])
    assert len(jobs_of(connector)) == 2
    forced = enqueue_study(queue, source, STUDY_A, force=True)
    assert forced is not None and not forced.created  # a waiting job is kept as it is
    with pytest.raises(ConfigError):
        enqueue_query(queue, source, {})
    with pytest.raises(ConfigError):
        enqueue_query(queue, source, {"StudyDate": 2023})  # type: ignore[dict-item]


# -- the task: outcomes, retries ------------------------------------------------------------

def test_the_task_runs_the_study_job_and_records_the_outcome(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        process: FakeProcess, outcomes: FakeOutcomes) -> None:
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    assert process.calls == [("intake", STUDY_A, False)]
    assert jobs_of(connector)[0]["status"] == "succeeded"
    assert job.job_id is not None
    assert outcomes.rows[job.job_id] == {"node": "intake", "study_id": STUDY_A, "attempt": 1, "state": "done",
                                         "last_update": LAST_UPDATE, "instances": 3}
    assert [h[2] for h in outcomes.history] == ["running", "done"]


def test_force_reaches_the_study_job(queue: StudyQueue, runtime: runtime_module.Runtime,
                                     process: FakeProcess) -> None:
    queue.defer("intake", STUDY_A, PATIENT, force=True)
    run_jobs(queue)
    assert process.calls == [("intake", STUDY_A, True)]


def test_transient_errors_are_retried_until_success(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        process: FakeProcess, outcomes: FakeOutcomes) -> None:
    process.raises = [TransientError("research: store: HTTP 503"), TransientError("again")]
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    row = jobs_of(connector)[0]
    assert row["status"] == "succeeded" and row["attempts"] == 3 and len(process.calls) == 3
    assert job.job_id is not None and outcomes.rows[job.job_id]["attempt"] == 3


def test_transient_errors_fail_the_job_after_max_attempts(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        process: FakeProcess, outcomes: FakeOutcomes) -> None:
    process.raises = [TransientError(f"down {i}") for i in range(5)]
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    row = jobs_of(connector)[0]
    assert row["status"] == "failed" and len(process.calls) == 3  # max_attempts=3
    assert job.job_id is not None
    kept = outcomes.rows[job.job_id]
    assert (kept["state"], kept["error_class"], kept["error_message"], kept["attempt"]) == \
        ("error", "TransientError", "down 2", 3)


def test_a_permanent_error_fails_at_once_and_keeps_its_message(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        process: FakeProcess, outcomes: FakeOutcomes) -> None:
    process.raises = [StudyJobError("intake: study is not DICOM we can read")]
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    assert jobs_of(connector)[0]["status"] == "failed" and len(process.calls) == 1
    assert job.job_id is not None
    assert outcomes.rows[job.job_id]["error_message"] == "intake: study is not DICOM we can read"


def test_an_unexpected_error_keeps_only_its_class(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        process: FakeProcess, outcomes: FakeOutcomes) -> None:
    process.raises = [ValueError("PatientName DOE^JOHN is odd")]
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    assert job.job_id is not None
    kept = outcomes.rows[job.job_id]
    assert jobs_of(connector)[0]["status"] == "failed" and kept["error_class"] == "ValueError"
    assert "DOE" not in kept["error_message"]
    assert error_summary(StudyJobError("x" * 900))[1] == "x" * 500


def test_a_vanished_study_ends_as_gone(queue: StudyQueue, connector: InMemoryConnector,
                                       runtime: runtime_module.Runtime, source: FakeSource,
                                       process: FakeProcess, outcomes: FakeOutcomes) -> None:
    job = queue.defer("intake", STUDY_A, PATIENT)
    del source.studies[STUDY_A]
    run_jobs(queue)
    assert process.calls == [] and jobs_of(connector)[0]["status"] == "succeeded"
    assert job.job_id is not None and outcomes.rows[job.job_id]["state"] == "gone"


def test_an_unreachable_node_is_retried(queue: StudyQueue, connector: InMemoryConnector,
                                        runtime: runtime_module.Runtime, source: FakeSource,
                                        process: FakeProcess) -> None:
    calls = {"n": 0}
    real = source.study

    def flaky(study_id: str, *, count: bool = False) -> StudyState | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OrthancUnavailable("intake: read a study: ConnectError")
        return real(study_id, count=count)

    source.study = flaky  # type: ignore[method-assign]
    queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    assert jobs_of(connector)[0]["status"] == "succeeded" and len(process.calls) == 1


def test_phi_safe_log_filter_drops_foreign_tracebacks() -> None:
    def record_for(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            import sys

            return logging.LogRecord("procrastinate.worker", logging.ERROR, __file__, 1, "Job failed", None,
                                     sys.exc_info())

    foreign = record_for(ValueError("DOE^JOHN"))
    assert PhiSafeLogFilter().filter(foreign) and foreign.exc_info is None
    assert "ValueError" in foreign.getMessage() and "DOE" not in foreign.getMessage()
    ours = record_for(StudyJobError("phi-free"))
    assert PhiSafeLogFilter().filter(ours) and ours.exc_info is not None


# -- catch-up decisions ------------------------------------------------------------------

def _state(stable: bool = True, last_update: str = LAST_UPDATE, instances: int | None = 3) -> StudyState:
    return StudyState(STUDY_A, PATIENT, stable, last_update, instances)


def _record(last_update: str = LAST_UPDATE, instances: int = 3, status: str = "done") -> DeliveryRecord:
    return DeliveryRecord("intake", STUDY_A, last_update, instances, instances, 0, "2.25.1", status)


@pytest.mark.parametrize("state, record, jobs, expected", [
    (_state(), None, None, True),  # never delivered
    (_state(stable=False), None, None, False),  # not stable yet: its StableStudy will come
    (_state(), _record(), None, False),  # delivered as it is
    (_state(), _record(status="held"), None, False),  # held as it is
    (_state(), _record(last_update="20230101T000000"), None, True),  # grew since
    (_state(instances=4), _record(), None, True),  # an instance more, same LastUpdate
    (_state(instances=None), _record(), None, False),  # count unknown: LastUpdate decides
    (_state(), None, StudyJobs(queued=True), False),  # a job waits already
    (_state(), None, StudyJobs(running_seen=[LAST_UPDATE]), False),  # a running job covers it
    (_state(), None, StudyJobs(running_seen=[None]), False),  # a job just started: it will see it
    (_state(), None, StudyJobs(running_seen=["20230101T000000"]), True),  # a running job saw less
    (_state(), None, StudyJobs(failed_update=LAST_UPDATE), False),  # failed on this state: a human
    (_state(), None, StudyJobs(failed_update=""), False),  # failed before seeing the study
    (_state(), None, StudyJobs(failed_update="20230101T000000"), True),  # changed since it failed
])
def test_needs_enqueue(state: StudyState, record: DeliveryRecord | None, jobs: StudyJobs | None,
                       expected: bool) -> None:
    assert needs_enqueue(state, record, jobs) is expected


# -- wait -----------------------------------------------------------------------------------

def _failed(study_id: str) -> JobRow:
    return JobRow(7, TASK_NAME, "intake", study_id, "failed", 1, "error", "StudyJobError", "bad", "", False)


@pytest.mark.parametrize("status, settled, done", [
    (QueueStatus(), True, True),
    (QueueStatus(counts={"todo": 1}), False, False),
    (QueueStatus(counts={"doing": 1}), False, False),
    (QueueStatus(counts={"succeeded": 4, "failed": 1}), True, True),  # that failure was superseded
    (QueueStatus(unstable=["s"]), False, False),
    (QueueStatus(undelivered=["s"]), False, False),  # stable, no job yet: the event is on its way
    (QueueStatus(undelivered=["s"], failures=[_failed("s")]), True, False),
    (QueueStatus(failures=[_failed("s")]), True, False),
])
def test_queue_status(status: QueueStatus, settled: bool, done: bool) -> None:
    assert (status.settled, status.done) == (settled, done)


def test_wait_polls_until_settled_or_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.jobs import status as status_module

    answers = [QueueStatus(counts={"todo": 2}), QueueStatus(undelivered=["s"]), QueueStatus()]
    monkeypatch.setattr(status_module, "check", lambda db, sources, down=None: answers.pop(0))
    now = [0.0]
    ok, final = wait(None, {}, timeout=10, poll=1, clock=lambda: now[0],  # type: ignore[arg-type]
                     sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert ok and final.done and now[0] == 2.0
    monkeypatch.setattr(status_module, "check", lambda db, sources, down=None: QueueStatus(counts={"doing": 1}))
    now[0] = 0.0
    ok, final = wait(None, {}, timeout=3, poll=1, clock=lambda: now[0],  # type: ignore[arg-type]
                     sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not ok and not final.settled and now[0] == 3.0


# -- the REST reader ----------------------------------------------------------------------

NODE = NodeInfo("intake", "intake", "http://orthanc.invalid:8042", "u", "p", "127.0.0.1", 4242, "AET")


def _source(handler: Any) -> HttpSource:
    return HttpSource(NODE, transport=httpx.MockTransport(handler))


def test_http_source_reads_states_counts_changes_and_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.jobs import intake

    monkeypatch.setattr(intake, "PAGE", 2)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/studies/{STUDY_A}":
            return httpx.Response(200, json={"ID": STUDY_A, "ParentPatient": PATIENT, "IsStable": True,
                                             "LastUpdate": LAST_UPDATE})
        if path == f"/studies/{STUDY_A}/statistics":
            return httpx.Response(200, json={"CountInstances": 5})
        if path == "/studies":
            since = int(request.url.params["since"])
            items = [{"ID": f"s{i}", "ParentPatient": "p", "IsStable": i % 2 == 0, "LastUpdate": "x"}
                     for i in range(5)][since:since + 2]
            return httpx.Response(200, json=items)
        if path == "/changes":
            return httpx.Response(200, json={"Changes": [{"Seq": 6, "ChangeType": "StableStudy", "ID": STUDY_A}],
                                             "Last": 6, "Done": True})
        if path == "/tools/find":
            return httpx.Response(200, json=[STUDY_A])
        return httpx.Response(404, json={"Message": "Unknown resource"})

    with _source(handler) as source:
        assert source.study(STUDY_A) == StudyState(STUDY_A, PATIENT, True, LAST_UPDATE, None)
        assert source.study(STUDY_A, count=True) == StudyState(STUDY_A, PATIENT, True, LAST_UPDATE, 5)
        assert source.study("missing") is None and source.patient_studies("missing") is None
        assert [s.study_id for s in source.studies()] == ["s0", "s1", "s2", "s3", "s4"]
        page = source.changes(5)
        assert (page.last, page.done, page.changes[0].change_type) == (6, True, "StableStudy")
        assert source.find_studies({"StudyDate": "2023"}) == [STUDY_A]


@pytest.mark.parametrize("answer", [
    httpx.Response(500, text="PatientName DOE^JOHN broke me"),
    httpx.Response(503),
    httpx.ConnectError("refused"),
])
def test_http_source_failures_are_unavailable_and_phi_free(answer: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    with _source(handler) as source, pytest.raises(OrthancUnavailable) as caught:
        source.study(STUDY_A)
    assert "DOE" not in str(caught.value) and "intake" in str(caught.value)


def test_conninfo_accepts_postgres_only() -> None:
    made = conninfo("postgresql+psycopg2://u:p@h:5/db?sslmode=disable")
    assert made.startswith("host='h' port='5' user='u' password='p' dbname='db' sslmode='disable' ")
    assert "keepalives='1'" in made and "-c statement_timeout=300s" in made
    assert "password='it\\'s'" in conninfo("postgresql://u:it%27s@h/db")  # libpq quoting
    with pytest.raises(ConfigError):
        conninfo("sqlite:///x.db")
    with pytest.raises(ConfigError):
        make_app()


def test_job_lines_show_what_operators_need() -> None:
    from anonlib.jobs.commands import describe_job

    line = describe_job(_failed(STUDY_A))
    for part in ("7", TASK_NAME, "failed", "intake", STUDY_A, "StudyJobError: bad"):
        assert part in line
    superseded = JobRow(8, TASK_NAME, "intake", STUDY_A, "failed", 2, "error", "TransientError", "x", "", True)
    assert "[superseded]" in describe_job(superseded)
    waiting = JobRow(9, TASK_NAME, "intake", STUDY_A, "todo", 1, "error", "TransientError", "x",
                     "2026-01-01T00:00:00+00", False)
    assert "next try 2026-01-01" in describe_job(waiting)


def test_a_node_that_dropped_the_connection_while_storing_is_tried_again_once_only() -> None:
    """Issue 11: an instance that crashes research must not crash it 8 times."""
    from anonlib.orthanc.client import NodeDropped

    strategy = StudyRetry(max_attempts=8, base_seconds=0, cap_seconds=0)
    dropped = NodeDropped("research: the connection dropped while an instance was stored")
    assert strategy.get_retry_decision(exception=dropped, job=_job(0)) is not None
    assert strategy.get_retry_decision(exception=dropped, job=_job(1)) is None
    assert strategy.get_retry_decision(exception=TransientError("down"), job=_job(1)) is not None


def test_an_upload_the_node_drops_is_node_dropped_a_refused_one_plain_transient() -> None:
    """The seam: a node that closes the connection in the middle of storing an instance (as a
    crashing Orthanc does) versus one that is not there at all (down, restarting)."""
    import httpx
    import pyorthanc

    from anonlib.orthanc.client import NodeDropped
    from anonlib.orthanc.transfer import upload

    def dropping(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    def refusing(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    for handler, expected in ((dropping, NodeDropped), (refusing, TransientError)):
        client = pyorthanc.Orthanc("http://research", return_raw_response=True,
                                   transport=httpx.MockTransport(handler))
        with pytest.raises(expected) as info:
            upload(client, "research", b"DICM")
        assert (type(info.value) is NodeDropped) == (expected is NodeDropped)


def test_parallel_uploads_store_every_instance_and_a_drop_is_not_hidden_by_the_others() -> None:
    """upload_all sends several instances at once; when the node crashes on one of them (the
    connection drops) the others fail too (refused): the error raised is still NodeDropped,
    whatever order the uploads ended in (the retry strategy tries it once only)."""
    import threading

    import httpx
    import pyorthanc

    from anonlib.orthanc.client import NodeDropped
    from anonlib.orthanc.transfer import upload_all

    stored: list[bytes] = []
    lock = threading.Lock()

    def storing(request: httpx.Request) -> httpx.Response:
        with lock:
            stored.append(request.read())
        return httpx.Response(200, json={"Status": "Success", "ID": "x"})

    client = pyorthanc.Orthanc("http://research", return_raw_response=True, transport=httpx.MockTransport(storing))
    instances = [f"DICM{n}".encode() for n in range(9)]
    upload_all(client, "research", instances, threads=4)
    assert sorted(stored) == sorted(instances)

    def crashing(request: httpx.Request) -> httpx.Response:
        if request.read() == b"DICM7":  # the last in order: the refused ones come first
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        raise httpx.ConnectError("Connection refused", request=request)

    client = pyorthanc.Orthanc("http://research", return_raw_response=True, transport=httpx.MockTransport(crashing))
    with pytest.raises(NodeDropped):
        upload_all(client, "research", instances, threads=4)
    with pytest.raises(TransientError) as refused:
        upload_all(client, "research", instances[:3], threads=4)
    assert type(refused.value) is TransientError


def test_a_partial_study_succeeds_and_its_outcome_names_the_rejected_instances(
        queue: StudyQueue, connector: InMemoryConnector, runtime: runtime_module.Runtime,
        outcomes: FakeOutcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: one poison instance does not fail its study; the job says which and why."""
    reason = "partial: 1 of 3 instances not delivered: abc-123: nesting too deep (more than 32 levels)"
    monkeypatch.setattr(runtime, "process", lambda info, study_id, *, node, force=False: StudyResult(
        node, study_id, "done", instances=3, released=2, rejected=1, reason=reason))
    job = queue.defer("intake", STUDY_A, PATIENT)
    run_jobs(queue)
    assert jobs_of(connector)[0]["status"] == "succeeded"
    assert job.job_id is not None
    row = outcomes.rows[job.job_id]
    assert (row["state"], row["error_class"]) == ("done", "Partial")
    assert row["error_message"] == reason.removeprefix("partial: ")  # jobs list: "Partial: 1 of 3 ..."
