"""Small helpers for tests that drive a real constellation: C-STORE with dcmtk, waiting for
stability, reading what a node holds."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from anonlib.constellation import ConstellationInfo, NodeInfo


def storescu(info: ConstellationInfo, paths: list[Path], *, aet: str | None = None) -> None:
    """C-STORE ``paths`` (files or folders) into intake as a declared modality (TCP_NODELAY on)."""
    intake = info.intake
    argv = ["storescu", "-aet", aet or info.scu_aet, "-aec", intake.aet, "+sd", "+r", "-R", "-xs",
            intake.dicom_host, str(intake.dicom_port), *map(str, paths)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TCP_NODELAY": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def get(node: NodeInfo, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{node.url}{path}", auth=(node.username, node.password), params=params, timeout=60)
    answer.raise_for_status()
    return answer.json() if "json" in answer.headers.get("content-type", "") else answer.content


def wait_stable(node: NodeInfo, timeout: float = 60.0) -> list[str]:
    """Wait until every study of ``node`` is stable; returns their IDs."""
    deadline = time.monotonic() + timeout
    while True:
        studies = get(node, "/studies", expand="")
        if studies and all(s["IsStable"] for s in studies):
            return [s["ID"] for s in studies]
        assert time.monotonic() < deadline, "studies did not become stable"
        time.sleep(0.5)


def count_instances(node: NodeInfo) -> int:
    return int(get(node, "/statistics")["CountInstances"])


def clear(node: NodeInfo) -> None:
    """Delete every patient of ``node`` (test isolation)."""
    for patient in get(node, "/patients"):
        httpx.delete(f"{node.url}/patients/{patient}", auth=(node.username, node.password), timeout=60)
