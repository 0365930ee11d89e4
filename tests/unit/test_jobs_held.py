"""Held studies are never silent (fakes at the seams, no database): ``jobs wait`` exits 5 and
says how many and how to see them; ``jobs list --status held`` lists them with the gate's
reason; ``jobs retry --held`` queues each again, forced, and the study job runs forced;
``constellation status`` counts them; the gate's reason names categories and counts only. And
partial studies keep every rejection reason: the task records each rejected instance, not only
the five the reason names; ``jobs list --status partial`` shows them all; ``jobs list``, ``jobs
wait`` and ``constellation status`` say how many studies were delivered partially."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from procrastinate.testing import InMemoryConnector

from anonlib.audit.model import AuditResult, Finding
from anonlib.cli import main
from anonlib.jobs import runtime as runtime_module
from anonlib.jobs.app import TASK_NAME, make_app
from anonlib.jobs.db import JobRow, RejectedInstance
from anonlib.jobs.enqueue import StudyQueue
from anonlib.jobs.held import HELD_EXIT, held_hint
from anonlib.jobs.intake import StudyState
from anonlib.jobs.partial import partial_hint
from anonlib.jobs.retry import StudyRetry
from anonlib.jobs.status import check
from anonlib.store.base import DeliveryRecord
from anonlib.studyjob import StudyResult, hold_reason, partial_reason

PATIENT = "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718"
DONE, HELD, GONE = "11111111-aaaaaaaa", "22222222-bbbbbbbb", "33333333-cccccccc"
LAST_UPDATE = "20240101T120000"
REASON = "audit failed: leak/A names (2), safe_harbor/A names (2)"


@dataclass
class FakeSource:
    """A source node in memory: ``studies()`` for the status check, ``study()`` for enqueueing."""

    states: dict[str, StudyState] = field(default_factory=dict)
    name: str = "intake"

    def studies(self) -> Iterator[StudyState]:
        return iter(self.states.values())

    def study(self, study_id: str, *, count: bool = False) -> StudyState | None:
        return self.states.get(study_id)

    def close(self) -> None:
        pass


def _record(study_id: str, status: str, reason: str = "") -> DeliveryRecord:
    return DeliveryRecord("intake", study_id, LAST_UPDATE, 3, 0 if status == "held" else 3, 0, "2.25.9",
                          status, reason, runs=1)


@dataclass
class FakeDb:
    """The JobsDb calls the status check and the held listing make."""

    records: dict[str, DeliveryRecord] = field(default_factory=dict)
    rejected: list[RejectedInstance] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"succeeded": 2}

    def deliveries(self, node: str, study_ids: Any = None) -> dict[str, DeliveryRecord]:
        return dict(self.records)

    def held(self) -> list[DeliveryRecord]:
        return [r for r in self.records.values() if r.status == "held"]

    def partial(self) -> list[DeliveryRecord]:
        return [r for r in self.records.values() if r.status == "done" and r.reason.startswith("partial:")]

    def rejections(self, studies: Any = None) -> list[RejectedInstance]:
        return [r for r in self.rejected if studies is None or (r.node, r.study_id) in studies]

    def jobs(self, *, outstanding_failures: bool = False, latest_of: Any = None, **_: Any) -> list[JobRow]:
        if outstanding_failures:
            return []
        return [JobRow(12, TASK_NAME, node, study, "succeeded", 1, "held", "AuditHeld", REASON, "", False)
                for node, study in (latest_of or [])]

    def close(self) -> None:
        pass


@pytest.fixture
def source() -> FakeSource:
    return FakeSource({s: StudyState(s, PATIENT, True, LAST_UPDATE, None) for s in (DONE, HELD)})


@pytest.fixture
def db() -> FakeDb:
    return FakeDb({DONE: _record(DONE, "done"), HELD: _record(HELD, "held", REASON)})


@pytest.fixture
def connector() -> InMemoryConnector:
    return InMemoryConnector()


@pytest.fixture
def queue(connector: InMemoryConnector) -> StudyQueue:
    return StudyQueue(make_app(connector=connector, retry=StudyRetry(max_attempts=1)), b"s" * 32)


@pytest.fixture
def cli_session(monkeypatch: pytest.MonkeyPatch, db: FakeDb, source: FakeSource, queue: StudyQueue) -> None:
    """``anonlib jobs ...`` runs on the fakes."""
    from anonlib.jobs import commands

    @contextmanager
    def fake_session(info: Any) -> Iterator[Any]:
        yield commands.Session(info, db, {"intake": source}, queue)  # type: ignore[arg-type, dict-item]

    monkeypatch.setattr(commands, "session", fake_session)
    monkeypatch.setattr(runtime_module, "load_info", lambda: None)


def test_the_status_check_lists_held_studies_apart(db: FakeDb, source: FakeSource) -> None:
    status = check(db, {"intake": source})  # type: ignore[arg-type, dict-item]
    assert status.done and status.held == [HELD] and status.undelivered == []
    source.states[HELD] = StudyState(HELD, PATIENT, True, "20250101T000000", None)  # changed since it was held
    status = check(db, {"intake": source})  # type: ignore[arg-type, dict-item]
    assert status.held == [] and status.undelivered == [HELD]  # it will be processed again


def test_jobs_wait_exits_5_and_says_how_to_see_held_studies(cli_session: None, db: FakeDb,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "wait", "--timeout", "1"]) == HELD_EXIT == 5
    captured = capsys.readouterr()
    assert "1 held" in captured.out and "nothing pending" in captured.out
    assert "1 study held by the audit gate" in captured.err and "anonlib jobs list --status held" in captured.err
    db.records[HELD] = _record(HELD, "done")  # retried after a fix, delivered
    assert main(["jobs", "wait", "--timeout", "1"]) == 0
    assert "held" not in capsys.readouterr().out


def test_jobs_list_held_shows_the_reason_without_values(cli_session: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list", "--status", "held"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("held  intake") and HELD in lines[0]
    assert "job 12" in lines[0] and REASON in lines[0] and DONE not in lines[0]
    assert lines[1] == held_hint(1)
    assert main(["jobs", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == held_hint(1)  # the plain listing says so too


def test_jobs_retry_held_forces_the_study_job(cli_session: None, connector: InMemoryConnector, queue: StudyQueue,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "retry", "--held"]) == 0
    assert "1 of 1 held studies queued again" in capsys.readouterr().out
    [job] = connector.jobs.values()
    assert job["args"] == {"node": "intake", "study_id": HELD, "force": True}
    calls: list[tuple[str, bool]] = []

    def process(info: Any, study_id: str, *, node: str, force: bool = False) -> StudyResult:
        calls.append((study_id, force))
        return StudyResult(node, study_id, "done", instances=3, released=3)

    fake = runtime_module.Runtime(info=None, process=process, outcomes=_NoOutcomes(),
                                  source=lambda node: FakeSource({HELD: StudyState(HELD, PATIENT, True, LAST_UPDATE, 3)}))
    previous = runtime_module.install(fake)
    try:
        queue.app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
    finally:
        runtime_module.install(previous)
    assert calls == [(HELD, True)]


class _NoOutcomes:
    def record_outcome(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_rejections(self, *args: Any) -> None:
        pass


def test_constellation_status_counts_held_studies(monkeypatch: pytest.MonkeyPatch, db: FakeDb,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from anonlib.constellation import manage
    from anonlib.jobs import held, partial

    info = type("Info", (), {"db_url": "postgresql://x/y"})()
    monkeypatch.setattr(manage, "status", lambda settings: (info, [], []))
    monkeypatch.setattr(held, "JobsDb", lambda url: db)
    monkeypatch.setattr(partial, "JobsDb", lambda url: db)
    assert main(["constellation", "status"]) == 0
    assert "1 study held by the audit gate" in capsys.readouterr().out


def test_the_gate_reason_names_categories_and_counts_only() -> None:
    failed = AuditResult(instances=3, with_originals=3, findings=[
        Finding("leak", "A names", "fail", "s", "i1", "(0008,1030)", "an original name part"),
        Finding("leak", "A names", "fail", "s", "i2", "(0008,1030)", "an original name part"),
        Finding("safe_harbor", "A names", "fail", "s", "i1", "(0010,0010)", "a value remains"),
        Finding("conformance", "dciodvfy", "incomplete", detail="dciodvfy not found"),
    ])
    assert hold_reason(failed) == ("audit failed: leak/A names (2), safe_harbor/A names (1); "
                                   "incomplete: conformance/dciodvfy (1)")
    incomplete = AuditResult(instances=5, with_originals=3, findings=[
        Finding("leak", "originals", "incomplete", "s", f"i{n}", "", "no original matched") for n in range(2)])
    assert hold_reason(incomplete) == "audit incomplete: 2 of 5 instances without their original (leak/originals)"
    assert hold_reason(AuditResult(instances=1)) == ""


# -- partial studies: every rejection reason kept and shown (issue 11) --------------------------------

PARTIAL = "44444444-dddddddd"
REJECTED = [(f"{n:08x}-0000", f"nesting too deep: sequences nested more than 32 levels (#{n})") for n in range(12)]


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.rejections: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def record_outcome(self, *args: Any, **kwargs: Any) -> None:
        self.outcomes.append({"state": args[4], **kwargs})

    def record_rejections(self, node: str, study_id: str, last_update: str, rejections: Any) -> None:
        self.rejections[(node, study_id)] = list(rejections)


def _run(queue: StudyQueue, result: StudyResult) -> Recorder:
    recorder = Recorder()
    fake = runtime_module.Runtime(info=None, process=lambda *a, **k: result, outcomes=recorder,
                                  source=lambda node: FakeSource({PARTIAL: StudyState(PARTIAL, PATIENT, True,
                                                                                      LAST_UPDATE, 14)}))
    previous = runtime_module.install(fake)
    try:
        queue.defer("intake", PARTIAL, PATIENT)
        queue.app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
    finally:
        runtime_module.install(previous)
    return recorder


def test_the_task_records_every_rejected_instance_not_only_the_five_named(queue: StudyQueue,
                                                                         connector: InMemoryConnector) -> None:
    reason = partial_reason(REJECTED, 14)
    assert reason.count("nesting too deep") == 5 and reason.endswith(
        "and 7 more (anonlib jobs list --status partial)")
    recorder = _run(queue, StudyResult("intake", PARTIAL, "done", instances=14, released=2, rejected=12,
                                       reason=reason, rejections=list(REJECTED)))
    assert recorder.rejections == {("intake", PARTIAL): REJECTED}  # all twelve, with their reasons
    assert recorder.outcomes[-1]["error_class"] == "Partial"
    [job] = connector.jobs.values()
    assert job["status"] == "succeeded"


def test_a_study_processed_whole_again_clears_its_rejections(queue: StudyQueue) -> None:
    recorder = _run(queue, StudyResult("intake", PARTIAL, "done", instances=14, released=14))
    assert recorder.rejections == {("intake", PARTIAL): []}


@pytest.fixture
def partial_db(db: FakeDb, source: FakeSource) -> FakeDb:
    db.records[PARTIAL] = _record(PARTIAL, "done", partial_reason(REJECTED, 14))
    db.rejected = [RejectedInstance("intake", PARTIAL, i, r) for i, r in REJECTED]
    source.states[PARTIAL] = StudyState(PARTIAL, PATIENT, True, LAST_UPDATE, None)
    return db


def test_jobs_list_partial_shows_every_rejected_instance(cli_session: None, partial_db: FakeDb,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list", "--status", "partial"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("partial  intake") and PARTIAL in lines[0] and "12 rejected" in lines[0]
    assert lines[1:13] == [f"  rejected {i}  {r}" for i, r in REJECTED]
    assert lines[13] == partial_hint(1) and len(lines) == 14
    assert DONE not in "\n".join(lines) and HELD not in "\n".join(lines)
    partial_db.rejected = []  # delivered partially before each rejection was kept
    assert main(["jobs", "list", "--status", "partial"]) == 0
    assert "not recorded one by one" in capsys.readouterr().out.splitlines()[1]
    assert main(["jobs", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == partial_hint(1)  # the plain listing says so too


def test_jobs_wait_says_how_many_studies_were_partial(cli_session: None, partial_db: FakeDb,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    partial_db.records[HELD] = _record(HELD, "done")  # nothing held: wait succeeds
    assert main(["jobs", "wait", "--timeout", "1"]) == 0
    captured = capsys.readouterr()
    assert "nothing pending, 1 delivered partially" in captured.out
    assert partial_hint(1) in captured.err and "anonlib jobs list --status partial" in captured.err
    partial_db.records[PARTIAL] = _record(PARTIAL, "done")  # processed again, whole
    assert main(["jobs", "wait", "--timeout", "1"]) == 0
    assert "partial" not in capsys.readouterr().out


def test_constellation_status_counts_partial_studies(monkeypatch: pytest.MonkeyPatch, partial_db: FakeDb,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from anonlib.constellation import manage
    from anonlib.jobs import held, partial

    info = type("Info", (), {"db_url": "postgresql://x/y"})()
    monkeypatch.setattr(manage, "status", lambda settings: (info, [], []))
    monkeypatch.setattr(held, "JobsDb", lambda url: partial_db)
    monkeypatch.setattr(partial, "JobsDb", lambda url: partial_db)
    assert main(["constellation", "status"]) == 0
    out = capsys.readouterr().out
    assert "partial    " + partial_hint(1) in out and "1 study held by the audit gate" in out
