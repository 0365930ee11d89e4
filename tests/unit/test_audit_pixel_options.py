"""The pixel check's settings: the audit's options, the gate's environment, the values the
check adds for burned-in text, and which released images it reads (pure functions: no OCR)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset

from anonlib.audit.pixel_check import default_engine, pixel_values, spelled_dates
from anonlib.audit.pixel_select import header_of, select_images
from anonlib.audit.run import AuditOptions
from anonlib.errors import ConfigError
from anonlib.studyjob import JobContext, gate_pixel_settings


def test_audit_options_take_sample_all_or_off() -> None:
    assert AuditOptions().pixels == "sample" and AuditOptions().pixel_engine == ""
    assert AuditOptions(pixels="all").pixels == "all"
    with pytest.raises(ConfigError, match="sample, all, off"):
        AuditOptions(pixels=cast(Any, "some"))


def test_the_gate_reads_its_pixel_settings_from_the_environment() -> None:
    assert gate_pixel_settings({}) == ("sample", "")
    env = {"ANONLIB_AUDIT_PIXELS": "ALL", "ANONLIB_AUDIT_PIXEL_ENGINE": "tesseract"}
    assert gate_pixel_settings(env) == ("all", "tesseract")
    assert gate_pixel_settings({"ANONLIB_AUDIT_PIXELS": "off"}) == ("off", "")
    with pytest.raises(ConfigError, match="ANONLIB_AUDIT_PIXELS"):
        gate_pixel_settings({"ANONLIB_AUDIT_PIXELS": "sometimes"})


def test_the_gate_passes_its_pixel_settings_to_the_audit() -> None:
    context = JobContext(cast(Any, None), cast(Any, None), audit_conformance=False, audit_pixels="off",
                         audit_pixel_engine="tesseract")
    assert context.audit_options() == AuditOptions(conformance=False, pixels="off", pixel_engine="tesseract")
    default = JobContext(cast(Any, None), cast(Any, None)).audit_options()
    assert default.pixels == "sample" and default.conformance


def test_the_default_engine_is_the_projects() -> None:
    from anonlib.profile.burned_in import BurnedInPolicy

    assert default_engine() == BurnedInPolicy().engine == "rapidocr"


def test_dates_are_also_searched_with_the_months_name() -> None:
    forms = spelled_dates(dt.date(1961, 3, 14))
    assert {"14 Mar 1961", "14Mar1961", "Mar 14 1961", "14 March 1961", "March 14 1961"} <= set(forms)
    values = pixel_values({"C dates": {"19610314", "1961-03-14"}, "A names": {"Smith^Li", "Smith", "Li^Wu"}})
    assert "14 Mar 1961" in values["C dates"] and "1961-03-14" in values["C dates"]
    assert {"SmithLi", "LiSmith", "Li Smith", "LiWu", "Wu Li"} <= values["A names"]


def test_text_read_by_ocr_matches_as_the_leak_check_does_and_through_misreadings() -> None:
    from anonlib.audit.pixel_check import PixelMatcher

    matcher = PixelMatcher.of({"A names": {"Zorbalina^Helga", "Zorbalina", "Helga"},
                               "H record numbers": {"MRN884213"}, "C dates": {"19610314", "14.03.1961"}})
    assert matcher.categories("zorbalína HELGA") == {"A names"}  # case and accents folded
    assert matcher.categories("ZORBALINAHELGA") == {"A names"}  # parts glued
    assert matcher.categories("ZORBALlNA") == {"A names"}  # l read for I
    assert matcher.categories("ID:MRNB84213") == {"H record numbers"}  # B read for 8
    assert matcher.categories("PID MRN884213DOB14.03.1961") == {"H record numbers", "C dates"}  # no spaces
    assert matcher.categories("DOB 14 MAR 1961") == {"C dates"}
    assert matcher.categories("ZORBALINAS") == {"A names"}  # plural/possessive, as the leak check
    for other in ("ZORBALINAX", "MRN8842130", "120 kV", "L", "HEL", "14.03.1962", "1.14.03.1961.2"):
        assert not matcher.categories(other), other


def _image(number: int, series: str = "1.2.3", modality: str = "CT", rows: int = 64, **extra: str) -> Dataset:
    ds = Dataset()
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = modality, series, number
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Rows = ds.Columns = rows
    ds.PixelData = b"\0" * (rows * rows * 2)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_a_large_cross_sectional_series_is_sampled_and_the_rest_held_back() -> None:
    images = [_image(n) for n in range(1, 31)] + [_image(10, rows=32)]  # one odd size out
    images += [_image(1, series="1.2.4", modality="US"), _image(1, series="1.2.5", ImageType=["DERIVED", "SECONDARY"]),
               _image(1, series="1.2.6", modality="SEG")]
    headers = [header_of(i, ds) for i, ds in enumerate(images)]
    assert headers[-1] is None  # a segmentation's labels are data, not read (as the engine)
    selection = select_images(h for h in headers if h is not None)
    assert selection.first == [0, 14, 29, 30, 31, 32]  # first, middle, last, the odd size, US, SECONDARY
    assert selection.held_back == {"1.2.3": [i for i in range(1, 29) if i != 14]} and selection.sampled == 27
    every = select_images((h for h in headers if h is not None), every=True)
    assert every.first == list(range(33)) and not every.held_back
    small = [header_of(i, _image(i + 1)) for i in range(5)]
    assert select_images(h for h in small if h is not None).first == [0, 1, 2, 3, 4]


def test_an_instance_without_an_image_is_never_read() -> None:
    ds = _image(1)
    del ds.PixelData, ds.Rows, ds.Columns
    assert header_of(0, ds) is None
