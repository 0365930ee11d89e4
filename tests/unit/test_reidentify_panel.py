"""The re-identification panel without a kernel: a lookup shows the true original and adds a
row to the access log shown below it (which carries no value); an unknown value says so; a
missing store is one line, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib import cli
from anonlib.store import open_store
from anonlib.ui import reidentify_panel
from anonlib.ui.reidentify_panel import ReidentifyPanel


def _log(panel: ReidentifyPanel) -> str:
    """What the access log area shows: its lines, and its interactive table's headers and cells."""
    return "".join(c.value if hasattr(c, "value") else c._dt_args["table_html"] + c._dt_args["data_json"]
                   for c in panel.access.children)


@pytest.fixture(scope="module")
def deidentified(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pydicom.Dataset, pydicom.Dataset]:
    """(store URL, original header, de-identified header) of pydicom's CT_small.dcm."""
    root = tmp_path_factory.mktemp("panel")
    (root / "in").mkdir()
    shutil.copy(str(get_testdata_file("CT_small.dcm")), root / "in" / "ct.dcm")
    url = f"sqlite:///{root / 'store.sqlite3'}"
    assert cli.main(["deidentify", str(root / "in"), str(root / "out"), "--db", url, "--burned-in", "allow",
                     "--no-progress"]) == 0
    out = next((root / "out").rglob("*.dcm"))
    return (url, pydicom.dcmread(root / "in" / "ct.dcm", stop_before_pixels=True),
            pydicom.dcmread(out, stop_before_pixels=True))


def test_a_lookup_shows_the_original_and_logs_it_without_the_value(
        deidentified: tuple[str, pydicom.Dataset, pydicom.Dataset], tmp_path: Path) -> None:
    url, original, out = deidentified
    copy = tmp_path / "store.sqlite3"
    shutil.copy(url.removeprefix("sqlite:///"), copy)
    panel = ReidentifyPanel(f"sqlite:///{copy}", user="grace")
    assert "access log is empty" in _log(panel)
    panel.field.value = f" {out.PatientID} "
    panel.button.click()
    assert "Original PatientID" in panel.result.value and f">{original.PatientID}<" in panel.result.value
    panel.field.value = str(out.SOPInstanceUID)
    panel.look_up()
    assert "Original SOP Instance UID" in panel.result.value and str(original.SOPInstanceUID) in panel.result.value
    heading, table = panel.access.children  # the log: an interactive table (sortable, searchable, paged)
    assert heading.value == "<h4>Access log (newest 2)</h4>" and "anonlib-reid-log" in table.classes
    assert "grace" in _log(panel) and "instance" in _log(panel) and "patient" in _log(panel)
    for value in (out.PatientID, original.PatientID, out.SOPInstanceUID, original.SOPInstanceUID):
        assert str(value) not in _log(panel)
    panel.field.value = "ANON00000000"
    panel.look_up()
    assert "Not found" in panel.result.value and "ANON00000000" not in panel.result.value
    with open_store(f"sqlite:///{copy}") as store:
        assert [e.result for e in store.access_log()] == ["not found", "instance", "patient"]


def test_an_empty_field_looks_nothing_up(deidentified: tuple[str, pydicom.Dataset, pydicom.Dataset],
                                         tmp_path: Path) -> None:
    copy = tmp_path / "store.sqlite3"
    shutil.copy(deidentified[0].removeprefix("sqlite:///"), copy)
    panel = ReidentifyPanel(f"sqlite:///{copy}")
    panel.look_up()
    assert "Enter a pseudonym" in panel.result.value
    with open_store(f"sqlite:///{copy}") as store:
        assert store.access_log() == []


def test_a_missing_store_is_one_line(tmp_path: Path) -> None:
    panel = ReidentifyPanel(f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert "no lookup store" in _log(panel) and "Traceback" not in _log(panel)
    panel.field.value = "ANON1"
    panel.look_up()
    assert "anonlib-error" in panel.result.value and "no lookup store" in panel.result.value
    assert not (tmp_path / "none.sqlite3").exists()


def test_headless_helpers_show_the_lookup_and_the_log(deidentified: tuple[str, pydicom.Dataset, pydicom.Dataset],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, original, out = deidentified
    copy = tmp_path / "store.sqlite3"
    shutil.copy(url.removeprefix("sqlite:///"), copy)
    shown: list[str] = []
    monkeypatch.setattr(reidentify_panel, "show_html", shown.append)
    found = reidentify_panel.show_lookup(f"sqlite:///{copy}", str(out.StudyInstanceUID), "heidi")
    assert found is not None and found.value == original.StudyInstanceUID
    reidentify_panel.show_access_log(f"sqlite:///{copy}", 5)
    assert str(original.StudyInstanceUID) in shown[0] and "Original Study Instance UID" in shown[0]
    assert "heidi" in shown[1] and str(out.StudyInstanceUID) not in shown[1]
