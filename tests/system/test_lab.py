"""``anonlib lab`` as a user starts it: a subprocess with a fresh ANONLIB_HOME on a free port.
The working copy of the notebooks is there, the printed URL answers with its token (and not
without it), a kernel started through the REST API talks over ipc (its connection file says
so), and one SIGINT (Ctrl-C) stops Lab and shuts that kernel down."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anonlib.notebooks import notebooks_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0


@pytest.fixture
def jupyter_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """ANONLIB_HOME and Jupyter's folders in tmp (the runtime folder short: it holds the kernels'
    Unix sockets)."""
    with tempfile.TemporaryDirectory(prefix="lab-rt-") as runtime:
        yield {**os.environ, "ANONLIB_HOME": str(tmp_path / "home"), "JUPYTER_RUNTIME_DIR": runtime,
               "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
               "IPYTHONDIR": str(tmp_path / "ipython"), "PYTHONPATH": str(ROOT)}


def _wait_for_url(process: subprocess.Popen[str], lines: list[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"JupyterLab: (http://127\.0\.0\.1:\d+/lab\?token=\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no URL printed: {lines}")


def test_anonlib_lab_serves_the_working_copy_with_ipc_kernels_and_stops_on_ctrl_c(
        jupyter_env: dict[str, str], tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "anonlib.cli", "lab", "--no-browser"], cwd=tmp_path,
                               env=jupyter_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    lines: list[str] = []
    try:
        url = _wait_for_url(process, lines)
        base, token = url.split("/lab?token=")
        copy = Path(jupyter_env["ANONLIB_HOME"]) / "notebooks"
        assert {p.name for p in copy.glob("*.ipynb")} == {p.name for p in notebooks_dir().glob("*.ipynb")}
        assert any("04_audit.ipynb: created" in line for line in lines)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                status = httpx.get(f"{base}/api/status", params={"token": token}, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "Lab did not answer"
                time.sleep(0.3)
        assert status.status_code == 200 and "started" in status.json()
        assert httpx.get(f"{base}/api/status", timeout=5).status_code == 403  # no token, no answer
        contents = httpx.get(f"{base}/api/contents", params={"token": token}, timeout=5).json()
        assert "04_audit.ipynb" in {item["name"] for item in contents["content"]}  # Lab's root is the copy
        kernel = httpx.post(f"{base}/api/kernels", params={"token": token}, json={}, timeout=30).json()
        connection = Path(jupyter_env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel['id']}.json"
        assert json.loads(connection.read_text())["transport"] == "ipc"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert not connection.exists()  # the kernel was shut down with Lab
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
