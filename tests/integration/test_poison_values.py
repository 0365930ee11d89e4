"""Issue 11: path-like header values are not copied into the output, and replacing them adds
no dciodvfy error."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from anonlib.audit.dciodvfy import introduced_errors, run_dciodvfy
from anonlib.pipeline import InstanceProcessor
from anonlib.profile import SiteProfile, build_plan
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.sinks.folder import FolderSink
from anonlib.store.memory import MemoryStore
from anonlib.synthetic.malformed import PATH_VALUES, path_like

pytestmark = [pytest.mark.integration]


def test_path_like_values_are_replaced_and_dciodvfy_stays_clean(tmp_path: Path) -> None:
    plan = build_plan(SiteProfile(burned_in=BurnedInPolicy(mode="allow")))
    processor = InstanceProcessor(plan, MemoryStore(), FolderSink(tmp_path / "o"), FolderSink(tmp_path / "q"))
    checked = 0
    for n, (keyword, value) in enumerate(PATH_VALUES):
        if keyword == "SOPInstanceUID":
            continue  # not an instance at all: rejected (tests/system/test_malformed.py)
        data = path_like(keyword, value, uid=f"2.25.{900 + n}")
        _, encoded, _ = processor.deidentify_bytes(data, keyword)
        out = pydicom.dcmread(io.BytesIO(encoded))
        assert value not in str(out[keyword].value if keyword in out else ""), keyword
        source, result = tmp_path / f"{n}-in.dcm", tmp_path / f"{n}-out.dcm"
        source.write_bytes(data)
        result.write_bytes(encoded)
        assert introduced_errors(run_dciodvfy(source), run_dciodvfy(result)) == [], keyword
        checked += 1
    assert checked == len(PATH_VALUES) - 1
