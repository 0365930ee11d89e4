"""A new user's first session, end to end: ``anonlib lab`` started as a user starts it, then each
notebook opened in Chromium, Run All, and pointed at *their own* folder from the panel's
fields — no code edited, no traceback seen.

- ``01_browse``: the folder typed into the Source field (Enter): its patients and studies; a
  folder that does not exist (Open): one line saying so.
- ``02_preview``: the folder typed in; the last study and the last object of its last series
  previewed (not the first instance): the verdict and the diff.
- ``03_anonymize``: the folder typed in, an output folder of the user's own in the Output field,
  every study chosen, Anonymize: the summary banner, the files where the user said.
- ``04_audit``: a target that does not exist first (one line), then that output against the
  folder as originals: the PASS badge.

One JupyterLab (``anonlib lab --no-browser`` as a subprocess, ``ANONLIB_HOME`` in tmp; its URL
and token read from what it prints), one Chromium, one page per notebook. Lab serves the
working copy under ``$ANONLIB_HOME/notebooks`` (autosave on, as a user has it): the checkout's
notebooks must come out of the run unchanged. The folder is a synthetic corpus built here, not
any notebook's default. Screenshots: ``test-artifacts/browser/lab-<notebook>.png``.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from anonlib.sources.folder import FolderSource
from anonlib.sources.summary import patient_summary
from anonlib.synthetic import build_corpus
from anonlib.ui.common import study_options
from anonlib.ui.preview_panel import instance_options, series_options
from tests.system.test_browser import (
    ARTIFACTS,
    RUN_TIMEOUT,
    START_TIMEOUT,
    Lab,
    launch_chromium,
    open_and_run_all,
    parameters_cell,
)
from tests.system.test_lab import _wait_for_url

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_NOTEBOOKS = ROOT / "notebooks"
#: Set in the test's own Jupyter config folder: the page exposes the app (its command registry
#: runs "Run All" and says when the kernel is idle); every cell stays in the DOM.
SERVER_CONFIG = {"LabApp": {"expose_app_in_browser": True}}
TRACKER_SETTINGS = ("@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"windowingMode": "none"})


@dataclass
class Mine:
    """The user's own folder, what its studies look like in the pickers, and Lab's working copy."""

    root: Path
    labels: list[str]
    patient_ids: set[str]
    patients: int  # rows of the patient summary (a PatientID under two issuers is two patients)
    missing: Path
    working_copy: Path


def _checkout_state() -> tuple[str, dict[str, str]]:
    """``git status`` of the checkout's notebooks and each notebook's digest."""
    status = subprocess.run(["git", "status", "--porcelain", "--", "notebooks"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    return status, {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(CHECKOUT_NOTEBOOKS.glob("*.ipynb"))}


@pytest.fixture(scope="module")
def mine(tmp_path_factory: pytest.TempPathFactory) -> Mine:
    tmp = tmp_path_factory.mktemp("lab-browser")
    corpus = build_corpus(tmp / "my-studies", seed=11, bad_files=False)
    src = FolderSource(corpus.root)
    studies = src.studies()
    ids = {str(i) for i in studies["patient_id"] if str(i)}
    return Mine(corpus.root, [label for label, _ in study_options(src)], ids, len(patient_summary(studies)),
                tmp / "no-such-folder", tmp / "home" / "notebooks")


@pytest.fixture(scope="module")
def lab(mine: Mine) -> Iterator[Lab]:
    """``anonlib lab --no-browser`` with its home, Jupyter config and runtime folders in tmp."""
    tmp = mine.root.parent
    (tmp / "config").mkdir()
    (tmp / "config" / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
    relative, values = TRACKER_SETTINGS
    settings = tmp / "home" / "lab" / "user-settings" / relative  # anonlib lab keeps settings it finds
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps(values))
    with tempfile.TemporaryDirectory(prefix="lab-rt-") as runtime:  # short: it holds the kernels' sockets
        env = {**os.environ, "ANONLIB_HOME": str(tmp / "home"), "JUPYTER_RUNTIME_DIR": runtime,
               "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
               "IPYTHONDIR": str(tmp / "ipython"), "PYTHONPATH": str(ROOT)}
        log = tmp / "lab.log"
        with log.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "anonlib.cli", "lab", "--no-browser"], cwd=tmp,
                                       env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                       start_new_session=True)
        try:
            base, token = _wait_for_url(process, []).split("/lab?token=")
            assert process.stdout is not None  # drained from now on: a full pipe would block Lab
            threading.Thread(target=process.stdout.read, name="lab-stdout", daemon=True).start()
            server = Lab(base, token, process, log)  # type: ignore[arg-type]
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if server.api("GET", "/api/status").status_code == 200:
                        break
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
            yield server
        finally:
            with contextlib.suppress(httpx.HTTPError, ValueError, NameError):
                server.stop_kernels()
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # what a user does: one Ctrl-C stops Lab and its kernels
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


def _point_at(page: Page, folder: Path, *, enter: bool = True) -> None:
    """Type ``folder`` into the panel's Source field; Enter (or the Open button)."""
    field = page.locator(".anonlib-source-field input")
    field.fill(str(folder))
    if enter:
        field.press("Enter")
    else:
        page.locator("button.anonlib-source-open").click()


def _wait_for_options(page: Page, selector: str, labels: list[str]) -> None:
    """The picker lists exactly the studies of the user's folder (its own labels, in order)."""
    page.wait_for_function("""([selector, labels]) => {
        const options = [...document.querySelectorAll(selector + ' option')];
        const texts = options.map(o => o.textContent.replace(/\\u00a0/g, ' ').trim());
        return JSON.stringify(texts) === JSON.stringify(labels);
    }""", arg=[selector, [label.strip() for label in labels]], timeout=RUN_TIMEOUT * 1000)


def _one_line_error(page: Page, selector: str, missing: Path) -> None:
    error = page.locator(selector).filter(has_text=str(missing))
    error.wait_for(timeout=60_000)
    assert len(error.inner_text().strip().splitlines()) == 1
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()


def _wait_for_result(page: Page, panel: str, result: str) -> None:
    """``result`` shown in ``panel``, or fail at once with the one-line error the panel showed."""
    page.locator(f"{panel} {result}, {panel} .anonlib-error").first.wait_for(timeout=RUN_TIMEOUT * 1000)
    errors = page.locator(f"{panel} .anonlib-error")
    assert errors.count() == 0, errors.first.inner_text()


def _browse(page: Page, mine: Mine) -> str:
    _point_at(page, mine.root)
    summary = page.locator("table.anonlib-patient-summary")
    page.wait_for_function("""([ids]) => {
        const table = document.querySelector('table.anonlib-patient-summary');
        return table && ids.every(id => table.textContent.includes(id));
    }""", arg=[sorted(mine.patient_ids)], timeout=RUN_TIMEOUT * 1000)
    assert summary.locator("tbody tr").count() == mine.patients
    page.locator(".anonlib-slice-label", has_text="slice 1 /").wait_for(timeout=RUN_TIMEOUT * 1000)
    _point_at(page, mine.missing, enter=False)
    _one_line_error(page, ".anonlib-source-error", mine.missing)
    return ".anonlib-source"


def _preview(page: Page, mine: Mine) -> str:
    """The last study, its last series, its last object (the pickers' labels computed here as the
    panel computes them, so that each wait ends on the kernel's update, not a stale list)."""
    src = FolderSource(mine.root)
    _point_at(page, mine.root)
    _wait_for_options(page, ".anonlib-study-picker select", mine.labels)
    study_label, study = study_options(src)[-1]
    page.locator(".anonlib-study-picker select").select_option(label=study_label)
    series = series_options(src, study)
    _wait_for_options(page, ".anonlib-series-picker select", [label for label, _ in series])
    page.locator(".anonlib-series-picker select").select_option(label=series[-1][0])
    instances = [label for label, _ in instance_options(src, study, series[-1][1])]
    _wait_for_options(page, ".anonlib-instance-picker select", instances)
    page.locator(".anonlib-instance-picker select").select_option(label=instances[-1])
    page.locator("button.anonlib-preview-button").click()
    panel = page.locator(".anonlib-preview")
    _wait_for_result(page, ".anonlib-preview", "table.anonlib-diff-table")
    assert panel.locator(".anonlib-preview-shown").inner_text() == instances[-1]
    assert panel.locator(".anonlib-verdict").count() == 1
    return ".anonlib-preview"


def _anonymize(page: Page, mine: Mine, default: Path, output: Path) -> str:
    """The user's folder in Source, their own output folder in Output, every study: Anonymize."""
    _point_at(page, mine.root)
    _wait_for_options(page, ".anonlib-studies-picker select", mine.labels)
    field = page.locator(".anonlib-anonymize-output input")
    assert field.input_value() == str(default)  # the working copy's default, until the user types another
    field.fill(str(output))
    picker = page.locator(".anonlib-studies-picker select")
    options = picker.locator("option")
    picker.select_option(value=[options.nth(n).get_attribute("value") or "" for n in range(options.count())])
    page.locator("button.anonlib-anonymize-button").click()
    banner = page.locator(".anonlib-anonymize .anonlib-banner")
    _wait_for_result(page, ".anonlib-anonymize", ".anonlib-banner:has-text('Done: ')")
    files = int(banner.inner_text().split()[1])
    assert files == sum(1 for p in mine.root.rglob("*") if p.is_file())  # every file of the user's folder
    assert page.locator(".anonlib-progress-count").inner_text() == f"{files} / {files} files"
    assert page.locator("table.anonlib-results tbody tr").count() == len(mine.labels)  # one row per study
    assert len(list(output.rglob("*.dcm"))) > 0 and not default.exists()  # written where the user said
    return ".anonlib-anonymize"


def _audit(page: Page, mine: Mine, target: Path) -> str:
    panel = page.locator(".anonlib-audit")
    panel.locator(".anonlib-audit-target input").fill(str(mine.missing))
    panel.locator("button.anonlib-audit-button").click()
    _one_line_error(page, ".anonlib-audit-error", mine.missing)
    panel.locator(".anonlib-audit-target input").fill(str(target))
    panel.locator(".anonlib-audit-originals input").fill(str(mine.root))
    panel.locator("button.anonlib-audit-button").click()
    panel.locator(".anonlib-audit-error .anonlib-error").wait_for(state="detached", timeout=60_000)  # fields ok
    badge = panel.locator(".anonlib-audit-badge")
    _wait_for_result(page, ".anonlib-audit", ".anonlib-audit-badge")
    assert badge.inner_text().strip() == "PASS", panel.inner_text()
    # the report is outside the folder Lab serves (the working copy): a link downloads it
    with page.expect_download(timeout=60_000) as download:
        panel.locator("a.anonlib-audit-report-download").click()
    assert download.value.suggested_filename == "audit-report.html"
    assert "PASS" in Path(download.value.path()).read_text(encoding="utf-8")
    return ".anonlib-audit"


def _working_copy_output(notebook: Path) -> Path:
    """The ``output`` default of the working copy (anonlib lab made it absolute)."""
    for node in ast.parse(parameters_cell(notebook)).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "output":
            assert isinstance(node.value, ast.Constant)
            return Path(str(node.value.value))
    raise AssertionError(f"{notebook.name}: no output parameter")


@contextlib.contextmanager
def _page(context: BrowserContext, lab: Lab, name: str) -> Iterator[Page]:
    """A page for one notebook; its screenshot (or a failure screenshot); its kernel shut down."""
    page = context.new_page()
    started = time.monotonic()
    try:
        yield page
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"lab-{name}-failure.png"))
        raise
    finally:
        page.close()
        lab.stop_kernels()
    print(f"[lab browser] {name}: {time.monotonic() - started:.1f} s")


def test_a_new_user_points_each_notebook_at_their_own_folder(lab: Lab, mine: Mine, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    before = _checkout_state()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("lab-*.png"):
        stale.unlink()
    default = _working_copy_output(mine.working_copy / "03_anonymize.ipynb")
    if not (ROOT / "example").is_dir():  # no example data here: the copy writes into $ANONLIB_HOME, not the checkout
        assert default == mine.working_copy.parent / "output-notebook"
    output = mine.root.with_name("my-studies-deidentified")  # chosen in the panel's Output field
    steps = [("01_browse", lambda page: _browse(page, mine)), ("02_preview", lambda page: _preview(page, mine)),
             ("03_anonymize", lambda page: _anonymize(page, mine, default, output)),
             ("04_audit", lambda page: _audit(page, mine, output))]
    with sync_playwright() as playwright:
        context = launch_chromium(playwright, tmp_path / "chromium-profile")
        try:
            for notebook, use in steps:
                short = notebook.split("_", 1)[1]
                with _page(context, lab, short) as page:
                    open_and_run_all(page, lab, f"{notebook}.ipynb")
                    panel = use(page)
                    _no_error_shown_but_the_expected(page)
                    page.locator(panel).first.evaluate("e => e.scrollIntoView({block: 'start'})")
                    page.screenshot(path=str(ARTIFACTS / f"lab-{short}.png"))
        finally:
            context.close()
    for notebook, _use in steps:
        assert (ARTIFACTS / f"lab-{notebook.split('_', 1)[1]}.png").stat().st_size > 10_000
    assert _checkout_state() == before, "the checkout's notebooks changed: Lab must work on the working copy"


def _no_error_shown_but_the_expected(page: Page) -> None:
    """No traceback; no red error line but the one-line source errors the steps asked for."""
    assert "Traceback" not in page.locator(".jp-Notebook").inner_text()
    unexpected = page.locator(".jp-Notebook p[style*='#b91c1c']:not(.anonlib-source-error *):not(.anonlib-audit-error *)")
    assert unexpected.count() == 0, unexpected.first.inner_text()

