"""A real browser on a real JupyterLab, the way a newcomer uses the four notebooks: open each,
Run All, use its widget, and see what it shows.

- ``01_browse``: the patient summary and the studies as interactive tables; the newest study is
  selected after Run All (titled thumbnail strips, first slice); move the slice slider, pick the
  lung window, click another study in the studies table.
- ``02_preview``: pick a study (not the default), click the preview button: the diff table.
- ``03_anonymize``: select every study, click "Anonymize", then "Cancel": the run stops and says so;
  "Anonymize" again: the summary banner, one row per study
  with the quarantined one first and highlighted, "x / y files", the manifest links, which Lab opens in a tab.
- ``04_audit``: its target and originals fields, click "Run the audit": the green PASS badge, the
  summary with plain category names, findings per study with the pseudonym, the chart, and the
  report link, which opens the HTML report in a Lab tab.
- ``05_review``: pick the burned-in image, enter a region and click "Mask regions and release",
  then reject another instance: both decisions are in the lookup store.
- ``06_reidentify``: look a patient's pseudonym up in the store built here: the original
  PatientID, and a new row in the access log (who, what kind) with neither value in it.

JupyterLab runs as a subprocess on a free port with its own config, data, settings and IPython
folders in tmp (no news pop-up, no autosave: the notebooks in the repository are never
rewritten). The parameters reach the kernel the way papermill's injected cell would: an IPython
start-up hook assigns them right after the cell tagged ``parameters`` runs. Headless Chromium is
Debian's ``/usr/bin/chromium`` driven by the ``playwright`` Python package (no browser
download). Screenshots are left in ``test-artifacts/browser/<notebook>.png``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nbformat
import pytest

from anonlib.folder_run import RunSettings, run_folder
from anonlib.notebooks import notebooks_dir
from anonlib.synthetic import build_corpus
from tests.burned_in import write_burned_in

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = {name: notebooks_dir() / f"{name}.ipynb"
             for name in ("01_browse", "02_preview", "03_anonymize", "04_audit", "05_review", "06_reidentify")}
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 90.0
RUN_TIMEOUT = 180.0

LAB_SETTINGS = {
    # The "Would you like to receive official Jupyter news?" pop-up, update checks, toasts.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    # Never write the opened notebook (with its outputs) back into the repository.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # Every cell in the DOM, so that every execution count can be read.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

INJECT_HOOK = '''\
import json as _json

_ANONLIB_PARAMETERS = _json.loads({parameters!r})  # [parameters cell, values] per notebook


def _anonlib_inject_parameters(result):
    def norm(text):
        return [line.rstrip() for line in text.strip().splitlines()]

    for cell, values in _ANONLIB_PARAMETERS:
        if norm(result.info.raw_cell) == norm(cell):
            get_ipython().user_ns.update(values)


get_ipython().events.register("post_run_cell", _anonlib_inject_parameters)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"token {self.token}"},
                             timeout=10)

    def stop_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions").json():
            self.api("DELETE", f"/api/sessions/{session['id']}")


def parameters_cell(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return str(cell.source)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A synthetic folder, its de-identified copy and their SQLite lookup store (so patients
    have pseudonyms), ANONLIB_HOME, and the parameters of each notebook, all in tmp."""
    tmp = tmp_path_factory.mktemp("browser")
    corpus = build_corpus(tmp / "input", seed=3, bad_files=False)
    burned = write_burned_in(corpus.root / "burned")  # the pixel stage masks its text: one to review
    home = tmp / "home"
    home.mkdir()
    db_url = f"sqlite:///{home / 'lookup.sqlite3'}"
    run_folder(RunSettings(corpus.root, tmp / "output", db_url=db_url))
    common = {"source": str(corpus.root), "db_url": db_url, "output": "", "originals": "", "interactive": True}
    anonymized = ARTIFACTS / "anonymized"  # in the folder Lab serves: the manifests' links open; fresh
    for stale in (anonymized, anonymized.with_name("anonymized-quarantine")):
        shutil.rmtree(stale, ignore_errors=True)
    return {
        "tmp": tmp, "home": home, "burned": burned,
        "parameters": {
            "01_browse": common,
            "02_preview": common,
            "03_anonymize": {**common, "output": str(anonymized)},
            "04_audit": {**common, "source": str(tmp / "output"), "originals": str(corpus.root),
                         "output": str(ARTIFACTS / "audit")},  # in the folder Lab serves: its link opens
            "05_review": {**common, "output": str(tmp / "output"), "reviewer": "browser test"},
            "06_reidentify": {**common, "user": "browser test"},
        },
    }


@pytest.fixture(scope="module")
def lab(prepared: dict[str, Any]) -> Iterator[Lab]:
    """JupyterLab on a free port; its process group killed and its sessions deleted afterwards."""
    tmp: Path = prepared["tmp"]
    jupyter = tmp / "jupyter"
    for relative, values in LAB_SETTINGS.items():
        path = jupyter / "lab-settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    startup = jupyter / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    injected = [[parameters_cell(NOTEBOOKS[name]), values] for name, values in prepared["parameters"].items()]
    (startup / "00-anonlib-test-parameters.py").write_text(INJECT_HOOK.format(parameters=json.dumps(injected)))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "ANONLIB_HOME": str(prepared["home"]), "IPYTHONDIR": str(jupyter / "ipython"),
           "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces")}
    log = tmp / "jupyterlab.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={ROOT}", "--LabApp.expose_app_in_browser=True"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"JupyterLab exited: {log.read_text()[-2000:]}"
            try:
                if server.api("GET", "/api/status").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"JupyterLab did not start: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            server.stop_kernels()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # Lab shuts its kernels down on SIGTERM
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_for_every_execution_count(page: Page, timeout: float) -> None:
    """Every code cell shows ``[n]:``; an error output fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate("""() => {
            const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
            const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '');
            const errors = document.querySelectorAll('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]');
            const failed = [...errors].some(e => e.textContent.includes('Traceback'));
            return {prompts, failed};
        }""")
        prompts = [p.strip() for p in state["prompts"]]
        if prompts and all(p[1:-2].strip().isdigit() for p in prompts):
            return
        assert not state["failed"], f"a cell failed in JupyterLab: prompts {prompts}"
        assert time.monotonic() < deadline, f"cells still without an execution count: {prompts}"
        time.sleep(0.25)


def launch_chromium(playwright: Playwright, profile: Path, *, height: int = 1500) -> BrowserContext:
    """Debian's headless Chromium with a fresh profile at ``profile`` (never a downloaded browser)."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1500, "height": height})


def open_and_run_all(page: Page, lab: Lab, relative: str) -> None:
    """Open the notebook at ``relative`` (to Lab's root) in ``page``, wait for its kernel, Run All,
    and wait until every code cell has run."""
    page.goto(f"{lab.url}/lab/tree/{relative}?reset&token={lab.token}", timeout=START_TIMEOUT * 1000)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=START_TIMEOUT * 1000)
    # The notebook's kernel is up, then Run All (the app is exposed for its command registry).
    page.wait_for_function("""() => {
        const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const kernel = widget && widget.sessionContext && widget.sessionContext.session
                       && widget.sessionContext.session.kernel;
        return kernel && kernel.status === 'idle';
    }""", timeout=START_TIMEOUT * 1000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait_for_every_execution_count(page, RUN_TIMEOUT)


def _no_error_shown(page: Page) -> None:
    """No traceback, and no error a panel caught and showed in red."""
    text = page.locator(".jp-Notebook").inner_text()
    assert "Traceback" not in text
    assert page.locator(".jp-Notebook p[style*='#b91c1c']").count() == 0, \
        page.locator(".jp-Notebook p[style*='#b91c1c']").first.inner_text()


def _use_browse(page: Page, _parameters: dict[str, Any]) -> str:
    panel = page.locator(".anonlib-browse")
    page.locator("table.anonlib-studies tbody tr").nth(1).wait_for(timeout=60_000)  # interactive table
    assert page.locator("table.anonlib-patient-summary tbody tr").count() >= 2
    headers = page.locator("table.anonlib-studies thead").inner_text()
    assert "Patient ID" in headers and "Study Date" in headers and "patient_id" not in headers
    search = panel.locator(".dt-container", has=page.locator("table.anonlib-studies")).locator(".dt-search input")
    search.fill(page.locator("table.anonlib-studies tbody tr").first.locator("td").nth(2).inner_text())
    page.locator(".dt-info", has_text="filtered").first.wait_for(timeout=30_000)  # the search filters rows
    search.fill("")
    # the newest study is selected after Run All: its series strips and first slice, no click
    picker = page.locator(".anonlib-series-picker select")
    assert picker.locator("option").count() >= 2 and picker.input_value()
    page.locator(".anonlib-strip-title").first.wait_for(timeout=RUN_TIMEOUT * 1000)
    assert page.locator(".anonlib-strip-title").first.inner_text().startswith("Series ")
    assert panel.locator(".jp-OutputArea-output img").count() >= 1  # thumbnails
    label = page.locator(".anonlib-slice-label")
    label.filter(has_text="slice 1 /").wait_for(timeout=RUN_TIMEOUT * 1000)
    assert page.locator("img.anonlib-slice-image").get_attribute("src")  # the slice, as a PNG
    # move the slice slider (its readout takes a value), then pick the lung window
    readout = page.locator(".anonlib-slice-slider .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    label.filter(has_text="slice 3 /").wait_for(timeout=60_000)
    page.locator(".anonlib-window-preset select").select_option(label="lung")
    label.filter(has_text="slice 3 /").filter(has_text="window lung").wait_for(timeout=60_000)
    # another study, clicked in the studies table: the picker and the series follow
    before = picker.input_value()
    page.locator("table.anonlib-studies tbody tr").nth(1).locator("td").nth(3).click()
    page.wait_for_function("([el, before]) => el.value !== before",
                           arg=[picker.element_handle(), before], timeout=60_000)
    label.filter(has_text="slice 1 /").wait_for(timeout=RUN_TIMEOUT * 1000)
    return ".anonlib-browse"


def _use_preview(page: Page, _parameters: dict[str, Any]) -> str:
    """Pick a study with an SR, its SR series and instance; preview: the verdict and images come
    above the diff; "kept" is hidden until ticked; the search narrows the rows; the CSV downloads."""
    import re

    study = page.locator(".anonlib-study-picker select")
    study.wait_for(timeout=60_000)
    labels = study.locator("option").all_inner_texts()
    with_sr = [label for label in labels if re.search(r"\bSR\b", label)]
    assert len(labels) >= 2 and with_sr
    series = page.locator(".anonlib-series-picker select")
    instance = page.locator(".anonlib-instance-picker select")
    assert instance.locator("option").count() >= 1 and instance.input_value()  # one chosen from the start
    study.select_option(label=with_sr[-1])
    sr_series = series.locator("option", has_text=re.compile(r"·\sSR\s·"))
    sr_series.first.wait_for(state="attached", timeout=60_000)
    series.select_option(label=sr_series.first.inner_text())
    page.wait_for_function("""(selector) => {  // the SR series' instances are listed (labels name the modality)
        const options = [...document.querySelectorAll(selector + ' option')];
        return options.length > 0 && options.every(o => /·\\sSR\\s·/.test(o.textContent));
    }""", arg=".anonlib-instance-picker select", timeout=60_000)
    chosen = instance.locator("option").last.inner_text()
    instance.select_option(label=chosen)
    page.locator("button.anonlib-preview-button").click()
    panel = page.locator(".anonlib-preview")
    table = panel.locator("table.anonlib-diff-table")
    table.wait_for(timeout=RUN_TIMEOUT * 1000)
    shown = panel.locator(".anonlib-preview-shown").inner_text()
    assert shown == chosen.replace("\xa0", " ")  # the instance picked, not the first (options have nbsp)
    assert panel.locator(".anonlib-verdict").count() == 1 and "pseudonym" in panel.inner_text()
    # the study's US (a face) would be quarantined: named, with its reason, before the images
    assert "RecognizableVisualFeatures" in panel.locator("table.anonlib-problems").inner_text()
    image = panel.locator(".anonlib-no-image").first  # an SR: no pixel data, one line says so
    image.wait_for(timeout=60_000)
    verdict_box, image_box, table_box = (panel.locator(".anonlib-verdict").bounding_box(), image.bounding_box(),
                                         table.bounding_box())
    assert verdict_box and image_box and table_box and verdict_box["y"] < image_box["y"] < table_box["y"]
    panel.locator(".anonlib-diff-legend summary").click()  # folded under the codes it explains
    assert "Remove the attribute" in panel.locator(".anonlib-diff-legend").inner_text()
    rows = table.locator("tbody tr")
    before = rows.count()
    assert before > 5 and table.locator("tr.status-kept").count() == 0  # "kept" hidden by default
    panel.locator(".anonlib-diff-status-kept input").check()
    table.locator("tr.status-kept").first.wait_for(timeout=30_000)
    assert rows.count() > before
    search = panel.locator(".anonlib-diff-search input")
    search.fill("SOPClassUID")
    page.wait_for_function("""() => {
        const rows = [...document.querySelectorAll('.anonlib-preview table.anonlib-diff-table tbody tr')];
        return rows.length > 0 && rows.every(r => r.textContent.includes('SOPClassUID'));
    }""", timeout=30_000)
    sop_class = rows.filter(has=page.locator("td", has_text=re.compile(r"^SOPClassUID$")))
    assert "1.2.840.10008.5.1.4.1.1.88." in sop_class.first.inner_text()  # an SR's diff
    with page.expect_download(timeout=30_000) as download:
        panel.locator("a.anonlib-csv-link").first.click()
    assert re.fullmatch(r"anonlib-diff-shown-[0-9a-f]{12}\.csv", download.value.suggested_filename)
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("path,keyword,name,vr,original,deidentified,status,action")
    assert len(lines) > 1 and all("SOPClassUID" in line for line in lines[1:])
    return ".anonlib-preview"


def _use_anonymize(page: Page, parameters: dict[str, Any]) -> str:
    """Every study chosen (one has images the pixel stage quarantines), Anonymize, and Cancel once
    the first files are done: the kernel takes the click while the run goes on (it runs in a
    thread) and the banner says it was cancelled. Anonymize again: the count on the bar, the
    summary banner, the per-study table with the quarantined study first and highlighted, and
    the manifests as links that Lab opens (the output is inside the folder it serves)."""
    assert page.locator(".anonlib-source-field input").input_value() == parameters["source"]
    picker = page.locator(".anonlib-studies-picker select")
    picker.wait_for(timeout=60_000)
    options = picker.locator("option")
    picker.select_option(value=[options.nth(n).get_attribute("value") or "" for n in range(options.count())])
    count = page.locator(".anonlib-progress-count")
    banner = page.locator(".anonlib-anonymize .anonlib-banner")
    page.locator("button.anonlib-anonymize-button").click()
    count.filter(has_text=re.compile(r"^[1-9]\d* / \d+ files$")).wait_for(timeout=RUN_TIMEOUT * 1000)
    page.locator("button.anonlib-cancel-button").click()
    banner.wait_for(timeout=RUN_TIMEOUT * 1000)
    assert banner.inner_text().startswith("Cancelled: ") and count.inner_text().endswith("files (cancelled)")
    page.locator("button.anonlib-anonymize-button").click()  # again, to the end
    banner.filter(has_text="Done: ").wait_for(timeout=RUN_TIMEOUT * 1000)
    output = Path(parameters["output"])
    released = len(list(output.rglob("*.dcm")))
    quarantined = len(list(Path(f"{output}-quarantine").rglob("*.dcm")))
    assert released and quarantined
    text = banner.inner_text()
    shown = {name: int(banner.locator(f".anonlib-count-{name} b").inner_text()) for name in ("written", "unchanged")}
    assert f"{quarantined} quarantined" in text and shown["written"] + shown["unchanged"] == released + quarantined
    assert shown["unchanged"] > 0  # what the cancelled run had written
    files = int(text.split()[1])
    assert count.inner_text() == f"{files} / {files} files"
    table = page.locator("table.anonlib-results")
    assert table.locator("tbody tr").count() == options.count()  # one row per study, not per file
    table.locator("th", has_text="Reasons").scroll_into_view_if_needed()  # wide tables scroll, nothing cut off
    assert table.locator("th", has_text="Reasons").is_visible()
    table.evaluate("t => { t.parentElement.scrollLeft = 0; }")  # back to the status column for the screenshot
    first = table.locator("tbody tr").first
    assert first.get_attribute("class") == "status-quarantined"
    assert first.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor") == "rgb(255, 243, 205)"
    assert first.locator("td").nth(1).evaluate("td => getComputedStyle(td).textAlign") == "left"
    assert page.locator("table.anonlib-problem-files tbody tr").count() == quarantined
    assert page.locator("button.anonlib-cancel-button").is_disabled()
    links = page.locator(".anonlib-anonymize a.anonlib-file-link")
    hrefs = [links.nth(n).get_attribute("href") or "" for n in range(links.count())]
    assert len(hrefs) == 2 and "/files/test-artifacts/browser/anonymized/manifest.csv" in hrefs[0]  # Lab's
    assert "/files/test-artifacts/browser/anonymized-quarantine/quarantine.csv" in hrefs[1]
    links.first.click()  # Lab opens the manifest in a tab of its own
    page.locator(".lm-TabBar-tab", has_text="manifest.csv").first.wait_for(timeout=60_000)
    page.locator(".lm-TabBar-tab", has_text="03_anonymize.ipynb").first.click()  # back to the panel
    page.locator(".anonlib-anonymize .anonlib-banner").wait_for(timeout=30_000)
    return ".anonlib-anonymize"


def _use_audit(page: Page, parameters: dict[str, Any]) -> str:
    panel = page.locator(".anonlib-audit")
    panel.locator(".anonlib-audit-target input").wait_for(timeout=60_000)
    assert panel.locator(".anonlib-audit-target input").input_value() == parameters["source"]
    assert panel.locator(".anonlib-audit-originals input").input_value() == parameters["originals"]
    page.locator("button.anonlib-audit-button").click()
    page.locator("table.anonlib-audit-summary").wait_for(timeout=RUN_TIMEOUT * 1000)
    panel.locator("svg").first.wait_for(timeout=60_000)  # the findings chart
    badge = panel.locator(".anonlib-audit-badge")
    assert badge.inner_text().strip() == "PASS" and "status-PASS" in (badge.get_attribute("class") or "")
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(30, 132, 73)"  # green pill
    assert "Names" in panel.locator("table.anonlib-audit-summary").inner_text()  # plain category names
    assert "ANON" in panel.locator("table.anonlib-by-study").inner_text()  # per study, with the pseudonym
    assert (Path(parameters["output"]) / "audit-report.html").exists()
    link = panel.locator("a.anonlib-audit-report-link")
    assert "/files/test-artifacts/browser/audit/audit-report.html" in (link.get_attribute("href") or "")  # Lab's
    link.click()  # Lab opens the report in a tab of its own
    page.locator(".lm-TabBar-tab", has_text="audit-report.html").first.wait_for(timeout=60_000)
    page.locator(".lm-TabBar-tab", has_text="04_audit.ipynb").first.click()  # back to the panel
    panel.wait_for(timeout=30_000)
    return ".anonlib-audit"


def _use_review(page: Page, parameters: dict[str, Any]) -> str:
    import pydicom

    from anonlib import pixel_review
    from anonlib.store import Region, SqlStore

    burned_uid = str(pydicom.dcmread(parameters["burned"], stop_before_pixels=True).SOPInstanceUID)
    items = pixel_review.review_items(parameters["db_url"], parameters["output"])
    [burned] = [i for i in items if i.findings.original_sop_uid == burned_uid]
    assert burned.findings.outcome == "masked" and burned.findings.boxes
    picker = page.locator(".anonlib-review-picker select")
    picker.wait_for(timeout=60_000)
    page.locator("table.anonlib-review-table").first.wait_for(timeout=60_000)
    picker.select_option(label=burned.label())
    page.locator(".anonlib-review img").first.wait_for(timeout=60_000)  # the frame with its boxes
    for name, value in (("x", "200"), ("y", "200"), ("w", "40"), ("h", "40")):
        field = page.locator(f".anonlib-review-{name} input")
        field.fill(value)
        field.press("Tab")
    page.locator("button.anonlib-review-add").click()
    page.locator(".anonlib-review-regions", has_text="x 200 y 200 w 40 h 40").wait_for(timeout=30_000)
    page.locator("button.anonlib-review-mask").click()
    page.locator(".anonlib-review-recorded", has_text="Recorded: mask").wait_for(timeout=60_000)
    others = [i for i in items if i.key != burned.key]
    if others:  # and one more decision, on another instance
        picker.select_option(label=others[0].label())
        # the kernel has switched to it (the image panel names it) before the decision is sent
        page.locator(".anonlib-review-current", has_text=others[0].label()).wait_for(timeout=60_000)
        page.locator("button.anonlib-review-reject").click()
        page.locator(".anonlib-review-recorded", has_text="Recorded: reject").wait_for(timeout=60_000)
    with SqlStore(parameters["db_url"]) as store:
        decision = store.review(burned_uid)
        assert decision is not None and decision.decision == "mask" and decision.reviewer == "browser test"
        assert decision.regions == (Region(0, 200, 200, 40, 40),)
        if others:
            rejected = store.review(others[0].findings.original_sop_uid)
            assert rejected is not None and rejected.decision == "reject"
    return ".anonlib-review"


def _use_reidentify(page: Page, parameters: dict[str, Any]) -> str:
    """A patient's pseudonym (read from the store's patient table, not through the panel's code)
    looked up: the original PatientID in full; the access log (an interactive table) gets a row
    with who and what kind, and neither the pseudonym nor the original."""
    from anonlib.reidentify import SUBSTITUTE_PREFIX
    from anonlib.store import open_store

    with open_store(parameters["db_url"]) as store:
        key, identity = next((k, i) for k, i in store.patients() if not k.patient_id.startswith(SUBSTITUTE_PREFIX))
    panel = page.locator(".anonlib-reidentify")
    field = panel.locator(".anonlib-reid-field input")
    field.wait_for(timeout=60_000)
    field.fill(identity.pseudonym)
    panel.locator("button.anonlib-reid-button").click()
    value = panel.locator("code.anonlib-reid-value")
    value.wait_for(timeout=60_000)
    assert value.inner_text() == key.patient_id
    assert panel.locator(".anonlib-reid-result").inner_text().startswith("Original PatientID: ")
    log = panel.locator("table.anonlib-reid-log")
    row = log.locator("tbody tr", has_text="browser test").first
    row.wait_for(timeout=60_000)
    assert "patient" in row.inner_text()
    shown = log.inner_text()
    assert identity.pseudonym not in shown and key.patient_id not in shown  # the log holds no value
    assert log.locator("thead").inner_text().split()[:2] == ["When", "Who"]
    return ".anonlib-reidentify"


USES: dict[str, Callable[[Page, dict[str, Any]], str]] = {
    "01_browse": _use_browse, "02_preview": _use_preview, "03_anonymize": _use_anonymize, "04_audit": _use_audit,
    "05_review": _use_review, "06_reidentify": _use_reidentify}


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_and_its_widget_in_jupyterlab(name: str, lab: Lab, prepared: dict[str, Any],
                                               tmp_path: Path, record_property: Callable[[str, object], None],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import sync_playwright

    notebook = NOTEBOOKS[name]
    committed = hashlib.sha256(notebook.read_bytes()).hexdigest()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    short = name.split("_", 1)[1]
    screenshot = ARTIFACTS / f"{short}.png"
    screenshot.unlink(missing_ok=True)
    relative = notebook.relative_to(ROOT).as_posix()
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, tmp_path / "chromium-profile")
        page = browser.new_page()
        try:
            open_and_run_all(page, lab, relative)
            panel = USES[name](page, {**prepared["parameters"][name], "burned": str(prepared["burned"])})
            _no_error_shown(page)
            page.locator(panel).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(screenshot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{short}-failure.png"))
            raise
        finally:
            browser.close()
            lab.stop_kernels()
    elapsed = time.monotonic() - started
    assert screenshot.stat().st_size > 10_000
    assert hashlib.sha256(notebook.read_bytes()).hexdigest() == committed, "the repository's notebook was rewritten"
    record_property("screenshot", str(screenshot))
    with capsys.disabled():
        print(f"\n[browser] {name}: screenshot {screenshot} ({elapsed:.1f} s)")
