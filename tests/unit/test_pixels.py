"""Burned-in pixel PHI: quarantine by default, blank known regions when a rule matches."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.dicomio import encode_instance
from anonlib.engine import assess_pixels, needs_pixel_data
from tests.helpers import plan_of, run, sample

MASK = {"manufacturer": "ACME", "model": "Echo 9.*", "rows": 100, "columns": 100,
        "regions": [[0, 0, 100, 10], [90, 90, 10, 10]]}


def _sc(**values: object) -> pydicom.Dataset:
    ds = sample("SC_rgb_rle.dcm")  # 100 x 100 RGB, RLE compressed secondary capture
    ds.Manufacturer, ds.ManufacturerModelName = "ACME", "Echo 9000"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_secondary_capture_is_quarantined_with_a_reason() -> None:
    verdict = assess_pixels(_sc(), plan_of())
    assert verdict.action == "quarantine" and "1.2.840.10008.5.1.4.1.1.7" in verdict.reason
    assert run(_sc()).quarantine == verdict.reason


def test_header_that_says_no_burned_in_text_is_trusted() -> None:
    assert run(_sc(BurnedInAnnotation="NO")).quarantine is None


def test_burned_in_yes_and_visual_features_are_quarantined_on_any_modality() -> None:
    ct = sample()
    ct.BurnedInAnnotation = "YES"
    assert "BurnedInAnnotation" in (run(ct).quarantine or "")
    ct.BurnedInAnnotation, ct.RecognizableVisualFeatures = "NO", "YES"
    assert "RecognizableVisualFeatures" in (run(ct).quarantine or "")


def test_ultrasound_modality_is_at_risk() -> None:
    ct = sample()
    ct.Modality = "US"
    assert "modality US" in (run(ct).quarantine or "")


def test_mask_rule_blanks_regions_and_reencodes() -> None:
    plan = plan_of(pixel_masks=[MASK])
    ds = _sc()
    assert needs_pixel_data(ds, plan)
    before = ds.pixel_array.copy()
    out = run(ds, plan)
    assert out.quarantine is None and out.pixels_cleaned
    data = encode_instance(out.dataset, None)
    written = pydicom.dcmread(io.BytesIO(data))
    assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    pixels = written.pixel_array
    assert (pixels[0:10, :, :] == 0).all() and (pixels[90:100, 90:100, :] == 0).all()
    assert np.array_equal(pixels[20:80, 20:80], before[20:80, 20:80])  # the rest is untouched
    assert written.BurnedInAnnotation == "NO"
    assert "113101" in {i.CodeValue for i in written.DeidentificationMethodCodeSequence}


def test_mask_rule_for_another_model_does_not_apply() -> None:
    plan = plan_of(pixel_masks=[{**MASK, "model": "Other.*"}])
    assert run(_sc(), plan).quarantine is not None


def test_allow_policy_releases_at_risk_instances() -> None:
    assert run(_sc(), plan_of(burned_in="allow")).quarantine is None
