"""Profile layers merge into one frozen plan; bad profiles fail when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword as tag

from anonlib.errors import ConfigError
from anonlib.profile import DateMode, Option, build_plan, load_site_profile, parse_site_profile
from anonlib.profile.iod import iod_types
from tests.helpers import CT, RTSTRUCT, SEG, plan_of


def test_default_plan_layers() -> None:
    plan = build_plan()
    assert plan.date_mode is DateMode.SHIFT
    assert plan.rule_for(tag("PatientID")).code == "P"  # anonlib layer
    assert plan.rule_for(tag("StudyDate")).code == "C"  # Modified Dates option
    assert plan.rule_for(tag("StudyDescription")).source.endswith("Clean Descriptors Option")
    assert plan.rule_for(tag("DeviceSerialNumber")).code == "X/Z/D"  # Basic Profile
    assert plan.rule_for(tag("RetrieveURL")).code == "X"  # not in E.1-1; anonlib removes it
    assert plan.rule_for(0x60023000) == plan.rule_for(0x60003000)  # repeating groups fold


def test_c_beats_k_when_two_chosen_options_disagree() -> None:
    plan = plan_of(options=["retain_device_identity", "retain_longitudinal_modified_dates"])
    assert plan.rule_for(tag("CalibrationDate")).code == "C"  # dev-id K vs modified-dates C


def test_both_longitudinal_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        plan_of(options=["retain_longitudinal_full_dates", "retain_longitudinal_modified_dates"])


@pytest.mark.parametrize("bad", [
    {"options": ["retain_everything"]},
    {"actions": {"PatientName": "Q"}},
    {"actions": {"NotAKeyword": "X"}},
    {"date_shift_days": [0, 0]},
    {"date_shift_days": [10, -10]},
    {"uid_root": "1.02.3"},
    {"private_keep": ["ACME:(0008,xx10)"]},
    {"pixel_masks": [{"manufacturer": "A", "rows": 1, "columns": 1, "regions": [[0, 0, 0, 1]]}]},
    {"burned_in": "ignore"},
    {"surprise": 1},
])
def test_bad_profiles_fail_at_load(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        build_plan(parse_site_profile(bad))


def test_profile_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("name: rad\ndates: keep\nkeep: [ProtocolName]\n"
                    "private_keep: ['ACME 1.0:(0019,xx10)']\nuid_root: '1.2.826.0.1.3680043.10.543'\n")
    plan = build_plan(load_site_profile(path))
    assert plan.date_mode is DateMode.KEEP and Option.RETAIN_LONGITUDINAL_FULL_DATES in plan.options
    assert plan.rule_for(tag("ProtocolName")).code == "K"
    assert ("ACME 1.0", 0x0019, 0x10) in plan.private_keep
    assert plan.fingerprint != build_plan().fingerprint
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_site_profile(bad)


def test_iod_types_by_path() -> None:
    assert iod_types(RTSTRUCT).type_of((tag("OperatorsName"),)) == "2"
    assert iod_types(CT).type_of((tag("OperatorsName"),)) == "3"
    assert iod_types(SEG).type_of((tag("DeviceSerialNumber"),)) == "1"
    sr = iod_types("1.2.840.10008.5.1.4.1.1.88.33")
    deep = (tag("ContentSequence"),) * 4 + (tag("TextValue"),)
    assert sr.type_of(deep) == "1C"  # nested content collapses to one level
    assert iod_types("1.2.3.4.5").type_of((tag("PatientName"),)) is None  # unknown class
