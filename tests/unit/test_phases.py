"""anonlib.phases: wall time per phase of a study job, logged as one PHI-free line."""

from __future__ import annotations

import logging
import time

import pytest

from anonlib.phases import LOGGER, PhaseTimer, enable_from_env, parse_line


def test_phases_add_up_in_the_order_first_seen_and_parse_back(caplog: pytest.LogCaptureFixture) -> None:
    timer = PhaseTimer()
    with timer.phase("fetch"):
        time.sleep(0.01)
    with timer.phase("gate"):
        pass
    with pytest.raises(ValueError), timer.phase("fetch"):
        raise ValueError("counted all the same")
    assert list(timer.seconds) == ["fetch", "gate"] and timer.seconds["fetch"] >= 0.01
    with caplog.at_level(logging.INFO, logger=LOGGER):
        timer.log("study abc of intake, 3 instances")
    [line] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    parsed = parse_line(line)
    assert parsed is not None and list(parsed) == ["total", "fetch", "gate"]
    assert parsed["total"] >= parsed["fetch"] >= 0.01
    assert parse_line("INFO anonlib.studyjob: study abc of intake: 3 released") is None


def test_logged_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(LOGGER)
    level = logger.level
    try:
        assert not enable_from_env({})
        logger.setLevel(logging.WARNING)
        PhaseTimer().log("study x of intake")
        assert not [r for r in caplog.records if r.name == LOGGER]
        assert enable_from_env({"ANONLIB_PHASE_TIMES": "1"}) and logger.level == logging.INFO
    finally:
        logger.setLevel(level)
