"""Issue 11: intake Orthanc killed by what a sender sends, and started again by the node
supervisor of ``constellation up``. A C-STORE of a data set nested 20,000 levels deep overflows
the stack of DCMTK in intake Orthanc 1.10.1 while it receives it, before anonlib's intake guard
can refuse it (segfault): anonlib cannot prevent that, so it makes intake come back. The test
crashes intake twice that way, with a study stored (acknowledged, not yet stable) just before the
first crash, and asserts: intake answers again within :data:`BACK_WITHIN` seconds, from the same
launch (ports, credentials, bind shim); the study stored before the crash is delivered exactly once
and whole (intake's plugin reconciles on ``ORTHANC_STARTED``: no StableStudy event will ever come
for it); a study sent after the restart is delivered; ``constellation status`` counts the restarts;
the supervisor's log names the node, its PIDs and the signal, and no identifier of the studies;
``constellation down`` stops the supervisor first, so nothing comes back after it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pynetdicom import AE, _config, build_context
from pynetdicom.dsutils import split_dataset

from anonlib.constellation import ConstellationInfo, ConstellationSettings, manage
from anonlib.constellation.processes import pid_alive, read_pid
from anonlib.synthetic.batch import write_batch
from anonlib.synthetic.malformed import nested_content
from tests.fixtures.figures import Figures, phi_hits
from tests.fixtures.orthanc import Factory
from tests.orthanc_helpers import count_instances, get, storescu
from tests.system.test_worker_faults import _assert_delivered_once, _exported

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACK_WITHIN = 30.0  # seconds from the crash until intake answers again
DEPTH = 20_000


def send_deep(info: ConstellationInfo, folder: Path, uid: str) -> None:
    """C-STORE the 20,000-level nesting into intake, bytes as they are (intake dies receiving it)."""
    path = folder / f"deep-{uid.rsplit('.', 1)[-1]}.dcm"
    path.write_bytes(nested_content(DEPTH, uid=uid))
    meta, _ = split_dataset(path)
    ae = AE(ae_title=info.scu_aet)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    ae.requested_contexts = [build_context(str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))]
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the bytes on file, never decode them
    try:
        assoc = ae.associate(info.intake.dicom_host, info.intake.dicom_port, ae_title=info.intake.aet)
        assert assoc.is_established, "intake refused the association"
        with contextlib.suppress(Exception):  # the association dies with intake
            assoc.send_c_store(path)
        with contextlib.suppress(Exception):
            assoc.abort()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked


def _intake_answers(info: ConstellationInfo) -> bool:
    try:
        return bool(get(info.intake, "/system")["Name"] == "intake")
    except Exception:  # noqa: BLE001 - down or starting
        return False


def _crash_and_come_back(settings: ConstellationSettings, info: ConstellationInfo, folder: Path,
                         uid: str) -> tuple[int, int, float]:
    """Crash intake with the deep nesting; (old PID, new PID, seconds until it answered again)."""
    pidfile = settings.home / "intake" / "orthanc.pid"
    old = read_pid(pidfile)
    assert old is not None and pid_alive(old)
    sent = time.monotonic()
    send_deep(info, folder, uid)
    deadline = sent + 15
    while pid_alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(old), "the 20,000-level nesting no longer kills intake: see test_malformed_cstore.py"
    while time.monotonic() < sent + BACK_WITHIN + 5:
        new = read_pid(pidfile)
        if new not in (None, old) and pid_alive(new) and _intake_answers(info):
            return old, new, time.monotonic() - sent  # type: ignore[return-value]
        time.sleep(0.2)
    raise AssertionError(f"intake not back {BACK_WITHIN:g} s after its crash")


def _cli(settings: ConstellationSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "ANONLIB_HOME": str(settings.home), "ANONLIB_NODE_RESTART": "1"})


def _logs(settings: ConstellationSettings) -> str:
    files = [settings.home / "nodes" / "supervisor.log", *sorted((settings.home / "workers").glob("*.log"))]
    return "\n".join(p.read_text(errors="replace") for p in files if p.exists())


def test_intake_crashed_by_a_deep_nesting_is_restarted_and_nothing_is_lost(
        constellation_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Figures) -> None:
    monkeypatch.setenv("ANONLIB_RETRY_BASE_SECONDS", "1")  # the workers inherit it
    settings, info = constellation_factory(ANONLIB_NODE_RESTART="1", ANONLIB_STABLE_AGE="5")
    info = manage.up(settings, workers=1)
    before, after = write_batch(tmp_path / "batch", studies=2, patients=2, instances=3, seed=61)
    launch = (settings.home / "intake" / "launch.json").read_text()
    assert "LD_PRELOAD" in launch and oct((settings.home / "intake" / "launch.json").stat().st_mode)[-3:] == "600"

    storescu(info, [before.folder])  # acknowledged, not stable yet: no StableStudy before the crash
    first_old, first_new, first_back = _crash_and_come_back(settings, info, tmp_path, "2.25.3001")
    environ = Path(f"/proc/{first_new}/environ").read_bytes()
    assert b"LD_PRELOAD=" in environ and b"ANONLIB_BIND_PORTS=" in environ  # the bind shim, as `up` set it
    again = ConstellationInfo.load(settings.info_path)
    assert again.intake.url == info.intake.url and again.intake.dicom_port == info.intake.dicom_port

    storescu(info, [after.folder])  # the sender carries on
    _assert_delivered_once(settings, info, [before, after])

    second_old, second_new, second_back = _crash_and_come_back(settings, info, tmp_path, "2.25.3002")
    assert second_old == first_new
    log = (settings.home / "nodes" / "supervisor.log").read_text()
    assert f"intake (pid {first_old}) died: status unknown (not started by the supervisor)" in log
    assert re.search(rf"intake \(pid {first_new}\) died: signal SIGSEGV; starting it again in \d+ s", log), log
    assert f"intake started again, pid {second_new} (restart 2)" in log
    # the factory's `up` and the test's each started a supervisor (the first stopped by the second)
    others = [line for line in log.splitlines() if " intake " not in line and not line.endswith(" (the nodes keep running)")]
    assert len(others) == 4 and all(re.search(r" (research|dest) watched, pid \d+$", line) for line in others), log

    deadline = time.monotonic() + 60
    while (shown := _cli(settings, "constellation", "status")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"intake +ready .* restarted 2 times, last at \d{4}-\d\d-\d\dT[\d:]+Z \(it had ended: signal SIGSEGV\)",
                     shown.stdout), shown.stdout
    assert "nodes-sup  running" in shown.stdout
    delivered = count_instances(info.research)
    assert delivered == before.instances + after.instances and _exported(info) == delivered  # still once
    texts = (_logs(settings), shown.stdout)
    assert phi_hits([v for s in (before, after) for v in (s.patient_id, s.study_uid)], *texts) == 0

    stopped = manage.down(settings)
    assert stopped[0] == "node supervisor"
    time.sleep(2)  # the supervisor would have started intake again within its pause by now
    assert not pid_alive(second_new) and not (settings.home / "intake" / "orthanc.pid").exists()
    sent = before.instances + after.instances
    figures.record("fault", "intake crashed by a 20,000-level nesting, restarted", instances=sent, delivered=delivered,
                   lost=max(0, sent - delivered), duplicated=max(0, delivered - sent), phi_in_logs=0, crashes=2,
                   back_after_s=round(max(first_back, second_back), 1))
