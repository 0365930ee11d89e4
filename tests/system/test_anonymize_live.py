"""The anonymize panel on a real constellation: "Queue" puts the chosen intake studies on the
job queue and the panel follows them live — it polls the real queue and the audit gate until
every study has settled. The worker runs a site profile that keeps the patient's name, so the
gate holds both studies: the live table says ``held`` with the gate's reason, and the panel
says how many are held and what to do; no identifying value is shown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from anonlib import workflows
from anonlib.synthetic.batch import write_batch
from anonlib.ui.anonymize_panel import AnonymizePanel
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import storescu, wait_stable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 31


def test_the_panel_follows_queued_studies_until_the_gate_holds_them(
        constellation_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, info = constellation_factory()
    batch = write_batch(tmp_path / "batch", studies=2, patients=2, instances=2, seed=SEED)
    storescu(info, [s.folder for s in batch])
    study_ids = sorted(wait_stable(info.intake))
    for name, value in (("ANONLIB_HOME", str(settings.home)), ("ANONLIB_PG_ADMIN", settings.pg_admin_url),
                        ("ANONLIB_DB_PREFIX", settings.db_prefix)):
        monkeypatch.setenv(name, value)
    keeps_names = tmp_path / "keeps-names.yaml"
    keeps_names.write_text("name: keeps-names\nactions:\n  PatientName: K\n")
    log = tmp_path / "worker.log"
    env = {**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_PROFILE": str(keeps_names),
           "ANONLIB_RETRY_BASE_SECONDS": "1"}
    with log.open("ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "anonlib.cli", "worker", "--interval", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        panel = AnonymizePanel(workflows.source("intake"), db_url=info.db_url, output="")
        panel.POLL_SECONDS = 1.0
        assert sorted(key for _label, key in panel.studies.options) == study_ids
        panel.studies.value = tuple(study_ids)
        panel.run().join(timeout=120)
        assert panel.poller is not None
        panel.poller.thread.join(timeout=300)  # it ends by itself once every study has settled
        assert not panel.poller.thread.is_alive(), log.read_text(errors="replace")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    live = panel.live.value
    assert panel.count.value == "2 / 2 studies settled" and not panel.button.disabled
    assert live.count('class="status-held"') == 2, live
    assert "audit failed: " in live and "leak/A names (" in live  # the gate's reason, categories and counts
    assert "2 held by the audit gate" in live and "anonlib jobs retry --held" in live
    shown = live + "".join(o.get("data", {}).get("text/html", "") for o in panel.out.outputs)
    assert "2 studies queued" in shown
    for study in batch:
        assert study.patient_id not in shown and study.study_uid not in shown
