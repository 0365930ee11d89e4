"""The study job scrubs, from every instance of a study, the identifying values that any of its
instances carries (issue #9: an operator or station named in one instance's header and typed
into another instance's comments survived)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonlib.studyjob import process_study
from tests.helpers import sample
from tests.orthanc_helpers import clear, get, storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEAKS = (b"kowalczyk", b"bartholomew", b"ctscan")


def test_a_value_of_one_instance_is_scrubbed_from_the_text_of_another(constellation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    clear(info.intake)
    a = sample("CT_small.dcm")
    a.OperatorsName, a.StationName = "Kowalczyk^Bartholomew", "CTSCAN01"
    b = sample("CT_small.dcm")
    for keyword in ("OperatorsName", "StationName"):
        if keyword in b:
            delattr(b, keyword)
    b.SOPInstanceUID = a.SOPInstanceUID + ".2"
    b.file_meta.MediaStorageSOPInstanceUID = b.SOPInstanceUID
    b.ImageComments = "Scanned by Kowalczyk on CTSCAN01-B, CTSCAN room"
    a.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    b.save_as(tmp_path / "b.dcm", enforce_file_format=True)
    storescu(info, [tmp_path])
    study = wait_stable(info.intake)[0]
    result = process_study(info, study, force=True)
    assert (result.status, result.released) == ("done", 2), result.reason
    for instance in get(info.research, "/instances"):
        blob = get(info.research, f"/instances/{instance}/file").lower()
        assert not [leak for leak in LEAKS if leak in blob]
