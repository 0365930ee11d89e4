"""The audit spread over worker processes (issue 12: the audit's speed) gives exactly what one
process gives, and fails closed: a worker that raises or dies makes the audit INCOMPLETE, never
a PASS for what it did not check."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from anonlib.audit import run as audit_run
from anonlib.audit import sources as audit_sources
from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.pixel_check import PixelCheck, image_of
from anonlib.audit.pool import MIN_PER_WORKER, ordered_map, workers_for
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs
from anonlib.folder_run import RunSettings, run_folder
from anonlib.store import open_store
from anonlib.synthetic import Corpus
from anonlib.synthetic.batch import write_batch

_OPTIONS = AuditOptions(conformance=False, pixels="off")


def _inputs(corpus: Corpus) -> list[AuditInput]:
    """The corpus audited against itself (outputs that were never de-identified: many findings
    of every check), as files and as bytes, some without their original, the bad files too."""
    inputs = []
    for number, file in enumerate(corpus.files):
        output: bytes | Path = file.path.read_bytes() if number % 2 else file.path
        inputs.append(AuditInput(f"#{number}", output, None if number % 7 == 3 else file.path))
    return inputs


def _digest(result: AuditResult) -> tuple[object, ...]:
    return (result.status, result.instances, result.with_originals, result.date_mode, result.profile,
            [tuple(f.__dict__.values()) for f in result.findings])


def test_workers_give_exactly_the_findings_of_one_process(corpus: Corpus) -> None:
    inputs = _inputs(corpus)
    assert len(inputs) >= 40
    alone = audit(inputs, options=_OPTIONS, expect_originals=True, workers=1)
    assert alone.status == "FAIL" and len(alone.findings) > 500  # every check has something to say
    for workers in (2, 3):
        assert _digest(audit(inputs, options=_OPTIONS, expect_originals=True, workers=workers)) == _digest(alone)


def test_a_small_set_stays_in_this_process() -> None:
    assert workers_for(3) == 1
    assert workers_for(MIN_PER_WORKER - 1) == 1
    assert workers_for(3, requested=1) == 1
    assert workers_for(1000, requested=4) == 4


def test_ordered_map_hands_back_in_order() -> None:
    chunks = list(ordered_map(lambda index: index * index, 100, 2))
    assert [i for chunk in chunks for i in chunk.indexes] == list(range(100))
    assert [r for chunk in chunks for r in chunk.results or []] == [i * i for i in range(100)]


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory) -> list[AuditInput]:
    """60 CT instances de-identified by the engine, with their originals: the audit passes."""
    base = tmp_path_factory.mktemp("workers")
    _BASE.append(base)
    write_batch(base / "in", studies=2, patients=2, instances=30, seed=3)
    db = f"sqlite:///{base / 'store.sqlite3'}"
    run_folder(RunSettings(base / "in", base / "out", db_url=db))
    store = open_store(db)
    try:
        inputs = folder_inputs(base / "out", base / "in", store)
    finally:
        store.close()
    assert len(inputs) == 60
    return inputs


_BASE: list[Path] = []


def test_the_uids_read_in_workers_match_outputs_to_the_same_originals(passing: list[AuditInput],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """folder_inputs reads the SOP Instance UIDs of many files in workers: the same inputs; a
    worker that dies has its files read again in this process."""
    base = _BASE[0]
    expected = [(i.label, i.output, i.original) for i in passing]
    monkeypatch.setattr(audit_sources, "_UIDS_PER_WORKER", 1)
    assert workers_for(60 * MIN_PER_WORKER) > 1
    store = open_store(f"sqlite:///{base / 'store.sqlite3'}")
    try:
        assert [(i.label, i.output, i.original) for i in folder_inputs(base / "out", base / "in", store)] == expected
        parent, real = os.getpid(), audit_sources.sop_uid_of

        def dies_in_workers(data: bytes | Path) -> str | None:
            if os.getpid() != parent:
                os._exit(9)
            return real(data)

        monkeypatch.setattr(audit_sources, "sop_uid_of", dies_in_workers)
        assert [(i.label, i.output, i.original) for i in folder_inputs(base / "out", base / "in", store)] == expected
    finally:
        store.close()


def _broken(monkeypatch: pytest.MonkeyPatch, name: str, target: object, how: str) -> None:
    """Make ``run.<name>`` raise (or its process die) on the instance whose first argument is
    ``target``; the workers are forked, so they see the patch."""
    real = getattr(audit_run, name)

    def wrapped(*args: object, **kwargs: object) -> object:
        if args[0] is target:
            if how == "die":
                os._exit(9)
            raise RuntimeError("a bug in a check")
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_run, name, wrapped)


def test_the_passing_set_passes_in_workers_as_here(passing: list[AuditInput]) -> None:
    alone = audit(passing, options=_OPTIONS, expect_originals=True, workers=1)
    assert alone.passed, alone.failing_categories()
    assert _digest(audit(passing, options=_OPTIONS, expect_originals=True, workers=2)) == _digest(alone)


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_worker_that_fails_on_an_output_makes_the_audit_incomplete(passing: list[AuditInput],
                                                                     monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    _broken(monkeypatch, "_check_output", passing[31], how)
    result = audit(passing, options=_OPTIONS, expect_originals=True, workers=2)
    assert result.status == "INCOMPLETE"
    stopped = [f for f in result.findings if f.verdict == "incomplete" and "worker process" in f.detail]
    assert {f.check for f in stopped} == {"safe_harbor", "leak", "consistency"}
    if how == "raise":  # only that range was lost: the others' instances were audited
        assert 0 < sum(int(f.detail.split(": ")[1].split()[0]) for f in stopped if f.check == "leak") < 60
        assert len({f.instance for f in result.findings if f.check == "safe_harbor" and f.instance}) >= 30


@pytest.mark.parametrize("how", ["raise", "die"])
def test_a_worker_that_fails_on_an_original_makes_the_audit_incomplete(passing: list[AuditInput],
                                                                       monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    _broken(monkeypatch, "_read_original", passing[40].original, how)
    result = audit(passing, options=_OPTIONS, expect_originals=True, workers=2)
    assert result.status == "INCOMPLETE"
    assert any(f.verdict == "incomplete" and f.check == "leak" and "worker process" in f.detail
               for f in result.findings)


def test_the_pixel_check_told_in_a_worker_selects_what_it_selects_here(corpus: Corpus) -> None:
    here, there = PixelCheck("sample", "none"), PixelCheck("sample", "none")
    for index, file in enumerate(corpus.files):
        try:
            ds = pydicom.dcmread(file.path, force=True)
        except Exception:  # noqa: BLE001 - a bad file: not an image either way
            continue
        noted = here.note(index, ds, label=f"#{index}", output=file.path, study="s", instance="i", values=None)
        added = there.add(index, image_of(ds), label=f"#{index}", output=file.path, study="s", instance="i", values=None)
        assert noted == added
    assert here._headers == there._headers and here._frames == there._frames
    assert here._headers  # the corpus has images
