"""Keep the constellation's Orthanc nodes running: ``python -m anonlib.constellation.nodewatch HOME NODE...``.

Orthanc 1.10.1 can be killed by what a sender sends (a data set nested 20,000 levels deep
overflows DCMTK's stack while it is received, before anonlib sees it; issue 11). ``anonlib
constellation up`` therefore records, for each node it starts, how it started it — command line,
configuration folder and environment, the ``LD_PRELOAD`` bind shim included — in
``HOME/<node>/launch.json`` (0600: it holds the node's credentials), and starts this node
supervisor, detached (``HOME/nodes/supervisor.pid``, its log ``supervisor.log``), and returns once
it has taken the running nodes (``supervisor.ready``, its PID). It watches
each node's PID (``HOME/<node>/orthanc.pid``) and starts a node that died again from its launch
file, after the workers' pause (1 s doubling to 30 s while it keeps dying young; none after
:data:`~anonlib.constellation.supervise.HEALTHY_AFTER` seconds of life). Each restart is counted
in ``HOME/<node>/restarts.json`` (count, UTC time, how the node ended), which ``constellation
status`` shows. SIGTERM stops the supervisor only, never the nodes: ``constellation down`` stops it
first, so that it cannot start again the nodes being stopped. Log lines name the node, its PID and
its exit status or signal only (a node started by ``up`` is not the supervisor's child: its exit
status is unknown; a node the supervisor started again is). It fails closed like ``up``: a launch
whose bind shim library is gone is not started (the loader would ignore it and Orthanc would
listen for DICOM on every address), and a node it started that listens on every address anyway
is killed and not started again.

Nothing is lost by a crash: what Orthanc acknowledged is in its storage and PostgreSQL index,
and intake's plugin reconciles when Orthanc starts (``ORTHANC_STARTED``), queueing the studies
whose events were missed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from anonlib.constellation.listen import EVERY_ADDRESS, listening_addresses
from anonlib.constellation.processes import (
    ProcessError,
    Watched,
    pid_alive,
    read_pid,
    start_child,
    start_process,
    stop_pidfile,
)
from anonlib.constellation.supervise import HEALTHY_AFTER, next_pause
from anonlib.errors import AnonlibError, ConfigError
from anonlib.settings import private_dir, write_private

__all__ = ["LaunchSpec", "NodeWatch", "Restarts", "bind_ports", "describe_exit", "launch_file", "main", "restarts",
           "ready_file", "stop_watch", "watch_alive", "watch_nodes", "watch_pidfile"]

log = logging.getLogger("anonlib.nodewatch")

READY_WITHIN = 60.0  # seconds `up` waits for a new supervisor to have taken the running nodes

Starter = Callable[["LaunchSpec"], "subprocess.Popen[bytes]"]


def launch_file(home: Path, node: str) -> Path:
    return home / node / "launch.json"


def restarts_file(home: Path, node: str) -> Path:
    return home / node / "restarts.json"


def _folder(home: Path) -> Path:
    return home / "nodes"


@dataclass(frozen=True)
class LaunchSpec:
    """How ``up`` started a node: what the supervisor starts again, unchanged."""

    name: str
    argv: list[str]
    env: dict[str, str]
    pidfile: str
    logfile: str

    def save(self, home: Path) -> Path:
        path = launch_file(home, self.name)
        write_private(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, home: Path, node: str) -> LaunchSpec:
        path = launch_file(home, node)
        try:
            raw = json.loads(path.read_text())
            spec = cls(name=str(raw["name"]), argv=[str(a) for a in raw["argv"]],
                       env={str(k): str(v) for k, v in raw["env"].items()},
                       pidfile=str(raw["pidfile"]), logfile=str(raw["logfile"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: no usable launch description ({type(exc).__name__})") from None
        if spec.name != node or not spec.argv:
            raise ConfigError(f"{path}: not the launch description of node {node!r}")
        return spec


def start_node(spec: LaunchSpec) -> subprocess.Popen[bytes]:
    """Start the node as ``up`` did (detached, umask 077, same output files). Fails closed
    (:class:`ConfigError`) when its bind shim is gone: without it the loader would go on silently
    and Orthanc would listen for DICOM on every address."""
    if spec.env.get("ANONLIB_BIND_PORTS"):
        preload = spec.env.get("LD_PRELOAD", "").split()
        missing = [lib for lib in preload if not Path(lib).is_file()] if preload else ["(none in LD_PRELOAD)"]
        if missing:
            raise ConfigError(f"its bind shim {missing[0]} is missing (it would listen on every address)")
    return start_child(spec.argv, pidfile=Path(spec.pidfile), logfile=Path(spec.logfile), env=spec.env)


def bind_ports(spec: LaunchSpec) -> list[int]:
    """The ports the bind shim limits to one address in this launch (none without the shim)."""
    raw = spec.env.get("ANONLIB_BIND_PORTS", "")
    return [int(p) for p in raw.split(",") if p.strip().isdigit()]


@dataclass(frozen=True)
class Restarts:
    """How often the supervisor started a node again, when last, and how the node had ended."""

    count: int
    last: str  # UTC, ISO 8601 to the second
    ended: str  # e.g. "signal SIGSEGV", "status 1", "status unknown"


def restarts(home: Path, node: str) -> Restarts | None:
    try:
        raw = json.loads(restarts_file(home, node).read_text())
        return Restarts(int(raw["count"]), str(raw["last"]), str(raw["ended"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe_exit(returncode: int | None) -> str:
    """``signal SIGSEGV`` / ``status 1`` / ``status unknown`` (not our child)."""
    if returncode is None:
        return "status unknown (not started by the supervisor)"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


@dataclass
class _Node(Watched):
    spec: LaunchSpec
    next_start: float | None = None  # set while the node is down
    ended: str = ""
    held: bool = False  # stopped for listening on every address: never started again


class NodeWatch:
    """Starts again every node that died (see the module docstring); ``start``, ``clock`` and
    ``wall`` are replaceable for tests."""

    def __init__(self, home: Path, names: list[str], *, poll: float = 0.5, start: Starter = start_node,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.home, self.poll, self.start, self.clock, self.wall = home, poll, start, clock, wall
        self.nodes: list[_Node] = []
        for name in names:
            try:
                self.nodes.append(_Node(LaunchSpec.load(home, name)))
            except ConfigError:  # started by an anonlib before the node supervisor
                log.error("%s not watched: no launch description (run `anonlib constellation down`, then `up`)", name)
        self.stopping = threading.Event()

    def adopt(self) -> None:
        """Take the running nodes as they are; a node already down is started at once."""
        now = self.clock()
        for node in self.nodes:
            pid = read_pid(Path(node.spec.pidfile))
            node.started = now
            if pid_alive(pid):
                node.adopted = pid
                log.info("%s watched, pid %s", node.spec.name, pid)
            else:
                log.warning("%s is not running", node.spec.name)
                node.ended, node.next_start = "not running", now

    def check(self) -> None:
        """One pass: notice the nodes that died; start again those whose pause is over."""
        now = self.clock()
        for node in self.nodes:
            if node.held:
                continue
            if node.next_start is None:
                self._notice(node, now)
                self._fail_closed(node, now)
            if node.next_start is not None and now >= node.next_start:
                self._restart(node, now)

    def _fail_closed(self, node: _Node, now: float) -> None:
        """A node this supervisor started whose DICOM port listens on every address although its
        launch limits it (the shim did not take) is killed and not started again, as `up` does."""
        if node.process is None or now - node.started > HEALTHY_AFTER:
            return
        wide = [port for port in bind_ports(node.spec) if any(a in EVERY_ADDRESS for a in listening_addresses(port))]
        if not wide:
            return
        with contextlib.suppress(ProcessLookupError):
            node.process.kill()
        node.process.wait()
        node.held, node.next_start = True, None
        Path(node.spec.pidfile).unlink(missing_ok=True)
        log.error("%s (pid %s) listened for DICOM on every address (port %d) despite its bind shim: stopped, "
                  "not started again (run `anonlib constellation up`)", node.spec.name, node.process.pid, wide[0])

    def _notice(self, node: _Node, now: float) -> None:
        if node.process is not None:
            code = node.process.poll()
            if code is None:
                return
            ended = describe_exit(code)
        elif pid_alive(node.adopted):
            return
        else:
            ended = describe_exit(None)
        node.pause = next_pause(node.pause, now - node.started)
        node.next_start, node.ended = now + node.pause, ended
        log.warning("%s (pid %s) died: %s; starting it again in %.0f s", node.spec.name, node.pid, ended, node.pause)
        node.process = node.adopted = None

    def _restart(self, node: _Node, now: float) -> None:
        name = node.spec.name
        try:
            node.process = self.start(node.spec)
        except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any start failure
            node.pause = next_pause(node.pause, 0.0)
            node.next_start = now + node.pause
            why = str(exc) if isinstance(exc, AnonlibError) else type(exc).__name__  # anonlib's own: PHI-free
            log.error("%s could not start (%s); trying again in %.0f s", name, why, node.pause)
            return
        node.started, node.next_start = now, None
        count = (previous.count if (previous := restarts(self.home, name)) else 0) + 1
        stamp = datetime.fromtimestamp(self.wall(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_private(restarts_file(self.home, name),
                       json.dumps(asdict(Restarts(count, stamp, node.ended.split(" (")[0]))) + "\n")
        log.info("%s started again, pid %d (restart %d)", name, node.process.pid, count)

    def run(self) -> None:
        self.adopt()
        private_dir(_folder(self.home))
        write_private(ready_file(self.home), f"{os.getpid()}\n")  # `up` waits for this
        while not self.stopping.wait(self.poll):
            self.check()
        log.info("node supervisor stopped (the nodes keep running)")


# -- the supervisor process, as `up` and `down` handle it -------------------------------------

def watch_pidfile(home: Path) -> Path:
    return _folder(home) / "supervisor.pid"


def ready_file(home: Path) -> Path:
    """Written by the supervisor (its PID) once it has taken the running nodes as they are."""
    return _folder(home) / "supervisor.ready"


def watch_alive(home: Path) -> bool:
    return pid_alive(read_pid(watch_pidfile(home)))


def watch_nodes(home: Path, names: list[str], env: Mapping[str, str] | None = None) -> int:
    """Start the node supervisor for ``names`` (stopping one already running); its PID, once it
    watches: a node that dies after this returns is seen dying (under load the supervisor's own
    start takes seconds, and a node that died before it looked was only "not running")."""
    stop_watch(home)
    folder = private_dir(private_dir(home) / "nodes")
    pid = start_process([sys.executable, "-m", "anonlib.constellation.nodewatch", str(home), *names],
                        pidfile=folder / "supervisor.pid", logfile=folder / "supervisor.log",
                        env={**(os.environ if env is None else env), "ANONLIB_HOME": str(home)})
    deadline = time.monotonic() + READY_WITHIN
    while read_pid(ready_file(home)) != pid:
        if not pid_alive(pid):
            raise ProcessError(f"the node supervisor ended as it started: see {folder / 'supervisor.log'}")
        if time.monotonic() > deadline:
            raise ProcessError(f"the node supervisor did not take the nodes within {READY_WITHIN:.0f} s: "
                               f"see {folder / 'supervisor.log'}")
        time.sleep(0.05)
    return pid


def stop_watch(home: Path) -> bool:
    """Stop the node supervisor (never the nodes); True if one was running."""
    ready_file(home).unlink(missing_ok=True)
    return stop_pidfile(_folder(home) / "supervisor.pid", grace=10)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m anonlib.constellation.nodewatch HOME NODE...", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    watch = NodeWatch(Path(args[0]), args[1:])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watch.stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        watch.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
