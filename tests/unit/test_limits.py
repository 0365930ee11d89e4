"""Limits checked before pydicom parses an instance: depth, value sizes, deflate bombs; and the
named reasons of structural damage (unclosed sequences, wrong lengths)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from anonlib.dicomio import DEFAULT_LIMITS, Limits, parse_instance, read_instance
from anonlib.errors import ConfigError, InputError
from anonlib.profile import build_plan, parse_site_profile
from anonlib.profile.limits import parse_limits
from anonlib.synthetic.malformed import deflate_bomb, nested_content, un_text


def _reason(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(InputError) as info:
        parse_instance(data, label="x.dcm", limits=limits)
    return info.value.reason


def test_nesting_up_to_the_limit_is_read_beyond_it_rejected() -> None:
    assert parse_instance(nested_content(32), label="ok").dataset.SOPInstanceUID
    assert _reason(nested_content(33)).startswith("nesting too deep: sequences nested more than 32 levels")
    assert "nesting too deep" in _reason(nested_content(50, implicit=True))
    assert "nesting too deep" in _reason(nested_content(20_000))  # no RecursionError, no crash
    assert "more than 8 levels" in _reason(nested_content(9), Limits(max_depth=8))


def test_a_deflate_bomb_is_stopped_at_the_limit() -> None:
    bomb = deflate_bomb(1 << 30)  # about 1 MB that inflates to 1 GiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert _reason(bomb).startswith("deflate bomb: the deflated data set inflates past 256 MiB (from ")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64  # counted, never kept: a chunk at a time
    small = deflate_bomb(1 << 20)
    assert parse_instance(small, label="small").dataset.SOPInstanceUID  # an ordinary deflated file
    assert "inflates past 512 KiB" in _reason(small, Limits(max_inflated_bytes=512 << 10))


def test_values_over_their_limit_are_rejected_by_tag_never_by_value() -> None:
    data = un_text(2 << 20, "Zorbalina")
    reason = _reason(data)
    assert reason.startswith("value too large: (0008,1030) holds") and "limit 1 MiB" in reason
    assert "Zorbalina" not in reason
    assert parse_instance(data, label="ok", limits=Limits(max_text_bytes=4 << 20)).dataset
    assert "instance too large" in _reason(un_text(), Limits(max_instance_bytes=1000))


def test_structural_damage_is_named(tmp_path: Path) -> None:
    nested = nested_content(3)
    closing = nested.rfind(b"\xfe\xff\xdd\xe0")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(nested[:closing])
    with pytest.raises(InputError, match=r"unclosed sequence \(\(0040,A730\) opened at byte \d+ never ends"):
        read_instance(cut)
    wrong = bytearray(nested)
    at = nested.find(b"\x40\x00\x40\xa0CS")  # the first ValueType: length 4 -> 0x4000
    wrong[at + 6:at + 8] = b"\x00\x40"
    assert "wrong length ((0040,A040)" in _reason(bytes(wrong)) or "malformed element stream" in _reason(bytes(wrong))


def test_limits_come_from_the_site_profile() -> None:
    plan = build_plan(parse_site_profile({"limits": {"max_depth": 8, "max_text_bytes": "64 KiB"}}))
    assert plan.limits == Limits(max_depth=8, max_text_bytes=64 << 10)
    assert parse_limits(None) == Limits()
    assert parse_limits({"max_instance_bytes": "2 GiB"}).max_instance_bytes == 2 << 30
    for bad in ({"max_depth": 0}, {"max_text_bytes": "lots"}, {"depth": 3}, {"max_element_bytes": -1}):
        with pytest.raises(ConfigError):
            parse_limits(bad)


def test_max_depth_is_capped_below_orthancs_crash_zone() -> None:
    """Orthanc 1.10.1 crashes parsing 48 levels (README): a profile that let the engine release a
    45-level instance to research is refused, naming the setting and why; 40 (intake's own
    refusal threshold) is the most allowed, in the profile and in code alike."""
    from anonlib.jobs.intake_guard import INTAKE_MAX_DEPTH

    assert INTAKE_MAX_DEPTH == 40 < 48
    assert parse_limits({"max_depth": 40}).max_depth == 40
    for deep in (41, 45, 1000):
        with pytest.raises(ConfigError, match=rf"^site\.yaml: limits\.max_depth {deep} is too deep: at most 40: "
                                              r"Orthanc 1\.10\.1 crashes parsing instances nested 48 levels"):
            parse_limits({"max_depth": deep}, where="site.yaml")
        with pytest.raises(ConfigError, match=rf"limits\.max_depth {deep} is too deep"):
            parse_site_profile({"limits": {"max_depth": deep}})
        with pytest.raises(ConfigError, match="too deep: at most 40"):
            Limits(max_depth=deep)
    with pytest.raises(ConfigError, match="from 1 to 40"):
        parse_limits({"max_depth": 0})
