"""The DICOM listening address (issue 11, Deliver 1): ``ANONLIB_DICOM_LISTEN`` (default
127.0.0.1) and the LD_PRELOAD bind shim that applies it to Orthanc 1.10.1, which has no option
for it. The shim is built and loaded into a Python child here (no Orthanc); the real nodes are
checked in tests/integration/test_intake_lockdown.py."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from anonlib.constellation import ConstellationSettings
from anonlib.constellation.listen import build_shim, listening_addresses, parse_listen
from anonlib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(ROOT / "env", tmp_path_factory.mktemp("shim") / "libanonlib_bindshim.so")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_BIND = """
import socket, sys
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(family)
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
try:
    s.bind((sys.argv[2], int(sys.argv[3])))
except OSError as exc:
    print("error", exc.errno)
else:
    print("bound", s.getsockname()[0])
"""


def _bind(shim: Path, family: str, host: str, port: int, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANONLIB_BIND_")}
    done = subprocess.run([sys.executable, "-c", _BIND, family, host, str(port)], capture_output=True, text=True,
                          env={**clean, "LD_PRELOAD": str(shim), **env}, check=True, timeout=60)
    return done.stdout.strip()


def test_the_shim_moves_a_wildcard_bind_of_a_listed_port_only(shim: Path) -> None:
    listed, other = _free_port(), _free_port()
    env = {"ANONLIB_BIND_PORTS": f"1,{listed}", "ANONLIB_BIND_ADDRESS": "127.0.0.1"}
    assert _bind(shim, "4", "0.0.0.0", listed, **env) == "bound 127.0.0.1"
    assert _bind(shim, "4", "0.0.0.0", other, **env) == "bound 0.0.0.0"  # e.g. the REST port
    assert _bind(shim, "4", "0.0.0.0", 0, **env) == "bound 0.0.0.0"  # outgoing, ephemeral
    assert _bind(shim, "6", "::", listed, **env) == "bound ::ffff:127.0.0.1"  # IPv4 on an IPv6 socket
    assert _bind(shim, "6", "::", listed, ANONLIB_BIND_PORTS=str(listed), ANONLIB_BIND_ADDRESS="::1") == "bound ::1"
    assert _bind(shim, "4", "0.0.0.0", listed) == "bound 0.0.0.0"  # no ports listed: no change


def test_the_shim_fails_closed_without_a_usable_address(shim: Path) -> None:
    port = _free_port()
    for env in ({"ANONLIB_BIND_PORTS": str(port)},
                {"ANONLIB_BIND_PORTS": str(port), "ANONLIB_BIND_ADDRESS": "localhost"}):
        assert _bind(shim, "4", "0.0.0.0", port, **env) == "error 99"  # EADDRNOTAVAIL, never everywhere
        assert _bind(shim, "6", "::", port, **env) == "error 99"


def test_the_build_is_idempotent(shim: Path) -> None:
    before = shim.stat().st_mtime_ns
    assert build_shim(ROOT / "env", shim) == shim
    assert shim.stat().st_mtime_ns == before


def test_a_shim_that_cannot_be_built_is_one_clear_line(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    (env_dir / "bindshim").mkdir(parents=True)
    script = env_dir / "bindshim" / "build"
    script.write_text("#!/bin/sh\necho 'env/bindshim/build: no C compiler (gcc); install gcc' >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(ConfigError) as caught:
        build_shim(env_dir, tmp_path / "shim.so")
    message = str(caught.value)
    assert "\n" not in message
    assert "could not be built (env/bindshim/build: no C compiler (gcc); install gcc)" in message
    assert "ANONLIB_DICOM_LISTEN=0.0.0.0" in message


def test_the_setting() -> None:
    assert parse_listen("") == "127.0.0.1"
    assert parse_listen("10.0.0.5") == "10.0.0.5"
    assert parse_listen("0.0.0.0") is None and parse_listen("::") is None
    with pytest.raises(ConfigError, match="ANONLIB_DICOM_LISTEN must be an IP address"):
        parse_listen("intake.example.org")
    settings = ConstellationSettings.from_env({"ANONLIB_HOME": "/nonexistent/h", "USER": "u"})
    assert settings.dicom_listen == "127.0.0.1" and settings.dicom_host == "127.0.0.1"
    assert settings.shim_path == ROOT / "build" / "bindshim" / "libanonlib_bindshim.so"
    every = ConstellationSettings.from_env({"ANONLIB_HOME": "/nonexistent/h", "USER": "u",
                                            "ANONLIB_DICOM_LISTEN": "0.0.0.0"})
    assert every.dicom_listen is None and every.dicom_host == "127.0.0.1"


def _node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, str]:
    from anonlib.constellation import manage

    monkeypatch.delenv("LD_PRELOAD", raising=False)
    settings = ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "USER": "u", **env})
    nodes = manage._plan_nodes(settings, None)
    intake = nodes["intake"]
    spec = next(s for s in settings.nodes if s.name == "intake")
    return manage._node_env(settings, spec, intake, nodes, "postgresql://x/y") | {"DICOM": str(intake.dicom_port),
                                                                                "HOST": intake.dicom_host}


def test_orthanc_gets_the_shim_for_its_dicom_port_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = _node_env(monkeypatch, tmp_path)
    assert env["LD_PRELOAD"].endswith("build/bindshim/libanonlib_bindshim.so")
    assert env["ANONLIB_BIND_ADDRESS"] == "127.0.0.1" and env["HOST"] == "127.0.0.1"
    assert env["ANONLIB_BIND_PORTS"] == env["DICOM"] != env["ANONLIB_HTTP_PORT"]
    there = _node_env(monkeypatch, tmp_path, ANONLIB_DICOM_LISTEN="10.1.2.3")
    assert there["ANONLIB_BIND_ADDRESS"] == "10.1.2.3" and there["HOST"] == "10.1.2.3"  # how others reach it
    every = _node_env(monkeypatch, tmp_path, ANONLIB_DICOM_LISTEN="0.0.0.0")
    assert not {"LD_PRELOAD", "ANONLIB_BIND_ADDRESS", "ANONLIB_BIND_PORTS"} & set(every)


class _Started(Exception):
    pass


def test_up_fails_closed_before_starting_anything_without_the_shim(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import anonlib.constellation.manage as manage
    from anonlib.cli import main

    def started(_settings: object) -> None:
        raise _Started

    monkeypatch.setattr(manage, "ensure_packages", started)
    env_dir = tmp_path / "env"
    (env_dir / "bindshim").mkdir(parents=True)
    (env_dir / "bindshim" / "build").write_text("#!/bin/sh\necho 'no C compiler' >&2\nexit 1\n")
    (env_dir / "bindshim" / "build").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("ANONLIB_HOME", str(home))
    monkeypatch.setenv("ANONLIB_ENV_DIR", str(env_dir))
    monkeypatch.delenv("ANONLIB_DICOM_LISTEN", raising=False)
    assert main(["constellation", "up"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bind shim" in err and "could not be built (no C compiler)" in err
    monkeypatch.setenv("ANONLIB_DICOM_LISTEN", "0.0.0.0")  # the operator chose every address: no shim
    with pytest.raises(_Started):
        main(["constellation", "up"])


def test_listening_addresses_from_proc(tmp_path: Path) -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(head
                                  + "   0: 0100007F:1092 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n"
                                  + "   1: 00000000:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 2\n"
                                  + "   2: 0100007F:1092 0100007F:D431 01 00000000:00000000 00:00000000 00000000 0 0 3\n")
    (tmp_path / "tcp6").write_text(head
                                   + "   0: 0000000000000000FFFF00000100007F:1092 00000000000000000000000000000000:0000 0A "
                                     "00000000:00000000 00:00000000 00000000 0 0 4\n"
                                   + "   1: 00000000000000000000000001000000:1093 00000000000000000000000000000000:0000 0A "
                                     "00000000:00000000 00:00000000 00000000 0 0 5\n")
    assert listening_addresses(4242, tmp_path) == ["127.0.0.1", "::ffff:127.0.0.1"]
    assert listening_addresses(8082, tmp_path) == ["0.0.0.0"]
    assert listening_addresses(4243, tmp_path) == ["::1"]
    with socket.socket() as s:  # and the real /proc/net of this machine
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listening_addresses(s.getsockname()[1]) == ["127.0.0.1"]


def test_compose_orthanc_gets_no_shim() -> None:
    """Compose runs Orthanc from the image's entrypoint on its own network (ports published on
    127.0.0.1 by compose): no LD_PRELOAD, no shim, nothing of ANONLIB_DICOM_LISTEN."""
    files = [ROOT / "docker-compose.yml", *(p for p in (ROOT / "env" / "docker").rglob("*") if p.is_file())]
    for path in files:
        text = path.read_text(errors="replace")
        assert "LD_PRELOAD" not in text and "bindshim" not in text and "ANONLIB_BIND_" not in text, path
    assert stat.S_IMODE((ROOT / "env" / "bindshim" / "build").stat().st_mode) & 0o100


def test_a_running_node_on_every_address_is_restarted_by_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A node an older anonlib started (DICOM on 0.0.0.0) is not kept by the next `up`: it is
    stopped and planned anew (then started with the shim); a node on 127.0.0.1 is kept."""
    import anonlib.constellation.manage as manage
    from anonlib.constellation import ConstellationInfo

    settings = ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "USER": "u"})
    old = ConstellationInfo(home=str(tmp_path), nodes=manage._plan_nodes(settings, None), export_dir="", db_url="",
                            destinations=[], scu_aet="ANONLIB_SCU")
    old = manage.replace(old, nodes={n: manage.replace(i, pid=1000 + k) for k, (n, i) in enumerate(old.nodes.items())})
    wide_port = old.nodes["intake"].dicom_port
    stopped: list[str] = []
    monkeypatch.setattr(manage, "pid_alive", lambda pid: pid is not None)
    monkeypatch.setattr(manage, "_ready", lambda node, timeout=2.0: True)
    monkeypatch.setattr(manage, "listening_addresses", lambda port: ["0.0.0.0"] if port == wide_port else ["127.0.0.1"])
    monkeypatch.setattr(manage, "stop_pidfile", lambda pidfile, grace=20.0: stopped.append(pidfile.parent.name) or True)
    monkeypatch.setattr(manage, "free_port", lambda preferred, taken: preferred)
    nodes = manage._plan_nodes(settings, old)
    assert stopped == ["intake"]
    assert nodes["intake"].pid is None and nodes["research"].pid == old.nodes["research"].pid
    assert nodes["intake"].password == old.nodes["intake"].password  # same node, same credentials
