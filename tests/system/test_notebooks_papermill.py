"""The four notebooks run headless through :func:`anonlib.notebooks.run_notebook` (papermill, a
real kernel): on folders of the synthetic corpus and against a real constellation. A failing
cell fails the run, a hanging cell times out as a failure, nothing builds a widget, and the audit
notebook's offline report holds no code and no planted value.

Kernels inherit this process's environment: ``ANONLIB_HOME`` (and the constellation's settings)
are set with ``monkeypatch`` before each run.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
import pytest
from sqlalchemy import create_engine, inspect, text

from anonlib.constellation import ConstellationInfo, ConstellationSettings
from anonlib.errors import ConfigError
from anonlib.folder_run import RunSettings, run_folder
from anonlib.notebooks import (
    NOTEBOOKS,
    POLL_SLICE,
    WIDGET_MIME_TYPES,
    NotebookError,
    notebook_report,
    notebooks_dir,
    run_notebook,
    sliced_channel_polling,
)
from anonlib.synthetic import Corpus

pytestmark = pytest.mark.slow

TEST_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
REAL = {name: notebooks_dir() / file for name, file in NOTEBOOKS.items()}
MISSING = sorted(name for name, path in REAL.items() if not path.exists())
needs_real = pytest.mark.skipif(bool(MISSING), reason=f"the real notebooks are not written yet: {MISSING}")

#: Per-cell timeout of the real runs (seconds); a healthy cell takes a few seconds.
CELL_TIMEOUT = 300.0


# -- helpers -------------------------------------------------------------------------------------

def outputs(executed: Path) -> list[dict[str, Any]]:
    nb = nbformat.read(executed, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def html_outputs(executed: Path) -> str:
    return "\n".join("".join(o["data"]["text/html"]) for o in outputs(executed)
                     if "text/html" in o.get("data", {}))


def assert_headless(executed: Path) -> None:
    """interactive=False was injected, no widget was built, every code cell ran."""
    nb = nbformat.read(executed, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "interactive = False" in injected[0].source
    assert "widgets" not in nb.metadata
    for o in outputs(executed):
        assert not WIDGET_MIME_TYPES & set(o.get("data", {})), "a widget was built headless"
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code" and c.source.strip())


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def store_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a lookup store (to prove a dry run wrote nothing)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{name}"'))), key=repr)
                    for name in inspect(conn).get_table_names()}
    finally:
        engine.dispose()


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def leaked(corpus: Corpus, text_: str) -> list[str]:
    """Planted values in ``text_`` (case-insensitive), base64 data URIs left out (random runs of
    characters there can spell a short value by chance)."""
    visible = re.sub(r"data:[a-z+/.-]+;base64,[A-Za-z0-9+/=]+", "", html.unescape(text_)).lower()
    return sorted(v for v in corpus.phi_values() if len(v) >= 4 and v.lower() in visible)


def code_lines(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    return [line.strip() for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
            for line in c.source.splitlines() if len(line.strip()) > 12]


def valid_files(corpus: Corpus) -> list[Path]:
    return [f.path for f in corpus.files if f.expect != "reject"]


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ANONLIB_HOME of this module's kernels: nothing touches the user's own home or example/."""
    folder = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANONLIB_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def deidentified(corpus: Corpus, home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The corpus de-identified by run_folder: (output folder, lookup store URL)."""
    base = tmp_path_factory.mktemp("deidentified")
    url = sqlite_url(base / "lookup.sqlite3")
    run_folder(RunSettings(corpus.root, base / "out", db_url=url))
    return base / "out", url


# -- the channel fix -----------------------------------------------------------------------------

class _FakeSocket:
    def __init__(self, ready_after: int | None) -> None:
        self.polls: list[int | None] = []
        self.ready_after = ready_after

    async def poll(self, timeout: int | None) -> int:
        self.polls.append(timeout)
        if self.ready_after is not None and len(self.polls) > self.ready_after:
            return 1
        await asyncio.sleep((timeout or 0) / 1000)
        return 0


class _FakeChannel:
    def __init__(self, ready_after: int | None) -> None:
        self.socket = _FakeSocket(ready_after)

    async def _recv(self) -> dict[str, Any]:
        return {"msg": "reply"}


def test_channel_polls_in_short_slices_only_while_running() -> None:
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    with sliced_channel_polling(), sliced_channel_polling():  # re-entrant
        patched = AsyncZMQSocketChannel.get_msg
        assert patched is not original
        # A reply that never woke a long poll is seen at the next slice.
        channel = _FakeChannel(ready_after=3)
        assert asyncio.run(patched(channel, timeout=None)) == {"msg": "reply"}
        assert channel.socket.polls == [int(POLL_SLICE * 1000)] * 4
        # Nothing comes: Empty once the caller's own deadline has passed, not before.
        quiet = _FakeChannel(ready_after=None)
        started = time.monotonic()
        with pytest.raises(Empty):
            asyncio.run(patched(quiet, timeout=1.2))
        assert 1.1 < time.monotonic() - started < 3
        assert all(t is not None and t <= POLL_SLICE * 1000 for t in quiet.socket.polls)
        assert len(quiet.socket.polls) >= 3
    assert AsyncZMQSocketChannel.get_msg is original


# -- the small test notebooks --------------------------------------------------------------------

def test_a_table_notebook_runs_headless_and_reports_offline(tmp_path: Path, home: Path) -> None:
    executed = run_notebook(TEST_NOTEBOOKS / "table.ipynb", tmp_path / "table.ipynb",
                            {"source": str(TEST_NOTEBOOKS), "output": str(tmp_path / "out")}, timeout=120)
    assert_headless(executed)
    assert (tmp_path / "out" / "done.txt").read_text() == "4 files, interactive=False\n"
    report = notebook_report(executed, tmp_path / "table.html").read_text()
    assert 'class="dataframe' in report and "data:image/png;base64," in report
    assert "Test notebook: a table and a figure" in report
    assert "sorted(p.name" not in report and "<script src" not in report


def test_widgets_are_built_only_when_the_caller_asks(tmp_path: Path, home: Path) -> None:
    headless = run_notebook(TEST_NOTEBOOKS / "widgets.ipynb", tmp_path / "headless.ipynb", {}, timeout=120)
    assert_headless(headless)
    interactive = run_notebook(TEST_NOTEBOOKS / "widgets.ipynb", tmp_path / "interactive.ipynb",
                               {"interactive": True}, timeout=120)
    mimes = {m for o in outputs(interactive) for m in o.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in mimes
    report = notebook_report(interactive, tmp_path / "interactive.html").read_text()
    assert "widget-view" not in report and "study-A" not in report  # the Dropdown's repr is dropped
    assert "jupyter-widgets" not in report.lower() or "unpkg" not in report


def test_a_failing_cell_fails_the_run_without_quoting_it(tmp_path: Path, home: Path) -> None:
    with pytest.raises(NotebookError) as failed:
        run_notebook(TEST_NOTEBOOKS / "raises.ipynb", tmp_path / "raises.ipynb", {}, timeout=120)
    assert failed.value.cell == 2 and "raised ValueError" in str(failed.value)
    assert "SMITH" not in str(failed.value) and failed.value.__cause__ is None
    assert failed.value.__suppress_context__
    nb = nbformat.read(tmp_path / "raises.ipynb", as_version=4)  # written, error marked
    assert not any("never reached" in "".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    with pytest.raises(NotebookError, match="no report from a failed run"):
        notebook_report(tmp_path / "raises.ipynb", tmp_path / "raises.html")
    assert not (tmp_path / "raises.html").exists()


def test_a_hanging_cell_times_out_as_a_failure(tmp_path: Path, home: Path) -> None:
    started = time.monotonic()
    with pytest.raises(NotebookError, match="did not finish within 5 s") as failed:
        run_notebook(TEST_NOTEBOOKS / "hangs.ipynb", tmp_path / "hangs.ipynb", {}, timeout=5)
    assert failed.value.cell == 1
    assert time.monotonic() - started < 60


def test_the_cli_runs_and_reports(tmp_path: Path, home: Path) -> None:
    def anonlib(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonlib.cli", "notebook", *args], capture_output=True,
                              text=True, cwd=tmp_path, env=os.environ.copy(), timeout=300)

    ran = anonlib("run", str(TEST_NOTEBOOKS / "table.ipynb"), "table.ipynb", "-p", "source", str(TEST_NOTEBOOKS),
                  "-p", "output", "out", "--timeout", "120")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out" / "done.txt").exists()  # relative paths are the caller's, not the kernel's
    reported = anonlib("report", "table.ipynb", "table.html")
    assert reported.returncode == 0 and (tmp_path / "table.html").exists()
    failed = anonlib("run", str(TEST_NOTEBOOKS / "raises.ipynb"), "raises.ipynb")
    assert failed.returncode == 1 and "cell 2 raised ValueError" in failed.stderr
    assert "SMITH" not in failed.stderr + failed.stdout
    hung = anonlib("run", str(TEST_NOTEBOOKS / "hangs.ipynb"), "hangs.ipynb", "--timeout", "3")
    assert hung.returncode == 1 and "did not finish within 3 s" in hung.stderr
    missing = anonlib("run", "nonesuch", "x.ipynb")
    assert missing.returncode == 2 and "no such notebook" in missing.stderr


# -- the real notebooks on folders ---------------------------------------------------------------

@needs_real
def test_browse_a_folder(corpus: Corpus, home: Path, tmp_path: Path) -> None:
    executed = run_notebook(REAL["browse"], tmp_path / "browse.ipynb", {"source": str(corpus.root)},
                            timeout=CELL_TIMEOUT)
    assert_headless(executed)
    shown = html_outputs(executed)
    assert shown.count("<table") >= 2  # patients and studies
    assert 'class="anonlib-table anonlib-patient-summary"' in shown and "<th>Patient ID</th>" in shown
    assert "<h5>Series 1 · " in shown  # each thumbnail strip titled
    assert any("image/png" in o.get("data", {}) for o in outputs(executed))  # series thumbnails


@needs_real
def test_preview_a_folder_is_a_dry_run(corpus: Corpus, deidentified: tuple[Path, str], home: Path,
                                       tmp_path: Path) -> None:
    out, url = deidentified
    before, files_before, home_before = store_snapshot(url), tree(corpus.root), tree(home)
    executed = run_notebook(REAL["preview"], tmp_path / "preview.ipynb", {"source": str(corpus.root), "db_url": url},
                            timeout=CELL_TIMEOUT)
    assert_headless(executed)
    shown = html_outputs(executed)
    assert "anonlib-diff-table" in shown and "anonlib-verdict" in shown and "anonlib-legend" in shown
    assert shown.index("anonlib-verdict") < shown.index("anonlib-diff-table")
    assert 'class="status-kept"' not in shown  # "kept" rows hidden by default
    assert any("image/png" in o.get("data", {}) for o in outputs(executed))  # before / after images
    assert store_snapshot(url) == before and tree(corpus.root) == files_before and tree(home) == home_before


@needs_real
def test_anonymize_a_folder_writes_the_output_tree(corpus: Corpus, home: Path, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "lookup.sqlite3")
    executed = run_notebook(REAL["anonymize"], tmp_path / "anonymize.ipynb",
                            {"source": str(corpus.root), "output": str(tmp_path / "out"), "db_url": url},
                            timeout=CELL_TIMEOUT)
    assert_headless(executed)
    assert (tmp_path / "out" / "manifest.csv").exists()
    written = list((tmp_path / "out").rglob("*.dcm"))
    assert len(written) == sum(1 for f in corpus.files if f.expect == "deidentify")
    assert "anonlib-results" in html_outputs(executed)


@needs_real
def test_audit_a_folder_writes_its_report_and_an_offline_html_without_phi(
        corpus: Corpus, deidentified: tuple[Path, str], home: Path, tmp_path: Path) -> None:
    out, url = deidentified
    executed = run_notebook(REAL["audit"], tmp_path / "audit.ipynb",
                            {"source": str(out), "originals": str(corpus.root), "db_url": url,
                             "output": str(tmp_path / "audit")}, timeout=CELL_TIMEOUT)
    assert_headless(executed)
    assert (tmp_path / "audit" / "audit-report.html").exists()
    summary = json.loads((tmp_path / "audit" / "audit-summary.json").read_text())
    assert summary["passed"] is True
    report = notebook_report(executed, tmp_path / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc=", report, re.IGNORECASE)
    assert not re.search(r"<link[^>]*href=[\"']?(https?:)?//", report, re.IGNORECASE)
    assert "<table" in report and "Regulatory status" in report
    assert "<svg" in report or "data:image/svg+xml" in report  # the findings chart
    shown_code = [line for line in code_lines(REAL["audit"]) if line in html.unescape(report)]
    assert not shown_code, "code in the report"
    assert not leaked(corpus, report)
    assert not leaked(corpus, (tmp_path / "audit" / "audit-report.html").read_text(encoding="utf-8"))


@needs_real
def test_the_audit_notebook_fails_closed_on_misspelt_originals(deidentified: tuple[Path, str], home: Path,
                                                               tmp_path: Path) -> None:
    out, url = deidentified
    typo = tmp_path / "inptu"
    with pytest.raises(ConfigError) as failed:
        run_notebook(REAL["audit"], tmp_path / "audit.ipynb",
                     {"source": str(out), "originals": str(typo), "db_url": url, "output": str(tmp_path / "audit"),
                      "conformance": False}, timeout=CELL_TIMEOUT)
    message = str(failed.value)
    assert message.startswith(f"originals: {typo}: no such folder") and "\n" not in message
    assert not (tmp_path / "audit" / "audit-summary.json").exists()  # no PASS written anywhere
    assert not (tmp_path / "audit.ipynb").exists()  # refused before any kernel started


def test_a_bad_source_parameter_is_one_line_naming_it_and_kernels_use_ipc(tmp_path: Path, home: Path) -> None:
    """``anonlib notebook run`` with a misspelt source: exit 2 and one line naming the parameter
    and the reason, no traceback, no kernel; a good run prints no TCP-without-encryption warning
    (kernels talk over ipc)."""
    def anonlib(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonlib.cli", "notebook", *args], capture_output=True,
                              text=True, cwd=tmp_path, env=os.environ.copy(), timeout=300)

    bad = anonlib("run", "audit", "audit.ipynb", "-p", "source", "data/outptu", "-p", "originals", "")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"anonlib: configuration error: source: {tmp_path / 'data' / 'outptu'}: no such folder "
        "(and not an http(s):// Orthanc URL)"]
    assert not (tmp_path / "audit.ipynb").exists()
    node = anonlib("run", "audit", "audit.ipynb", "-p", "source", str(tmp_path), "-p", "originals", "intkae")
    assert node.returncode == 2 and node.stderr.startswith("anonlib: configuration error: originals: 'intkae' is")
    assert len(node.stderr.strip().splitlines()) == 1
    ran = anonlib("run", str(TEST_NOTEBOOKS / "table.ipynb"), "table.ipynb", "-p", "source", str(TEST_NOTEBOOKS),
                  "-p", "output", "out", "--timeout", "120")
    assert ran.returncode == 0, ran.stderr
    assert "without encryption" not in ran.stderr + ran.stdout and "TCP" not in ran.stderr


@needs_real
def test_review_a_folder_records_decisions_applied_by_the_next_run(home: Path, tmp_path: Path) -> None:
    """A burned-in image is masked by the pixel stage; the review notebook lists it with its boxes
    drawn, records a decision headless (mask one more region), and the next run applies it."""
    import pydicom

    from anonlib.errors import ConfigError
    from anonlib.store import Region, SqlStore
    from tests.burned_in import CORNER, write_burned_in

    source, out = tmp_path / "in", tmp_path / "out"
    burned = write_burned_in(source)
    original_uid = str(pydicom.dcmread(burned, stop_before_pixels=True).SOPInstanceUID)
    url = sqlite_url(tmp_path / "lookup.sqlite3")
    run_folder(RunSettings(source, out, db_url=url))
    with SqlStore(url) as store:
        [found] = store.pixel_findings()
        record = store.instance(original_uid)
    assert found.original_sop_uid == original_uid and found.outcome == "masked" and len(found.boxes) >= 2
    assert record is not None and record.status == "written"
    parameters = {"source": str(source), "output": str(out), "db_url": url}
    listed = run_notebook(REAL["review"], tmp_path / "review.ipynb", parameters, timeout=CELL_TIMEOUT)
    assert_headless(listed)
    shown = html_outputs(listed)
    assert "anonlib-review-table" in shown and found.new_sop_uid in shown and original_uid not in shown
    assert any("image/png" in o.get("data", {}) for o in outputs(listed))  # the frame, boxes drawn
    with pytest.raises(ConfigError, match="identified data"):
        notebook_report(listed, tmp_path / "review.html")

    x, y, w, h = CORNER
    decided = run_notebook(REAL["review"], tmp_path / "decided.ipynb",
                           {**parameters, "instance": record.output, "decision": "mask",
                            "regions": f"{x},{y},{w},{h}", "reviewer": "papermill"}, timeout=CELL_TIMEOUT)
    assert_headless(decided)
    with SqlStore(url) as store:
        decision = store.review(original_uid)
    assert decision is not None and decision.decision == "mask" and decision.reviewer == "papermill"
    assert decision.regions == (Region(0, x, y, w, h),)
    assert "<td>mask</td>" in html_outputs(decided)

    before = pydicom.dcmread(out / record.output).pixel_array[y:y + h, x:x + w].copy()
    run_folder(RunSettings(source, out, db_url=url))  # processed again: the decision is applied
    after = pydicom.dcmread(out / record.output).pixel_array[y:y + h, x:x + w]
    assert before.std() > 0 and after.min() == after.max()  # the corner is one constant now


@needs_real
def test_a_failing_cell_of_a_real_notebook_fails_the_run(corpus: Corpus, home: Path, tmp_path: Path) -> None:
    with pytest.raises(NotebookError) as failed:
        run_notebook(REAL["browse"], tmp_path / "browse.ipynb", {"source": str(corpus.root), "study": "nonesuch"},
                     timeout=CELL_TIMEOUT)
    assert failed.value.cell is not None and failed.value.cell > 1 and "raised UnknownKey" in str(failed.value)


# -- the real notebooks against the constellation ------------------------------------------------

@pytest.fixture(scope="module")
def node_env(constellation: tuple[ConstellationSettings, ConstellationInfo], corpus: Corpus
             ) -> Iterator[tuple[ConstellationSettings, ConstellationInfo]]:
    """The corpus C-STOREd into intake (stable), and the kernels' environment pointing at it."""
    from tests.orthanc_helpers import storescu, wait_stable

    settings, info = constellation
    storescu(info, valid_files(corpus))
    wait_stable(info.intake)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANONLIB_HOME", str(settings.home))
        patch.setenv("ANONLIB_PG_ADMIN", settings.pg_admin_url)
        patch.setenv("ANONLIB_DB_PREFIX", settings.db_prefix)
        yield settings, info


@needs_real
def test_browse_and_preview_a_node(node_env: tuple[ConstellationSettings, ConstellationInfo],
                                   tmp_path: Path) -> None:
    from anonlib.store import open_store
    from tests.orthanc_helpers import count_instances

    _, info = node_env
    browsed = run_notebook(REAL["browse"], tmp_path / "browse.ipynb", {"source": "intake"}, timeout=CELL_TIMEOUT)
    assert_headless(browsed)
    assert html_outputs(browsed).count("<table") >= 2
    research_before = count_instances(info.research)
    with open_store(info.db_url) as store:
        deliveries_before = store.deliveries("intake")
    previewed = run_notebook(REAL["preview"], tmp_path / "preview.ipynb",
                             {"source": "intake", "db_url": info.db_url}, timeout=CELL_TIMEOUT)
    assert_headless(previewed)
    assert "anonlib-diff-table" in html_outputs(previewed)
    assert count_instances(info.research) == research_before  # a dry run
    with open_store(info.db_url) as store:
        assert store.deliveries("intake") == deliveries_before


@needs_real
def test_anonymize_a_node_queues_its_studies(node_env: tuple[ConstellationSettings, ConstellationInfo],
                                            tmp_path: Path) -> None:
    from anonlib.jobs.db import JobsDb
    from tests.orthanc_helpers import get

    _, info = node_env
    executed = run_notebook(REAL["anonymize"], tmp_path / "anonymize.ipynb",
                            {"source": "intake", "db_url": info.db_url}, timeout=CELL_TIMEOUT)
    assert_headless(executed)
    assert "No study is held by the audit gate." in html_outputs(executed)  # held studies are shown
    db = JobsDb(info.db_url)
    try:
        queued = {job.study_id for job in db.jobs(limit=None)}
    finally:
        db.close()
    assert set(get(info.intake, "/studies")) <= queued


@needs_real
def test_audit_research_against_intake(node_env: tuple[ConstellationSettings, ConstellationInfo],
                                       corpus: Corpus, tmp_path: Path) -> None:
    from anonlib.studyjob import process_study
    from tests.orthanc_helpers import get

    _, info = node_env
    for study in get(info.intake, "/studies"):  # what a worker does with each queued study
        assert process_study(info, study).status in ("done", "unchanged")
    executed = run_notebook(REAL["audit"], tmp_path / "audit.ipynb",
                            {"source": "research", "originals": "intake", "db_url": info.db_url,
                             "output": str(tmp_path / "audit"), "conformance": False}, timeout=CELL_TIMEOUT)
    assert_headless(executed)
    summary = json.loads((tmp_path / "audit" / "audit-summary.json").read_text())
    assert summary["passed"] is True and summary["with_originals"] == summary["instances"] > 0
    report = notebook_report(executed, tmp_path / "report.html").read_text(encoding="utf-8")
    assert not leaked(corpus, report)
