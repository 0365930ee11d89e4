"""06_reidentify headless through papermill (issue 13, item 7): the lookup shows the true
original, the access log below it gains a row without any value, and no widget is built."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib import cli
from anonlib.notebooks import NOTEBOOKS, WIDGET_MIME_TYPES, notebooks_dir, run_notebook
from anonlib.store import open_store

CELL_TIMEOUT = 300.0


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """ANONLIB_HOME of the kernel: nothing touches the user's own home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANONLIB_HOME", str(tmp_path / "home"))
        yield tmp_path / "home"


def test_reidentify_headless_shows_the_original_and_logs_no_value(home: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(str(get_testdata_file("MR_small.dcm")), tmp_path / "in" / "mr.dcm")
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    assert cli.main(["deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--db", url, "--burned-in", "allow",
                     "--no-progress"]) == 0
    original = pydicom.dcmread(tmp_path / "in" / "mr.dcm", stop_before_pixels=True)
    out = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")), stop_before_pixels=True)

    executed = run_notebook(notebooks_dir() / NOTEBOOKS["reidentify"], tmp_path / "reidentify.ipynb",
                            {"db_url": url, "value": str(out.PatientID), "user": "ivan"}, timeout=CELL_TIMEOUT)
    nb = nbformat.read(executed, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not any(WIDGET_MIME_TYPES & set(o.get("data", {})) for o in shown), "a widget was built headless"
    html = ["".join(o["data"]["text/html"]) for o in shown if "text/html" in o.get("data", {})]
    assert len(html) == 2
    assert "Original PatientID" in html[0] and str(original.PatientID) in html[0]
    assert "ivan" in html[1] and "patient" in html[1]
    assert str(original.PatientID) not in html[1] and str(out.PatientID) not in html[1]
    with open_store(url) as store:
        assert [(e.accessor, e.action, e.result) for e in store.access_log()] == [("ivan", "lookup", "patient")]
