"""Masked pixel data in every transfer syntax: dciodvfy finds no error the input did not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonlib.audit.dciodvfy import introduced_errors, run_dciodvfy
from anonlib.dicomio import encode_instance
from anonlib.pixels import TextBox, mask_text
from tests.pixel_images import sample
from tests.unit.test_pixels_codec import CASES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_masking_adds_no_dciodvfy_error(tmp_path: Path, name: str) -> None:
    ds = sample(name)
    before, after = tmp_path / "before.dcm", tmp_path / "after.dcm"
    before.write_bytes(encode_instance(ds, None))
    mask_text(ds, [TextBox(0, 2, 3, 6, 4, 0.9)])
    after.write_bytes(encode_instance(ds, None))
    assert introduced_errors(run_dciodvfy(before), run_dciodvfy(after)) == []
