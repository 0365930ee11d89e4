"""03_anonymize in a real browser on a real constellation: the notebook opened on the intake
node, two studies chosen, "Queue": the panel's live table follows them on the real queue while
a worker runs (a site profile that keeps the patient's name, so the audit gate holds both) until
both are held, each with the gate's reason — no "Job states" click needed. JupyterLab, its
parameters and Chromium as in :mod:`tests.system.test_browser` (its ``lab`` fixture, given this
module's ``prepared``); the screenshot is ``test-artifacts/browser/anonymize-constellation.png``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anonlib.constellation import ConstellationInfo, ConstellationSettings
from anonlib.synthetic.batch import write_batch
from tests.orthanc_helpers import storescu, wait_stable
from tests.system import test_browser
from tests.system.test_browser import (
    ARTIFACTS,
    NOTEBOOKS,
    Lab,
    _no_error_shown,
    launch_chromium,
    open_and_run_all,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SEED = 37

lab = test_browser.lab  # JupyterLab, with this module's ``prepared``


@pytest.fixture(scope="module")
def prepared(constellation: tuple[ConstellationSettings, ConstellationInfo],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two studies stable in intake; Lab's kernels pointed at the constellation; 03's parameters."""
    settings, info = constellation
    tmp = tmp_path_factory.mktemp("browser-constellation")
    batch = write_batch(tmp / "batch", studies=2, patients=2, instances=2, seed=SEED)
    storescu(info, [s.folder for s in batch])
    wait_stable(info.intake)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("ANONLIB_PG_ADMIN", settings.pg_admin_url), ("ANONLIB_DB_PREFIX", settings.db_prefix)):
            patch.setenv(name, value)
        yield {"tmp": tmp, "home": settings.home, "settings": settings, "batch": batch, "parameters": {
            "03_anonymize": {"source": "intake", "db_url": info.db_url, "output": "", "originals": "",
                             "interactive": True}}}


def _worker(settings: ConstellationSettings, profile: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_PROFILE": str(profile),
           "ANONLIB_RETRY_BASE_SECONDS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "anonlib.cli", "worker", "--interval", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def test_queued_studies_are_followed_live_until_held(lab: Lab, prepared: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    keeps_names = tmp_path / "keeps-names.yaml"
    keeps_names.write_text("name: keeps-names\nactions:\n  PatientName: K\n")
    log = tmp_path / "worker.log"
    worker = _worker(prepared["settings"], keeps_names, log)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "anonymize-constellation.png"
    screenshot.unlink(missing_ok=True)
    relative = NOTEBOOKS["03_anonymize"].relative_to(Path(__file__).resolve().parents[2]).as_posix()
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, tmp_path / "chromium-profile", height=1200)
            page = browser.new_page()
            try:
                open_and_run_all(page, lab, relative)
                picker = page.locator(".anonlib-studies-picker select")
                picker.wait_for(timeout=60_000)
                options = picker.locator("option")
                assert options.count() == 2
                picker.select_option(value=[options.nth(n).get_attribute("value") or "" for n in range(2)])
                button = page.locator("button.anonlib-anonymize-button")
                assert button.inner_text().strip() == "Queue"
                button.click()
                live = page.locator(".anonlib-live")
                live.locator("table.anonlib-job-progress").wait_for(timeout=60_000)  # the live table, at once
                page.locator(".anonlib-progress-count", has_text="2 / 2 studies settled").wait_for(timeout=300_000)
                assert live.locator("tr.status-held").count() == 2, log.read_text(errors="replace")
                text = live.inner_text()
                assert "audit failed: " in text and "leak/A names (" in text  # the gate's reason, per study
                assert "2 held by the audit gate" in text and "anonlib jobs retry --held" in text
                for study in prepared["batch"]:
                    assert study.patient_id not in text and study.study_uid not in text
                _no_error_shown(page)
                page.locator(".anonlib-anonymize").first.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.screenshot(path=str(screenshot))
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "anonymize-constellation-failure.png"))
                raise
            finally:
                browser.close()
                lab.stop_kernels()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert screenshot.stat().st_size > 10_000
