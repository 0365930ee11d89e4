"""Burned-in pixel PHI in the engine: what it does with the pixel stage's scan (OCR mode, the
default), and the conservative quarantine mode (by SOP class and modality, pixel-mask rules)."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.dicomio import encode_instance
from anonlib.engine import assess_pixels, needs_pixel_data
from anonlib.errors import ConfigError
from anonlib.pixels import TextBox
from anonlib.pixels.select import LATER, Reading
from anonlib.pixels.stage import PixelScan
from tests.helpers import plan_of, run, sample

MASK = {"manufacturer": "ACME", "model": "Echo 9.*", "rows": 100, "columns": 100,
        "regions": [[0, 0, 100, 10], [90, 90, 10, 10]]}
READ = Reading("all", "test")


def _sc(**values: object) -> pydicom.Dataset:
    ds = sample("SC_rgb_rle.dcm")  # 100 x 100 RGB, RLE compressed secondary capture
    ds.Manufacturer, ds.ManufacturerModelName = "ACME", "Echo 9000"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _codes(ds: pydicom.Dataset) -> set[str]:
    return {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}


# --- burned_in: ocr (the default) ---------------------------------------------------------

def test_ocr_boxes_are_masked_and_recorded_without_text() -> None:
    ds = _sc()
    before = ds.pixel_array.copy()
    box = TextBox(0, 10, 40, 30, 12, 0.93, text="DOE^JOHN")
    out = run(ds, pixels=PixelScan(READ, (box,), 1, 1, True))
    assert out.quarantine is None and out.pixels_cleaned and out.pixel_boxes == (box,)
    written = pydicom.dcmread(io.BytesIO(encode_instance(out.dataset, None)))
    pixels = written.pixel_array
    assert not np.array_equal(pixels[40:52, 10:40], before[40:52, 10:40])
    assert np.array_equal(pixels[70:100, 50:100], before[70:100, 50:100])  # outside: untouched
    assert written.BurnedInAnnotation == "NO" and "113101" in _codes(written)
    noted = [c for c in out.changes if c.tag == 0x7FE00010]
    assert len(noted) == 1 and "x 10 y 40 w 30 h 12" in noted[0].note and "DOE" not in noted[0].note


def test_ocr_error_quarantines_with_the_reason() -> None:
    out = run(_sc(), pixels=PixelScan(READ, error="cannot decode (JPEG 2000 needs a plugin)"))
    assert out.quarantine == "pixels: cannot decode (JPEG 2000 needs a plugin)"
    assert "BurnedInAnnotation" not in out.dataset or out.dataset.BurnedInAnnotation != "NO"
    assert "113101" not in _codes(out.dataset)


def test_image_at_risk_that_was_not_read_is_never_released() -> None:
    out = run(_sc())  # no scan: the pixel stage did not read it
    assert out.quarantine is not None and out.quarantine.startswith("pixels: not read")


def test_image_read_in_full_without_text_is_marked_clean() -> None:
    out = run(_sc(), pixels=PixelScan(READ, (), 0, 1, True))
    assert out.quarantine is None and not out.pixels_cleaned
    assert out.dataset.BurnedInAnnotation == "NO" and "113101" in _codes(out.dataset)


def test_sampled_frames_only_do_not_claim_clean_pixels() -> None:
    out = run(_sc(), pixels=PixelScan(Reading("sample", "test"), (), 0, 3, False))
    assert out.quarantine is None and "113101" not in _codes(out.dataset)


def test_unsampled_ct_slice_passes_without_markers() -> None:
    ct = sample()  # CT of a sampled modality, ORIGINAL\PRIMARY: its series decides
    out = run(ct)
    assert out.quarantine is None and "113101" not in _codes(out.dataset)


def test_visual_features_quarantine_whatever_the_scan_says() -> None:
    out = run(_sc(RecognizableVisualFeatures="YES"), pixels=PixelScan(READ, (), 0, 1, True))
    assert "RecognizableVisualFeatures" in (out.quarantine or "")


def test_encapsulated_document_is_quarantined_under_ocr() -> None:
    ds = sample()
    for keyword in ("PixelData", "Rows", "Columns"):  # a PDF: no image at all
        delattr(ds, keyword)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    assert "encapsulated document" in (run(ds).quarantine or "")


def test_pixel_mask_rule_adds_its_regions_to_the_boxes_found() -> None:
    plan = plan_of(pixel_masks=[MASK])
    out = run(_sc(), plan, pixels=PixelScan(READ, (), 0, 1, True))
    assert out.pixels_cleaned and len(out.pixel_boxes) == 2
    assert not needs_pixel_data(_sc(), plan)  # under ocr the pixel stage reads, not the rule


# --- burned_in: quarantine (conservative) and allow -----------------------------------------

def test_quarantine_mode_holds_at_risk_classes_with_a_reason() -> None:
    plan = plan_of(burned_in="quarantine")
    verdict = assess_pixels(_sc(), plan)
    assert verdict.action == "quarantine" and "1.2.840.10008.5.1.4.1.1.7" in verdict.reason
    assert run(_sc(), plan).quarantine == verdict.reason


def test_quarantine_mode_trusts_burned_in_annotation_no() -> None:
    assert run(_sc(BurnedInAnnotation="NO"), plan_of(burned_in="quarantine")).quarantine is None


@pytest.mark.parametrize("modality", ["US", "DX", "MG", "XA"])
def test_quarantine_mode_modalities_at_risk(modality: str) -> None:
    ct = sample()
    ct.Modality = modality
    assert f"modality {modality}" in (run(ct, plan_of(burned_in="quarantine")).quarantine or "")


def test_quarantine_mode_mask_rule_blanks_regions_and_reencodes() -> None:
    plan = plan_of(burned_in="quarantine", pixel_masks=[MASK])
    ds = _sc()
    assert needs_pixel_data(ds, plan)
    before = ds.pixel_array.copy()
    out = run(ds, plan)
    assert out.quarantine is None and out.pixels_cleaned
    written = pydicom.dcmread(io.BytesIO(encode_instance(out.dataset, None)))
    assert written.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ds.file_meta.TransferSyntaxUID)
    pixels = written.pixel_array
    assert np.array_equal(pixels[20:80, 20:80], before[20:80, 20:80])  # the rest is untouched
    assert len({tuple(v) for v in pixels[0:10, :, :].reshape(-1, 3)}) == 1  # one fill colour
    assert written.BurnedInAnnotation == "NO" and "113101" in _codes(written)


def test_quarantine_mode_rule_for_another_model_does_not_apply() -> None:
    plan = plan_of(burned_in="quarantine", pixel_masks=[{**MASK, "model": "Other.*"}])
    assert run(_sc(), plan).quarantine is not None


def test_allow_policy_releases_at_risk_instances() -> None:
    assert run(_sc(), plan_of(burned_in="allow")).quarantine is None


# --- the profile section --------------------------------------------------------------------

def test_profile_section_is_parsed_and_checked() -> None:
    plan = plan_of(burned_in={"mode": "ocr", "engine": "tesseract", "mask": "phi",
                              "allow_tokens": ["ACME"], "sample_min_series": 40})
    assert (plan.burned_in.engine, plan.burned_in.mask, plan.burned_in.sample_min_series) == ("tesseract", "phi", 40)
    assert plan_of().burned_in.mode == "ocr" and plan_of().burned_in.engine == "rapidocr"
    for bad in ({"mode": "scan"}, {"engine": "gpt"}, {"mask": "some"}, {"sample_min_series": 1},
                {"colour": 1}, "maybe"):
        with pytest.raises(ConfigError, match="burned_in"):
            plan_of(burned_in=bad)


def test_fingerprint_follows_the_mask_policy_not_the_engine() -> None:
    rapid = plan_of(burned_in={"engine": "rapidocr"})
    assert plan_of(burned_in={"mask": "phi"}).fingerprint != rapid.fingerprint
    assert plan_of(burned_in={"engine": "tesseract"}).fingerprint == rapid.fingerprint
    assert LATER.reads is False
