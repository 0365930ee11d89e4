"""Intake's C-STORE guard refuses only what would crash Orthanc; the engine's limits do the rest."""

from __future__ import annotations

from anonlib.dicomio.limits import Limits
from anonlib.jobs.intake_guard import INTAKE_MAX_DEPTH, refusal
from anonlib.synthetic.malformed import deflate_bomb, nested_content, un_text, with_uid


def test_an_ordinary_instance_is_stored() -> None:
    assert refusal(with_uid("2.25.7")) is None


def test_nesting_past_the_intake_depth_is_refused_with_a_named_reason() -> None:
    reason = refusal(nested_content(50))
    assert reason is not None and reason.startswith(f"nesting too deep: sequences nested more than {INTAKE_MAX_DEPTH}")
    assert refusal(nested_content(50, implicit=True)) is not None


def test_what_the_engine_quarantines_is_left_to_it() -> None:
    assert refusal(nested_content(36)) is None  # past the engine's 32: the study job rejects it with its reason
    assert refusal(un_text(2 << 20)) is None  # 2 MiB of text: the engine's limit, not intake's


def test_a_deflate_bomb_is_refused_and_a_cut_file_is_left_to_orthanc() -> None:
    reason = refusal(deflate_bomb(300 << 20))
    assert reason is not None and "inflate" in reason
    data = with_uid("2.25.8")
    assert refusal(data[: len(data) // 2]) is None  # malformed, not dangerous: the job says what is wrong


def test_the_instance_size_limit() -> None:
    reason = refusal(with_uid("2.25.9"), Limits(max_instance_bytes=1000))
    assert reason is not None and reason.startswith("instance too large")
