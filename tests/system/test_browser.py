"""A real browser on a real JupyterLab: open ``notebooks/02_preview.ipynb``, Run All, pick a
study in the preview widget, click the preview button, and see the de-identification diff table.

JupyterLab runs as a subprocess on a free port with its own config, data, settings and IPython
folders in tmp (no news pop-up, no autosave: the notebook in the repository is never rewritten).
The parameters reach the kernel the way papermill's injected cell would: an IPython start-up
hook assigns them right after the cell tagged ``parameters`` runs. Headless Chromium is Debian's
``/usr/bin/chromium`` driven by the ``playwright`` Python package (no browser download).
The screenshot is left in ``test-artifacts/browser/preview.png``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nbformat
import pytest

from anonlib.notebooks import notebooks_dir
from anonlib.pipeline import RunSettings, run_folder
from anonlib.synthetic import build_corpus

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = notebooks_dir() / "02_preview.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STUDY_PICKER, PREVIEW_BUTTON, DIFF_TABLE = ".anonlib-study-picker", ".anonlib-preview-button", "table.anonlib-diff-table"
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

_ANONLIB_PARAMETERS = _json.loads({parameters!r})
_ANONLIB_PARAMETERS_CELL = {cell!r}


def _anonlib_inject_parameters(result):
    def norm(text):
        return [line.rstrip() for line in text.strip().splitlines()]

    if norm(result.info.raw_cell) == norm(_ANONLIB_PARAMETERS_CELL):
        get_ipython().user_ns.update(_ANONLIB_PARAMETERS)


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


def parameters_cell(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return str(cell.source)


@pytest.fixture
def prepared(tmp_path: Path) -> dict[str, object]:
    """A synthetic folder and its SQLite lookup store (de-identified once, so patients have
    pseudonyms), and ANONLIB_HOME, all in tmp."""
    corpus = build_corpus(tmp_path / "input", seed=3, bad_files=False)
    home = tmp_path / "home"
    home.mkdir()
    db_url = f"sqlite:///{home / 'lookup.sqlite3'}"
    run_folder(RunSettings(corpus.root, tmp_path / "output", db_url=db_url))
    return {"source": str(corpus.root), "db_url": db_url, "output": "", "originals": "",
            "interactive": True, "home": str(home)}


@pytest.fixture
def lab(prepared: dict[str, object], tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on a free port; its process group killed and its sessions deleted afterwards."""
    jupyter = tmp_path / "jupyter"
    for relative, values in LAB_SETTINGS.items():
        path = jupyter / "lab-settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    startup = jupyter / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    injected = {k: v for k, v in prepared.items() if k != "home"}
    (startup / "00-anonlib-test-parameters.py").write_text(
        INJECT_HOOK.format(parameters=json.dumps(injected), cell=parameters_cell(NOTEBOOK)))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "ANONLIB_HOME": str(prepared["home"]), "IPYTHONDIR": str(jupyter / "ipython"),
           "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces")}
    log = tmp_path / "jupyterlab.log"
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
        try:
            for session in server.api("GET", "/api/sessions").json():
                server.api("DELETE", f"/api/sessions/{session['id']}")
        except (httpx.HTTPError, ValueError):
            pass
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


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="notebooks/02_preview.ipynb is not written yet")
def test_preview_widget_in_jupyterlab(lab: Lab, tmp_path: Path,
                                      record_property: Callable[[str, object], None],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import sync_playwright

    committed = hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "preview.png"
    screenshot.unlink(missing_ok=True)
    relative = NOTEBOOK.relative_to(ROOT).as_posix()
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1500})
        page = browser.new_page()
        try:
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

            picker = page.locator(f"{STUDY_PICKER} select")
            picker.wait_for(timeout=60_000)
            options = picker.locator("option").all_text_contents()
            assert len(options) >= 2, options
            picker.select_option(index=1)  # not the default: really choose a study
            page.locator(f"button{PREVIEW_BUTTON}").click()
            table = page.locator(DIFF_TABLE)
            table.wait_for(timeout=RUN_TIMEOUT * 1000)
            # The widget at the top of the view: picker, button, identity, summary, the diff's start.
            page.locator(STUDY_PICKER).evaluate("e => e.scrollIntoView({block: 'start'})")

            assert page.locator(STUDY_PICKER).count() == 1 and page.locator(PREVIEW_BUTTON).count() == 1
            assert table.locator("tr").count() > 5
            page.screenshot(path=str(screenshot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "preview-failure.png"))
            raise
        finally:
            browser.close()
    elapsed = time.monotonic() - started
    assert screenshot.stat().st_size > 10_000
    assert hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest() == committed, "the repository's notebook was rewritten"
    record_property("screenshot", str(screenshot))
    with capsys.disabled():
        print(f"\n[browser] screenshot: {screenshot} (browser part {elapsed:.1f} s)")
