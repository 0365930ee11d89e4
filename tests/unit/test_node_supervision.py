"""The node supervisor (issue 11): a node that died is started again from the launch description
`up` wrote, unchanged, after the workers' doubling pause; its restarts are counted for
``constellation status``; `down` stops the supervisor before the nodes. Fakes stand in for
Orthanc (a sleeping Python process, or a fake process object and a fake clock)."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anonlib.constellation import nodewatch
from anonlib.constellation.listen import SHIM_NAME, build_shim
from anonlib.constellation.nodewatch import LaunchSpec, NodeWatch, describe_exit, restarts
from anonlib.constellation.processes import ProcessError, pid_alive, read_pid
from anonlib.errors import ConfigError

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _spec(home: Path, name: str = "intake", argv: list[str] | None = None, **env: str) -> LaunchSpec:
    (home / name).mkdir(parents=True, exist_ok=True)
    spec = LaunchSpec(name, argv or SLEEPER, {"PATH": os.environ.get("PATH", ""), "ANONLIB_NODE_NAME": name, **env},
                      str(home / name / "orthanc.pid"), str(home / name / "orthanc.stdout"))
    spec.save(home)
    return spec


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_launch_description_is_private_and_read_back_exactly(tmp_path: Path) -> None:
    spec = _spec(tmp_path, LD_PRELOAD="/x/anonlib_bindshim.so", ANONLIB_BIND_PORTS="4242",
                 ANONLIB_ORTHANC_PASSWORD="secret")
    path = nodewatch.launch_file(tmp_path, "intake")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LaunchSpec.load(tmp_path, "intake") == spec
    (tmp_path / "research").mkdir()
    nodewatch.launch_file(tmp_path, "research").write_text(path.read_text())  # another node's
    with pytest.raises(ConfigError, match="not the launch description of node 'research'"):
        LaunchSpec.load(tmp_path, "research")
    with pytest.raises(ConfigError, match="no usable launch description"):
        LaunchSpec.load(tmp_path, "dest")


def test_exits_are_described_by_status_or_signal_name() -> None:
    assert describe_exit(-11) == "signal SIGSEGV"
    assert describe_exit(-9) == "signal SIGKILL"
    assert describe_exit(1) == "status 1"
    assert describe_exit(None).startswith("status unknown")


def test_a_dead_node_is_started_again_with_the_same_launch_after_a_doubling_pause(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec(tmp_path, LD_PRELOAD="/x/anonlib_bindshim.so")
    other = _spec(tmp_path, "research")
    Path(spec.pidfile).write_text(f"{_dead_pid()}\n")  # intake, started by `up`, has died
    Path(other.pidfile).write_text(f"{os.getpid()}\n")  # research runs
    started: list[LaunchSpec] = []
    processes: list[FakeProcess] = []

    def start(launch: LaunchSpec) -> FakeProcess:
        started.append(launch)
        processes.append(FakeProcess(50_000 + len(processes)))
        return processes[-1]

    clock, wall = Clock(), Clock()
    wall.now = 1_796_000_000.0
    watch = NodeWatch(tmp_path, ["intake", "research"], start=start, clock=clock, wall=lambda: wall.now)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, "anonlib.nodewatch")
    watch.adopt()
    watch.check()  # intake was down already: started at once
    assert started == [spec] and restarts(tmp_path, "intake") == nodewatch.Restarts(1, "2026-11-30T00:53:20Z", "not running")
    assert restarts(tmp_path, "research") is None and watch.nodes[1].adopted == os.getpid()

    processes[0].returncode = -11  # a segfault 5 s later: restarted after 1 s, then 2 s, 4 s ...
    pauses = []
    for crash in range(5):
        clock.now += 5
        watch.check()
        node = watch.nodes[0]
        pauses.append(node.pause)
        assert len(started) == 1 + crash  # not before its pause
        clock.now += node.pause
        watch.check()
        assert len(started) == 2 + crash
        processes[-1].returncode = -11
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(s == spec for s in started)  # the same command line, configuration and environment
    assert restarts(tmp_path, "intake").count == 6  # type: ignore[union-attr]
    assert restarts(tmp_path, "intake").ended == "signal SIGSEGV"  # type: ignore[union-attr]
    clock.now += 61  # a healthy life: the next start is immediate
    watch.check()
    assert watch.nodes[0].pause == 0.0 and len(started) == 7
    text = caplog.text
    assert f"intake (pid {processes[0].pid}) died: signal SIGSEGV; starting it again in 1 s" in text
    assert f"intake started again, pid {processes[1].pid} (restart 2)" in text
    assert "research" not in text.replace("research watched", "")  # research untouched
    assert stat.S_IMODE(nodewatch.restarts_file(tmp_path, "intake").stat().st_mode) == 0o600


def test_a_failed_start_is_tried_again_later_and_the_supervisor_lives(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec(tmp_path)
    Path(spec.pidfile).write_text(f"{_dead_pid()}\n")
    attempts: list[float] = []
    clock = Clock()

    def start(launch: LaunchSpec) -> FakeProcess:
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise OSError(2, "No such file")
        return FakeProcess(4242)

    watch = NodeWatch(tmp_path, ["intake", "dest"], start=start, clock=clock)  # type: ignore[arg-type]
    assert [n.spec.name for n in watch.nodes] == ["intake"]  # dest: no launch description (an older `up`)
    assert "dest not watched: no launch description" in caplog.text
    watch.adopt()
    for _ in range(40):
        watch.check()
        clock.now += 0.5
    assert attempts == [1000.0, 1001.0, 1003.0]  # 1 s, then 2 s between failed starts
    assert watch.nodes[0].pid == 4242 and restarts(tmp_path, "intake").count == 1  # type: ignore[union-attr]
    assert "intake could not start (FileNotFoundError); trying again in 1 s" in caplog.text


def _wait(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_detached_supervisor_restarts_a_killed_node_and_stops_without_it(tmp_path: Path) -> None:
    """The real supervisor process, a sleeping Python process as the node: SIGKILLed, it is
    started again with the recorded environment and umask 077; stopping the supervisor leaves
    the node running, and a node that dies after that stays dead."""
    home = tmp_path
    shim = build_shim(Path(__file__).resolve().parents[2] / "env", tmp_path / "shim" / SHIM_NAME)
    spec = _spec(home, LD_PRELOAD=str(shim), ANONLIB_BIND_PORTS="4242", ANONLIB_BIND_ADDRESS="127.0.0.1")
    first = subprocess.Popen(spec.argv, env=spec.env, start_new_session=True)
    Path(spec.pidfile).write_text(f"{first.pid}\n")
    pid = nodewatch.watch_nodes(home, ["intake"])
    try:
        assert nodewatch.watch_alive(home) and read_pid(nodewatch.watch_pidfile(home)) == pid
        assert read_pid(nodewatch.ready_file(home)) == pid  # watch_nodes returned once it had adopted the node
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert _wait(lambda: (p := read_pid(Path(spec.pidfile))) != first.pid and pid_alive(p))
        second = read_pid(Path(spec.pidfile))
        assert second is not None
        assert _environ(second) == spec.env
        umask = [line for line in Path(f"/proc/{second}/status").read_text().splitlines() if line.startswith("Umask")]
        assert umask == ["Umask:\t0077"]
        os.kill(second, signal.SIGKILL)  # its own child now: the signal is known
        assert _wait(lambda: (p := read_pid(Path(spec.pidfile))) not in (first.pid, second) and pid_alive(p))
        third = read_pid(Path(spec.pidfile))
        log = (home / "nodes" / "supervisor.log").read_text()
        assert f"intake (pid {first.pid}) died: status unknown (not started by the supervisor)" in log
        assert f"intake (pid {second}) died: signal SIGKILL; starting it again in 2 s" in log  # it died young twice
        assert _wait(lambda: getattr(restarts(home, "intake"), "count", 0) == 2, 5)  # written right after the start
    finally:
        assert nodewatch.stop_watch(home)
    assert not nodewatch.watch_alive(home)
    assert pid_alive(third)  # stopping the supervisor does not stop the nodes
    os.kill(third, signal.SIGKILL)  # type: ignore[arg-type]
    time.sleep(1.5)
    assert read_pid(Path(spec.pidfile)) == third and not pid_alive(third)  # nobody starts it again


def test_watch_nodes_fails_loudly_when_the_supervisor_ends_as_it_starts(tmp_path: Path) -> None:
    """A supervisor that ends before it took the nodes (here: given no node, it prints its usage
    and exits 2) is reported, naming its log, instead of `up` returning as if the nodes were watched."""
    with pytest.raises(ProcessError, match=r"node supervisor ended as it started: see .*supervisor\.log"):
        nodewatch.watch_nodes(tmp_path, [])
    assert not nodewatch.watch_alive(tmp_path)
    assert "usage" in (tmp_path / "nodes" / "supervisor.log").read_text()


def test_stopping_the_supervisor_removes_its_ready_mark(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    first = subprocess.Popen(spec.argv, env=spec.env, start_new_session=True)
    Path(spec.pidfile).write_text(f"{first.pid}\n")
    try:
        pid = nodewatch.watch_nodes(tmp_path, ["intake"])
        assert read_pid(nodewatch.ready_file(tmp_path)) == pid
        assert nodewatch.stop_watch(tmp_path)
        assert not nodewatch.ready_file(tmp_path).exists()
    finally:
        first.kill()
        first.wait()


def test_down_stops_the_node_supervisor_before_the_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anonlib.constellation import ConstellationInfo, ConstellationSettings, manage

    settings = ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "USER": "u"})
    nodes = manage._plan_nodes(settings, None)
    ConstellationInfo(home=str(tmp_path), nodes=nodes, export_dir="", db_url="").save(settings.info_path)
    order: list[str] = []
    monkeypatch.setattr(manage, "stop_watch", lambda home: order.append("node supervisor") or True)
    monkeypatch.setattr(manage, "stop_workers", lambda home: order.append("workers") or [])
    monkeypatch.setattr(manage, "stop_pidfile", lambda pidfile, grace=20.0: order.append(pidfile.parent.name) or True)
    assert manage.down(settings) == ["node supervisor", "intake", "research"]
    assert order == ["node supervisor", "workers", "intake", "research"]


def test_status_and_up_see_a_restarted_node_by_its_pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`constellation.json` still names the PID `up` started; the node supervisor's new PID is in
    the PID file: `up` keeps that node (no second intake on other ports) and status shows it,
    with its restarts."""
    from anonlib.cli import main
    from anonlib.constellation import ConstellationInfo, ConstellationSettings, manage

    settings = ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "USER": "u"})
    nodes = {n: manage.replace(i, pid=_dead_pid()) for n, i in manage._plan_nodes(settings, None).items()}
    info = ConstellationInfo(home=str(tmp_path), nodes=nodes, export_dir="", db_url="postgresql://x/y")
    info.save(settings.info_path)
    (tmp_path / "intake").mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    (tmp_path / "intake" / "orthanc.pid").write_text(f"{os.getpid()}\n")
    nodewatch.restarts_file(tmp_path, "intake").write_text(
        json.dumps({"count": 2, "last": "2026-12-07T04:01:02Z", "ended": "signal SIGSEGV"}))
    current = manage._current_pids(settings, info)
    assert current.nodes["intake"].pid == os.getpid() and current.nodes["research"].pid == nodes["research"].pid

    monkeypatch.setattr(manage, "_ready", lambda node, timeout=2.0: node.name == "intake")
    monkeypatch.setattr(manage, "worker_status", lambda *a: [])
    monkeypatch.setattr("anonlib.cli._print_held", lambda url: None)
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))
    monkeypatch.setenv("USER", "u")
    assert main(["constellation", "status"]) == 1  # research is down
    out = capsys.readouterr().out
    assert "restarted 2 times, last at 2026-12-07T04:01:02Z (it had ended: signal SIGSEGV)" in out
    assert "nodes-sup  off" in out
    monkeypatch.setattr(manage, "_ready", lambda node, timeout=2.0: True)
    assert main(["constellation", "status"]) == 0
    capsys.readouterr()
    nodewatch.watch_pidfile(tmp_path).parent.mkdir()
    nodewatch.watch_pidfile(tmp_path).write_text(f"{_dead_pid()}\n")  # the node supervisor died
    assert main(["constellation", "status"]) == 1
    assert "nodes-sup  stopped" in capsys.readouterr().out


def test_a_node_without_its_bind_shim_is_not_started(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fail closed: the loader ignores a missing LD_PRELOAD library, and Orthanc would listen for
    DICOM on every address; the supervisor does not start it (and tries again later)."""
    shim = tmp_path / "libanonlib_bindshim.so"
    spec = _spec(tmp_path, LD_PRELOAD=str(shim), ANONLIB_BIND_ADDRESS="127.0.0.1", ANONLIB_BIND_PORTS="4242")
    with pytest.raises(ConfigError, match=f"its bind shim {shim} is missing"):
        nodewatch.start_node(spec)
    bare = _spec(tmp_path, "research", ANONLIB_BIND_ADDRESS="127.0.0.1", ANONLIB_BIND_PORTS="4243")
    with pytest.raises(ConfigError, match="none in LD_PRELOAD"):
        nodewatch.start_node(bare)
    Path(spec.pidfile).write_text(f"{_dead_pid()}\n")
    watch = NodeWatch(tmp_path, ["intake"], clock=Clock())
    watch.adopt()
    watch.check()
    assert watch.nodes[0].pid is None and watch.nodes[0].next_start == 1001.0
    assert f"intake could not start (its bind shim {shim} is missing (it would listen on every address)); " \
           "trying again in 1 s" in caplog.text
    shim.write_bytes(b"")  # back (an empty library: the loader accepts it)
    watch.clock.now += 1  # type: ignore[attr-defined]
    watch.check()
    process = watch.nodes[0].process
    assert process is not None
    process.kill()
    process.wait()


def test_a_restarted_node_listening_on_every_address_is_stopped_for_good(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec(tmp_path, ANONLIB_BIND_ADDRESS="127.0.0.1", ANONLIB_BIND_PORTS="4242")
    Path(spec.pidfile).write_text(f"{_dead_pid()}\n")
    real = subprocess.Popen(SLEEPER)
    wide = {4242: ["127.0.0.1"]}
    monkeypatch.setattr(nodewatch, "listening_addresses", lambda port: wide.get(port, []))
    clock = Clock()
    watch = NodeWatch(tmp_path, ["intake"], start=lambda launch: real, clock=clock)
    watch.adopt()
    watch.check()
    assert watch.nodes[0].process is real and pid_alive(real.pid)
    wide[4242] = ["0.0.0.0"]  # the shim did not take
    clock.now += 1
    watch.check()
    assert real.returncode == -signal.SIGKILL and watch.nodes[0].held
    assert not Path(spec.pidfile).exists()
    clock.now += 100
    watch.check()
    assert watch.nodes[0].process is real  # never started again
    assert "listened for DICOM on every address (port 4242) despite its bind shim: stopped" in caplog.text


def test_an_up_that_fails_starts_the_node_supervisor_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` stops the node supervisor while it starts nodes; when it fails on the way (a node
    that will not start) the nodes it watched are watched again at once, not left unwatched."""
    from anonlib.constellation import ConstellationSettings, manage
    from anonlib.constellation.processes import ProcessError

    settings = ConstellationSettings.from_env({"ANONLIB_HOME": str(tmp_path), "USER": "u",
                                               "ANONLIB_DICOM_LISTEN": "0.0.0.0"})
    watched: list[list[str]] = []
    for name in ("_check_permissions", "ensure_packages"):
        monkeypatch.setattr(manage, name, lambda *a, **k: None)
    monkeypatch.setattr(manage, "ensure_postgres", lambda url: False)
    monkeypatch.setattr(manage, "ensure_databases", lambda url, names: None)
    monkeypatch.setattr(manage, "stop_watch", lambda home: True)
    monkeypatch.setattr(manage, "watch_nodes", lambda home, names: watched.append(names))

    def fail(*a: object, **k: object) -> None:
        raise ProcessError("intake did not start")

    monkeypatch.setattr(manage, "_start_node", fail)
    with pytest.raises(ProcessError):
        manage.up(settings)
    assert [sorted(names) for names in watched] == [["intake", "research"]]

    watched.clear()  # nothing was watched before: nothing is started on failure either
    monkeypatch.setattr(manage, "stop_watch", lambda home: False)
    with pytest.raises(ProcessError):
        manage.up(settings)
    assert watched == []
