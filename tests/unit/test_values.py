"""UIDs, dates, ages, times and text: the value-level rules."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from anonlib.engine.dates import age_in_years, normalize_tm, shift_da, shift_dt
from anonlib.engine.subject import patient_key
from anonlib.engine.text import Identifiers, Scrubber
from anonlib.engine.uids import UidMapper, is_registry_uid
from anonlib.errors import DeidentificationError
from tests.helpers import minimal

SECRET = b"k" * 32
VENDOR_UID = "1.2.826.0.1.3680043.10.543.7719443.20230415.1"


def test_uid_mapping_is_deterministic_valid_and_keyed() -> None:
    a, b = UidMapper(SECRET), UidMapper(SECRET)
    new = a(VENDOR_UID)
    assert new == b(VENDOR_UID) and new != a(VENDOR_UID + "1")
    assert new != UidMapper(b"j" * 32)(VENDOR_UID)
    assert new.startswith("2.25.") and len(new) <= 64
    assert uuid.UUID(int=int(new[5:])).version == 8
    assert VENDOR_UID not in new and not new.startswith(VENDOR_UID)


def test_uid_mapping_under_an_organisation_root() -> None:
    root = "1.2.826.0.1.3680043.10.543"
    new = UidMapper(SECRET, root)(VENDOR_UID)
    assert new.startswith(root + ".") and len(new) <= 64
    assert all(part == "0" or not part.startswith("0") for part in new.split("."))


def test_registry_uids_are_never_remapped() -> None:
    mapper = UidMapper(SECRET)
    for uid in ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", "2.16.840.1.113883.6.96"):
        assert is_registry_uid(uid) and mapper(uid) == uid


@pytest.mark.parametrize(("value", "days", "expected"), [
    ("20230415", -400, "20220311"), ("2023.04.15", 1, "20230416"), ("20231345", -1, None),
    ("", -1, None), ("20240229", 365, "20250228"),
])
def test_shift_da(value: str, days: int, expected: str | None) -> None:
    assert shift_da(value, days) == expected


def test_shift_dt_keeps_precision_time_and_offset() -> None:
    assert shift_dt("20230415103000.123456-0500", -1) == "20230414103000.123456-0500"
    assert shift_dt("2023", -400) == "2022" and shift_dt("202304", -40) == "202303"
    assert shift_dt("2023041", -1) is None


def test_ages_and_times() -> None:
    assert age_in_years("093Y") == 93 and age_in_years("006M") == 0.5 and age_in_years("9Y") is None
    assert normalize_tm("10:30:00") == "103000" and normalize_tm("103000.5") == "103000.5"
    assert normalize_tm("25:00") is None


def test_scrubber_replaces_known_values_and_patterns() -> None:
    ids = Identifiers(names={"DOE", "JOHN"}, tokens={"7719443", "j.doe@example.org"},
                      phrases={"Saint Elsewhere Hospital"}, dates={"19500102"})
    shifted = lambda d: (d + dt.timedelta(days=-10)).strftime("%Y%m%d")  # noqa: E731
    scrub = Scrubber(ids, shifted, lambda uid: "2.25.1")
    text = ("John Doe (MRN 7719443), born 1950-01-02, seen at Saint Elsewhere Hospital on 15 April 2023; "
            "mail j.doe@example.org or +1 (617) 555-1234; ref 1.2.826.0.1.3680043.10.543.7719443.1; "
            "lesion 12.5 x 10.2 mm")
    clean = scrub.clean(text)
    for leaked in ("John", "Doe", "7719443", "1950-01-02", "Elsewhere", "example.org", "555-1234",
                   "15 April 2023"):
        assert leaked not in clean
    assert "19491223" in clean and "20230405" in clean and "2.25.1" in clean
    assert "12.5 x 10.2 mm" in clean
    assert scrub.known("JOHNSON and Doe_J") == "JOHNSON and [NAME]_J"


def test_patient_key_rules() -> None:
    assert patient_key(minimal(PatientID="77", IssuerOfPatientID="H1")).issuer == "H1"
    no_id = minimal()
    del no_id.PatientID
    key = patient_key(no_id)
    assert key.patient_id == "~study:" + no_id.StudyInstanceUID
    bare = minimal(PatientID="")
    del bare.StudyInstanceUID, bare.SeriesInstanceUID, bare.SOPInstanceUID
    with pytest.raises(DeidentificationError):
        patient_key(bare)


@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("seen 15-APR-2023", "15-APR-2023", "seen 20230405"),
    ("at 2023-04-15T10:30:00", "2023-04-15", "20230405T10:30:00"),
    ("dob 04/15/52", "04/15/52", "19520405"),
    ("April 15th, 2023", "April", "20230405"),
    ("a 93-year-old man", "93", "a 90+ years man"),
    ("value 20231345 here", "20231345", "[ID]"),
    ("lesion 12.5 x 10.2 mm, 45 year old", "\x00", "lesion 12.5 x 10.2 mm, 45 year old"),
])
def test_free_text_dates_ages_and_numbers(text: str, gone: str, kept: str) -> None:
    shifted = lambda d: (d + dt.timedelta(days=-10)).strftime("%Y%m%d")  # noqa: E731
    clean = Scrubber(Identifiers(), shifted, lambda uid: uid).clean(text)
    assert gone not in clean and kept in clean
