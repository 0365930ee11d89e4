"""The conformance check's dciodvfy runs (issue 12): the original is validated only when its
report can change the findings — the findings stay those of validating both, every time."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.audit import conformance
from anonlib.audit.conformance import (
    ConformanceRunner,
    check_conformance,
    compare_reports,
    needs_original,
    validate,
)
from anonlib.audit.dciodvfy import DciodvfyReport
from anonlib.audit.model import Finding
from anonlib.errors import AnonlibError
from tests.helpers import encoded, run

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")

Pair = tuple[str, bytes, bytes]  # (what it is, output, original)


def _testdata(name: str) -> bytes:
    return Path(str(get_testdata_file(name))).read_bytes()


def _with_laterality(name: str, tmp_path: Path) -> bytes:
    """A pydicom test file whose only dciodvfy warning (an empty Laterality) is fixed: a file
    dciodvfy finds nothing to say about."""
    ds = pydicom.dcmread(str(get_testdata_file(name)))
    ds.Laterality = "R"
    path = tmp_path / f"clean-{name}"
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


@pytest.fixture
def pairs(tmp_path: Path) -> list[Pair]:
    ct = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))

    def clean() -> bytes:  # a data object of its own each time (the runs are counted by object)
        return _with_laterality("SC_rgb_rle.dcm", tmp_path)

    return [
        ("clean output, original with a warning", clean(), _testdata("SC_rgb_rle.dcm")),
        ("clean output, original that aborts dciodvfy", clean(), _testdata("rtdose.dcm")),
        ("output with a warning, clean original", _testdata("SC_rgb_rle.dcm"), clean()),
        ("output with an error the original has", _testdata("examples_palette.dcm"), _testdata("examples_palette.dcm")),
        ("output with an error the original has not", _testdata("examples_palette.dcm"), clean()),
        ("CT_small de-identified", encoded(run(ct).dataset), _testdata("CT_small.dcm")),
    ]


def _reference(output: bytes, original: bytes) -> list[Finding]:
    """What validating both always gave."""
    return compare_reports(validate(output), validate(original), study="s", instance="i")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """dciodvfy runs by id() of the data validated."""
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def counting(data: bytes | Path) -> DciodvfyReport:
        with lock:
            calls[id(data)] += 1
        return validate(data)

    monkeypatch.setattr(conformance, "validate", counting)
    return calls


def test_the_pairs_cover_both_cases(pairs: list[Pair]) -> None:
    needed = [needs_original(validate(output)) for _, output, _ in pairs]
    assert needed == [False, False, True, True, True, True]
    assert validate(pairs[1][2]).errors[0].startswith("Abort")  # the original aborts: still a pass
    assert any(f.verdict == "fail" for f in _reference(*pairs[4][1:]))
    assert any(f.category == "dciodvfy warning" for f in _reference(*pairs[2][1:]))


def test_check_conformance_gives_the_findings_of_both_runs(pairs: list[Pair], counted: Counter[int]) -> None:
    for what, output, original in pairs:
        expected = _reference(output, original)
        counted.clear()
        assert check_conformance(output, original, study="s", instance="i") == expected, what
        assert counted[id(output)] == 1, what
        assert counted[id(original)] == int(needs_original(validate(output))), what


def test_the_runner_gives_the_same_findings_in_order(pairs: list[Pair], counted: Counter[int]) -> None:
    expected = [_reference(output, original) for _, output, original in pairs]
    counted.clear()
    runner = ConformanceRunner()
    for _, output, original in pairs:
        runner.submit(output, original, study="s", instance="i")
    assert runner.results() == expected
    assert [counted[id(original)] for _, _, original in pairs] == [0, 0, 1, 1, 1, 1]


def test_an_original_that_does_not_finish_is_incomplete_when_needed(
        pairs: list[Pair], monkeypatch: pytest.MonkeyPatch) -> None:
    _, output, original = pairs[2]  # the output has a warning: the original is needed

    def original_hangs(data: bytes | Path) -> DciodvfyReport:
        if data is original:
            raise AnonlibError("dciodvfy did not finish within 120 s")
        return validate(data)

    monkeypatch.setattr(conformance, "validate", original_hangs)
    runner = ConformanceRunner()
    runner.submit(output, original, study="s", instance="i")
    [findings] = runner.results()
    assert [(f.verdict, f.category) for f in findings] == [("incomplete", "dciodvfy")]
    assert [(f.verdict, f.category) for f in check_conformance(output, original, study="s", instance="i")] == \
        [("incomplete", "dciodvfy")]


def test_without_original_only_the_output_runs(pairs: list[Pair], counted: Counter[int]) -> None:
    _, output, _ = pairs[3]
    runner = ConformanceRunner()
    runner.submit(output, None, study="s", instance="i")
    [findings] = runner.results()
    assert [(f.verdict, f.category) for f in findings] == [("warn", "dciodvfy")]
    assert findings == compare_reports(validate(output), None, study="s", instance="i")
    assert list(counted.values()) == [1]  # the runner validated the output only (the line above is not counted)

