"""``anonlib constellation up | status | down``: the whole constellation on this machine.

``up`` is idempotent: it installs the Debian packages when missing, starts PostgreSQL if it is
down, creates the databases, starts every Orthanc node that is not already running (reusing its
ports and credentials), prepares the lookup store and the job queue, starts the workers, and
writes ``$ANONLIB_HOME/constellation.json``. ``down`` stops everything ``up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from anonlib.constellation.info import ConstellationInfo, NodeInfo
from anonlib.constellation.listen import EVERY_ADDRESS, build_shim, listening_addresses, shim_env
from anonlib.constellation.nodewatch import (
    LaunchSpec,
    Restarts,
    restarts,
    stop_watch,
    watch_alive,
    watch_nodes,
    watch_pidfile,
)
from anonlib.constellation.processes import (
    ProcessError,
    assemble_config,
    free_port,
    orthanc_problem,
    pid_alive,
    port_free,
    read_pid,
    start_process,
    stop_pidfile,
    wait_orthanc_ready,
)
from anonlib.constellation.senders import modality, sender_modalities
from anonlib.constellation.settings import ConstellationSettings, NodeSpec
from anonlib.constellation.workers import WorkerStatus, stop_workers, supervise, worker_status
from anonlib.errors import ConfigError
from anonlib.jobs.heartbeat import HeartbeatTiming
from anonlib.permissions import Exposed, exposed, tighten
from anonlib.settings import private_dir
from anonlib.store.pgsession import libpq_params

__all__ = ["up", "down", "status", "node_watch_state", "NodeStatus", "ensure_packages", "ensure_postgres", "exposed_paths"]

PACKAGES = ("orthanc", "orthanc-python", "orthanc-postgresql", "dcmtk")
ORDER = {"destination": 0, "research": 1, "intake": 2}


@dataclass(frozen=True)
class NodeStatus:
    name: str
    pid: int | None
    alive: bool
    ready: bool
    url: str
    restarts: Restarts | None = None  # started again by the node supervisor (how often, when last)


# -- prerequisites ----------------------------------------------------------------------------

def ensure_packages(settings: ConstellationSettings) -> None:
    """Install Orthanc, its plugins and dcmtk from Debian's packages when they are missing."""
    plugins = Path(settings.plugins_dir)
    needed = [Path(settings.orthanc_binary), plugins / "libOrthancPython.so",
              plugins / "libOrthancPostgreSQLIndex.so"]
    if all(p.exists() for p in needed) and shutil.which("storescu"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ProcessError(f"could not install {' '.join(PACKAGES)} ({exc})") from exc


def ensure_postgres(admin_url: str) -> bool:
    """Make sure PostgreSQL answers; start the local Debian cluster if not. True if started."""
    if _pg_answers(admin_url):
        return False
    if not _pg_ctlcluster("start"):
        raise ProcessError("PostgreSQL is not reachable and no local cluster is installed")
    for _ in range(60):
        if _pg_answers(admin_url):
            return True
        import time

        time.sleep(0.5)
    raise ProcessError("PostgreSQL did not start")


def _pg_ctlcluster(action: str) -> bool:
    """``pg_ctlcluster <newest version> main <action>`` (errors ignored); False when no local
    Debian cluster is installed."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return False
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def _engine(url: str):  # type: ignore[no-untyped-def]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return create_engine(parsed, isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                         connect_args=libpq_params(parsed.query))


def _pg_answers(url: str) -> bool:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    finally:
        engine.dispose()


def ensure_databases(admin_url: str, names: list[str]) -> None:
    """Create the databases that do not exist yet (never drops anything)."""
    engine = _engine(admin_url)
    try:
        with engine.connect() as conn:
            existing = {row[0] for row in conn.execute(text("select datname from pg_database"))}
            for name in names:
                if name not in existing:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def drop_databases(admin_url: str, prefix: str) -> list[str]:
    """Drop the databases named ``prefix`` or ``prefix_*`` (forcibly: open sessions are ended)
    and return their names. For tests and benchmarks, whose every run owns a random prefix;
    nothing in the product calls it."""
    if not prefix:
        raise ValueError("a database prefix is required")
    engine = _engine(admin_url)
    try:
        with engine.connect() as conn:
            names = [row[0] for row in conn.execute(text("select datname from pg_database"))
                     if row[0] == prefix or row[0].startswith(prefix + "_")]
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return names
    finally:
        engine.dispose()


def database_url(admin_url: str, database: str) -> str:
    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


# -- nodes ------------------------------------------------------------------------------------

def _node_env(settings: ConstellationSettings, spec: NodeSpec, node: NodeInfo,
              nodes: dict[str, NodeInfo], info_db_url: str) -> dict[str, str]:
    admin = make_url(settings.pg_admin_url)
    destinations = [n for n in nodes.values() if n.role == "destination"]
    env = {
        **os.environ,
        "TCP_NODELAY": "1",
        "ANONLIB_NODE_NAME": node.name,
        "ANONLIB_HTTP_PORT": str(_http_port(node)),
        "ANONLIB_DICOM_PORT": str(node.dicom_port),
        "ANONLIB_AET": node.aet,
        "ANONLIB_ORTHANC_USER": node.username,
        "ANONLIB_ORTHANC_PASSWORD": node.password,
        "ANONLIB_ORTHANC_READER_USER": node.reader_username,
        "ANONLIB_ORTHANC_READER_PASSWORD": node.reader_password,
        "ANONLIB_ORTHANC_STORAGE": str(settings.home / node.name / "storage"),
        "ANONLIB_PG_HOST": admin.host or "127.0.0.1",
        "ANONLIB_PG_PORT": str(admin.port or 5432),
        "ANONLIB_PG_USER": admin.username or "postgres",
        "ANONLIB_PG_PASSWORD": admin.password or "",
        "ANONLIB_ORTHANC_DB": node.database,
        "ANONLIB_STABLE_AGE": str(settings.stable_age),
        "ANONLIB_JOBS_HISTORY": str(settings.jobs_history),
        "ANONLIB_INTAKE_SCP_TIMEOUT": str(settings.intake_scp_timeout),  # read by intake.json only
        "ANONLIB_ORTHANC_PLUGINS": settings.plugins_dir,
        # each allowed sender its own modality (AET + host), checked by Orthanc at association
        "ANONLIB_INTAKE_MODALITIES": json.dumps(sender_modalities(settings.allowed_senders)),
        "ANONLIB_LUA_DIR": str(settings.env_dir / "orthanc" / "lua"),
        "ANONLIB_REMOTE_ACCESS": "true" if settings.remote_access else "false",
        "ANONLIB_RESEARCH_MODALITIES": json.dumps(
            {d.name: modality(d.aet, d.dicom_host, d.dicom_port, store=False) for d in destinations}),
        "ANONLIB_RESEARCH_PEERS": json.dumps(
            {d.name: {"Url": d.url, "Username": d.username, "Password": d.password} for d in destinations}),
        "ANONLIB_PLUGIN_SCRIPT": str(settings.env_dir / "orthanc" / "plugin" / "anonlib_plugin.py"),
        "ANONLIB_SITE_PACKAGES": sysconfig.get_paths()["purelib"],
        "ANONLIB_HOME": str(settings.home),
        "ANONLIB_DB_URL": info_db_url,
    }
    for name in ("LD_PRELOAD", "ANONLIB_BIND_ADDRESS", "ANONLIB_BIND_PORTS"):
        env.pop(name, None)  # the shim only as set here (a caller's LD_PRELOAD is kept below)
    if settings.dicom_listen is not None:  # only the DICOM port: REST keeps RemoteAccessAllowed
        env.update(shim_env(settings.shim_path, settings.dicom_listen, [node.dicom_port],
                            os.environ.get("LD_PRELOAD", "")))
    elif os.environ.get("LD_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
    return env


def _new_credentials(node: NodeInfo) -> NodeInfo:
    """``node`` with new users and passwords: never shared with another node or role."""
    return replace(node, username=f"anonlib-{node.name}", password=secrets.token_urlsafe(24),
                   reader_username=f"reader-{node.name}", reader_password=secrets.token_urlsafe(24))


def _ready(node: NodeInfo, timeout: float = 2.0) -> bool:
    return not orthanc_problem(node.url, node.name, (node.username, node.password), timeout)


def _http_port(node: NodeInfo) -> int:
    """The port of the node's REST URL."""
    return int(node.url.rsplit(":", 1)[1])


def _plan_nodes(settings: ConstellationSettings, old: ConstellationInfo | None) -> dict[str, NodeInfo]:
    """Node descriptions: kept from the last `up` where the node still runs; new ports (the
    preferred ones when free) otherwise. Each node keeps its own credentials from the last `up`;
    a node described without per-role credentials (an older `up`, which shared one user between
    nodes) is stopped and started again with new ones."""
    taken: set[int] = set()
    nodes: dict[str, NodeInfo] = {}
    for spec in settings.nodes:
        previous = old.nodes.get(spec.name) if old else None
        if previous is not None and not previous.reader_password:
            stop_pidfile(settings.home / spec.name / "orthanc.pid", grace=5)
            previous = _new_credentials(replace(previous, pid=None))
        if previous is not None and pid_alive(previous.pid) and (
                _listens_wide(settings, previous) or previous.dicom_host != settings.dicom_host):
            # started before ANONLIB_DICOM_LISTEN (an older anonlib) or it changed: started again
            stop_pidfile(settings.home / spec.name / "orthanc.pid", grace=5)
            previous = replace(previous, pid=None)
        if previous is not None and pid_alive(previous.pid) and _ready(previous):
            nodes[spec.name] = previous
            taken.update({_http_port(previous), previous.dicom_port})
            continue
        http = free_port(_http_port(previous) if previous else spec.http_port, taken)
        taken.add(http)
        dicom = free_port(previous.dicom_port if previous else spec.dicom_port, taken)
        taken.add(dicom)
        planned = NodeInfo(name=spec.name, role=spec.role, url=f"http://127.0.0.1:{http}", username="",
                           password="", dicom_host=settings.dicom_host, dicom_port=dicom, aet=spec.aet,
                           database=settings.database(spec.name), pid=None)
        nodes[spec.name] = _new_credentials(planned) if previous is None else replace(
            planned, username=previous.username, password=previous.password,
            reader_username=previous.reader_username, reader_password=previous.reader_password)
    return nodes


def _start_node(settings: ConstellationSettings, spec: NodeSpec, node: NodeInfo,
                nodes: dict[str, NodeInfo], db_url: str, attempts: int = 3) -> NodeInfo:
    """Start one node; if its ports were taken between choosing and binding them (Orthanc exits
    at once), choose other free ports and try again."""
    home = private_dir(private_dir(settings.home) / node.name)
    private_dir(home / "storage")  # identified data on intake: its owner's only
    config = assemble_config(settings.env_dir, spec.role, home / "config")
    log = home / "orthanc.log"
    for attempt in range(attempts):
        launch = LaunchSpec(node.name, [settings.orthanc_binary, str(config), f"--logfile={log}"],
                            _node_env(settings, spec, node, nodes, db_url), str(home / "orthanc.pid"),
                            str(home / "orthanc.stdout"))
        pid = start_process(launch.argv, pidfile=Path(launch.pidfile), logfile=Path(launch.logfile), env=launch.env)
        try:
            wait_orthanc_ready(node.url, node.name, (node.username, node.password), pid, log=log)
            _check_listening(settings, node, home)
            launch.save(settings.home)  # what the node supervisor starts again, unchanged
            return replace(node, pid=pid)
        except ProcessError:
            stop_pidfile(home / "orthanc.pid", grace=5)
            if attempt + 1 == attempts or port_free(_http_port(node)) and port_free(node.dicom_port):
                raise  # not a port clash: report it
            taken = {_http_port(n) for n in nodes.values()} | {n.dicom_port for n in nodes.values()}
            http = free_port(0, taken)
            node = replace(node, url=f"http://127.0.0.1:{http}", dicom_port=free_port(0, taken | {http}))
            nodes[node.name] = node
    raise ProcessError(f"Orthanc {node.name} could not start")  # pragma: no cover


def _listens_wide(settings: ConstellationSettings, node: NodeInfo) -> bool:
    """The node's DICOM port is on every address although ``ANONLIB_DICOM_LISTEN`` names one."""
    return settings.dicom_listen is not None and any(
        a in EVERY_ADDRESS for a in listening_addresses(node.dicom_port))


def _check_listening(settings: ConstellationSettings, node: NodeInfo, home: Path) -> None:
    """Fail closed: a node whose DICOM port listens on every address although
    ``ANONLIB_DICOM_LISTEN`` names one (the shim did not take) is stopped."""
    if _listens_wide(settings, node):
        stop_pidfile(home / "orthanc.pid", grace=5)
        raise ConfigError(f"Orthanc {node.name} listened for DICOM on every address (0.0.0.0:{node.dicom_port}) "
                          f"despite ANONLIB_DICOM_LISTEN={settings.dicom_listen}: stopped")


# -- workers ----------------------------------------------------------------------------------

def _start_workers(settings: ConstellationSettings, count: int) -> list[int]:
    """A supervisor that keeps ``count`` workers running (see :mod:`anonlib.constellation.workers`)."""
    return supervise(settings.home, count)


# -- permissions ------------------------------------------------------------------------------

def exposed_paths(settings: ConstellationSettings) -> list[Exposed]:
    """``ANONLIB_HOME``, each node's folder and storage and the SQLite stores in ``ANONLIB_HOME``
    that other users may open (made so by an older anonlib, or by hand); the export folder is
    meant to be shared and is not checked."""
    home = settings.home
    paths = [home]
    for spec in settings.nodes:
        paths += [home / spec.name, home / spec.name / "storage"]
    if home.is_dir():
        paths += sorted(p for p in home.iterdir() if ".sqlite" in p.name and p.is_file())
    return exposed(paths)


def _check_permissions(settings: ConstellationSettings, fix: bool) -> list[Exposed]:
    """Refuse to start on identified data other users can read, or (``fix``) tighten it as
    ``chmod -R go-rwx`` would; returns what was tightened."""
    found = exposed_paths(settings)
    if found and not fix:
        raise ConfigError("\n".join(f.line() for f in found)
                          + "\n(or run `anonlib constellation up --fix-permissions`)")
    for item in found:
        tighten(item.path)
    return found


# -- commands ---------------------------------------------------------------------------------

def up(settings: ConstellationSettings, *, workers: int | None = None,
       fix_permissions: bool = False) -> ConstellationInfo:
    """Start (or complete) the constellation; returns its description (also saved to disk).

    Refuses (:class:`ConfigError`, one line per path) when ``ANONLIB_HOME``, a node's folder or
    storage or a store file in ``ANONLIB_HOME`` is open to other users, unless
    ``fix_permissions``, which tightens them first."""
    _check_permissions(settings, fix_permissions)
    if settings.dicom_listen is not None:
        build_shim(settings.env_dir, settings.shim_path)  # fails closed, before anything starts
    ensure_packages(settings)
    started_pg = ensure_postgres(settings.pg_admin_url)
    ensure_databases(settings.pg_admin_url,
                     [settings.database()] + [settings.database(n.name) for n in settings.nodes])
    # nothing starts a node behind this `up`'s back: the node supervisor is stopped while nodes
    # are planned and started, and started again at the end — or, if `up` fails on the way, at
    # once for the nodes it watched, so they are not left unwatched
    was_watching = stop_watch(settings.home)
    try:
        return _up_nodes_and_workers(settings, workers, started_pg)
    except BaseException:
        if was_watching and settings.node_restart:
            with contextlib.suppress(Exception):
                watch_nodes(settings.home, [s.name for s in sorted(settings.nodes, key=lambda s: ORDER[s.role])])
        raise


def _up_nodes_and_workers(settings: ConstellationSettings, workers: int | None,
                          started_pg: bool) -> ConstellationInfo:
    db_url = database_url(settings.pg_admin_url, settings.database())
    old = _current_pids(settings, ConstellationInfo.load(settings.info_path)) if settings.info_path.exists() else None
    nodes = _plan_nodes(settings, old)
    private_dir(settings.export)
    for spec in sorted(settings.nodes, key=lambda s: ORDER[s.role]):
        node = nodes[spec.name]
        if node.pid is None or not pid_alive(node.pid):  # started now: with today's StableAge
            nodes[spec.name] = _start_node(settings, spec, replace(node, stable_age=settings.stable_age),
                                           nodes, db_url)
    _prepare_database(db_url)
    destinations = [n.name for n in settings.nodes if n.role == "destination"]
    info = ConstellationInfo(home=str(settings.home), nodes=nodes, export_dir=str(settings.export),
                             db_url=db_url, destinations=destinations, scu_aet=settings.scu_aet,
                             started_postgres=started_pg or bool(old and old.started_postgres))
    info.save(settings.info_path)  # the workers read it
    count = settings.workers if workers is None else workers
    info = replace(info, workers=_start_workers(settings, count))
    info.save(settings.info_path)
    if settings.node_restart:
        watch_nodes(settings.home, [spec.name for spec in sorted(settings.nodes, key=lambda s: ORDER[s.role])])
    return info


def _current_pids(settings: ConstellationSettings, info: ConstellationInfo) -> ConstellationInfo:
    """``info`` with each node's PID from its PID file: the node supervisor may have started a
    node again since ``constellation.json`` was written."""
    nodes = {}
    for name, node in info.nodes.items():
        pid = read_pid(settings.home / name / "orthanc.pid")
        nodes[name] = replace(node, pid=pid) if pid_alive(pid) else node
    return replace(info, nodes=nodes)


def _prepare_database(db_url: str) -> None:
    """The lookup store's tables and the job queue's schema, created once, race-free."""
    from anonlib.store import open_store

    open_store(db_url).close()
    try:
        from anonlib.jobs.app import ensure_queue_schema
    except ImportError:  # the job queue is optional until installed
        return
    ensure_queue_schema(db_url)


def status(settings: ConstellationSettings) -> tuple[ConstellationInfo, list[NodeStatus], list[WorkerStatus]]:
    """The description on disk, each node's state and each worker's (with its heartbeat age;
    stale past the watchdog timeout of ``ANONLIB_WORKER_*``)."""
    info = _current_pids(settings, ConstellationInfo.load(settings.info_path))
    nodes = [NodeStatus(n.name, n.pid, pid_alive(n.pid), _ready(n), n.url, restarts(settings.home, n.name))
             for n in info.nodes.values()]
    workers = worker_status(settings.home, info.db_url, HeartbeatTiming.from_env().watchdog)
    return info, nodes, workers


def node_watch_state(settings: ConstellationSettings) -> str:
    """The node supervisor: ``running``; ``stopped`` (a fault: it died, the nodes are not watched);
    ``off`` (not started: ``ANONLIB_NODE_RESTART=0``, or no `up` since the last `down`)."""
    if watch_alive(settings.home):
        return "running"
    return "stopped" if settings.node_restart and watch_pidfile(settings.home).exists() else "off"


def down(settings: ConstellationSettings) -> list[str]:
    """Stop the node supervisor, the workers and the nodes ``up`` started (and PostgreSQL, only
    if ``up`` started it)."""
    if not settings.info_path.exists():
        raise ConfigError(f"{settings.info_path}: nothing to stop (no constellation description)")
    info = _current_pids(settings, ConstellationInfo.load(settings.info_path))
    stopped = ["node supervisor"] if stop_watch(settings.home) else []  # first: it would start them again
    stopped += stop_workers(settings.home)
    for node in sorted(info.nodes.values(), key=lambda n: -ORDER.get(n.role, 0)):
        if stop_pidfile(settings.home / node.name / "orthanc.pid"):
            stopped.append(node.name)
    nodes = {name: replace(node, pid=None) for name, node in info.nodes.items()}
    replace(info, nodes=nodes, workers=[], started_postgres=False).save(settings.info_path)
    if info.started_postgres:
        _stop_postgres()
        stopped.append("postgresql")
    return stopped


def _stop_postgres() -> None:
    _pg_ctlcluster("stop")
