"""``anonlib notebook report`` refuses an executed notebook that may show identified data
(browse, preview, anonymize: a marker in the notebook's metadata, or papermill's record of the
bundled notebook it ran) unless ``--allow-identified``, which stamps the title, the top and the
bottom of the page "CONTAINS IDENTIFIED DATA". Executed notebooks are built here with nbformat
(no kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from anonlib.cli import main
from anonlib.errors import ConfigError
from anonlib.notebooks import IDENTIFIED_STAMP, notebook_report

NAME = "DOE^JANE"  # what an executed browse notebook shows


def _executed(path: Path, *, shows: bool | None, ran_from: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    if shows is not None:
        nb.metadata["anonlib"] = {"shows_identified_data": shows}
    if ran_from:
        nb.metadata["papermill"] = {"input_path": f"/somewhere/notebooks/{ran_from}"}
    cell = nbformat.v4.new_code_cell("print(name)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"patient {NAME}\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Browse"), cell]
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("shows, ran_from, why", [
    (True, "", "shows identified data"),
    (None, "", "does not declare"),
    (False, "01_browse.ipynb", "the browse's original values"),  # papermill ran the browse notebook
    (True, "02_preview.ipynb", "the preview's original values"),
])
def test_a_notebook_that_shows_identified_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          shows: bool | None, ran_from: str, why: str) -> None:
    executed = _executed(tmp_path / "browse.ipynb", shows=shows, ran_from=ran_from)
    with pytest.raises(ConfigError, match=why):
        notebook_report(executed, tmp_path / "report.html")
    assert main(["notebook", "report", str(executed), str(tmp_path / "report.html")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "--allow-identified" in lines[0] and "Traceback" not in captured.err
    assert NAME not in captured.err + captured.out
    assert not (tmp_path / "report.html").exists()


def test_allow_identified_stamps_every_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    executed = _executed(tmp_path / "browse.ipynb", shows=True, ran_from="01_browse.ipynb")
    report = tmp_path / "report.html"
    assert main(["notebook", "report", str(executed), str(report), "--allow-identified"]) == 0
    assert IDENTIFIED_STAMP in capsys.readouterr().out
    html = report.read_text(encoding="utf-8")
    assert f"<title>{IDENTIFIED_STAMP}" in html
    body = html[html.index("<body"):]
    after_body = body[body.index(">") + 1:]
    assert after_body.lstrip().startswith('<div class="anonlib-identified"') and IDENTIFIED_STAMP in after_body[:400]
    before_end = html[:html.rindex("</body>")]
    assert before_end.rstrip().endswith(f"{IDENTIFIED_STAMP}</div>")
    assert html.count(IDENTIFIED_STAMP) == 3 and NAME in html  # it is a report of identified data


def test_a_notebook_that_declares_no_identified_data_is_reported_unstamped(tmp_path: Path) -> None:
    executed = _executed(tmp_path / "audit.ipynb", shows=False, ran_from="04_audit.ipynb")
    html = notebook_report(executed, tmp_path / "report.html").read_text(encoding="utf-8")
    assert IDENTIFIED_STAMP not in html and "patient" in html
