"""The constellation's processes, configuration and access rules, against real Orthanc + PostgreSQL."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file

from anonlib.constellation import manage
from anonlib.constellation.processes import pid_alive
from tests.fixtures.orthanc import Factory

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_is_idempotent_and_down_stops_everything(constellation_factory: Factory) -> None:
    settings, info = constellation_factory()
    assert set(info.nodes) == {"intake", "research", "dest"}
    pids = {name: node.pid for name, node in info.nodes.items()}
    assert all(pid_alive(pid) for pid in pids.values())
    again = manage.up(settings)
    assert {name: node.pid for name, node in again.nodes.items()} == pids  # nothing restarted
    saved = settings.info_path
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # it holds passwords
    for node in info.nodes.values():
        system = httpx.get(f"{node.url}/system", auth=(node.username, node.password)).json()
        assert system["Name"] == node.name and system["DatabaseBackendPlugin"]  # PostgreSQL index
    stopped = manage.down(settings)
    assert set(stopped) == {"intake", "research", "dest"}
    assert not any(pid_alive(pid) for pid in pids.values())


def test_rest_requires_credentials(constellation) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    for node in info.nodes.values():
        assert httpx.get(f"{node.url}/system").status_code == 401
        assert httpx.get(f"{node.url}/system", auth=(node.username, "wrong")).status_code == 401


def test_busy_default_ports_are_replaced_by_free_ones(constellation_factory: Factory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _, info = constellation_factory(ANONLIB_INTAKE_HTTP_PORT=str(port))
        assert info.intake.url != f"http://127.0.0.1:{port}"
        assert httpx.get(f"{info.intake.url}/system", auth=(info.intake.username, info.intake.password)).status_code == 200


def _storescu(info, aet: str, path: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(["storescu", "-aet", aet, "-aec", info.intake.aet, info.intake.dicom_host,
                           str(info.intake.dicom_port), str(path)], capture_output=True, text=True, env=env,
                          timeout=60)


def test_intake_accepts_c_store_only_from_declared_modalities(constellation) -> None:  # type: ignore[no-untyped-def]
    _, info = constellation
    path = Path(get_testdata_file("CT_small.dcm"))
    intake = info.intake
    auth = (intake.username, intake.password)
    _storescu(info, "STRANGER", path)  # association refused: the AET is not declared
    assert httpx.get(f"{intake.url}/instances", auth=auth).json() == []
    accepted = _storescu(info, info.scu_aet, path)
    assert accepted.returncode == 0, accepted.stderr
    assert len(httpx.get(f"{intake.url}/instances", auth=auth).json()) == 1


def test_a_port_taken_at_the_last_moment_is_replaced(constellation_factory: Factory) -> None:
    """Between choosing a free port and Orthanc binding it, another process may take it: the
    node is started again on other free ports."""
    from dataclasses import replace

    from anonlib.constellation.manage import _start_node

    settings, info = constellation_factory()
    spec = next(s for s in settings.nodes if s.name == "dest")
    manage.down(settings)
    with socket.socket() as thief:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        port = thief.getsockname()[1]
        node = replace(info.node("dest"), url=f"http://127.0.0.1:{port}", pid=None)
        nodes = {**info.nodes, "dest": node}
        started = _start_node(settings, spec, node, nodes, info.db_url)
        try:
            assert started.url != node.url and pid_alive(started.pid)
            assert httpx.get(f"{started.url}/system", auth=(started.username, started.password)).status_code == 200
        finally:
            from anonlib.constellation.processes import stop_pidfile

            stop_pidfile(settings.home / "dest" / "orthanc.pid")
