"""Constellation settings, built once from the environment at the entry point."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anonlib
from anonlib.constellation.listen import SHIM_NAME, parse_listen
from anonlib.constellation.senders import Sender, parse_senders
from anonlib.errors import ConfigError
from anonlib.settings import anonlib_home

__all__ = ["ConstellationSettings", "NodeSpec"]


@dataclass(frozen=True)
class NodeSpec:
    """A node to start: its name, role and preferred ports."""

    name: str
    role: str
    http_port: int
    dicom_port: int
    aet: str


def _int(env: Mapping[str, str], name: str, default: int, low: int = 0, high: int = 65535) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


def _default_env_dir() -> Path:
    return Path(anonlib.__file__).resolve().parent.parent / "env"


@dataclass(frozen=True)
class ConstellationSettings:
    """Where state lives, which databases and ports to use, how Orthanc behaves.

    Environment variables: ``ANONLIB_HOME``, ``ANONLIB_PG_ADMIN`` (a PostgreSQL superuser URL,
    default ``postgresql://<user>@127.0.0.1:5432/postgres``), ``ANONLIB_DB_PREFIX`` (database
    names: ``<prefix>`` for the lookup store and jobs, ``<prefix>_intake``, ``<prefix>_research``),
    ``ANONLIB_STABLE_AGE`` (seconds, default 60), ``ANONLIB_JOBS_HISTORY`` (default 1000),
    ``ANONLIB_INTAKE_SCP_TIMEOUT`` (intake's ``DicomScpTimeout``, seconds, default 30 (Orthanc's own default): how long
    intake waits for a sender's next PDU, or command, before it aborts the association; a
    C-STORE whose data set intake cannot read is never answered and holds one of intake's
    DICOM threads that long unless the sender gives up),
    ``ANONLIB_INTAKE_HTTP_PORT``/``..._DICOM_PORT`` (8042/4242), ``ANONLIB_RESEARCH_HTTP_PORT``/
    ``..._DICOM_PORT`` (8043/4243), ``ANONLIB_WORKERS`` (2), ``ANONLIB_EXPORT_DIR``
    (``$ANONLIB_HOME/export``), ``ANONLIB_DESTINATIONS`` (comma-separated names of extra
    destination nodes to start and forward to), ``ANONLIB_ENV_DIR``, ``ANONLIB_ORTHANC``
    (binary), ``ANONLIB_ORTHANC_PLUGINS`` (plugin folder), ``ANONLIB_ALLOWED_SENDERS`` (who may
    C-STORE into intake: ``HOST``, AE title ``ANONLIB_SCU``, default ``127.0.0.1``; or
    ``AET@HOST,AET@HOST``, see :mod:`anonlib.constellation.senders`), ``ANONLIB_REMOTE_ACCESS``
    (``1``: the nodes' REST answers other hosts too; default ``0``, this machine only),
    ``ANONLIB_DICOM_LISTEN`` (the address the nodes' DICOM ports listen on, default ``127.0.0.1``;
    ``0.0.0.0``: every address; see :mod:`anonlib.constellation.listen`) and ``ANONLIB_BINDSHIM``
    (where the bind shim is built, default ``build/bindshim/`` next to ``ANONLIB_ENV_DIR``),
    ``ANONLIB_NODE_RESTART`` (``1``, the default: a node supervisor starts a node that died again,
    see :mod:`anonlib.constellation.nodewatch`; ``0``: nodes are not watched, e.g. when something
    else supervises them, or a test stops a node on purpose).
    """

    home: Path
    pg_admin_url: str
    db_prefix: str = "anonlib"
    stable_age: int = 60
    jobs_history: int = 1000
    intake_scp_timeout: int = 10
    workers: int = 2
    export_dir: Path | None = None
    env_dir: Path = field(default_factory=_default_env_dir)
    orthanc_binary: str = "/usr/sbin/Orthanc"
    plugins_dir: str = "/usr/share/orthanc/plugins"
    nodes: tuple[NodeSpec, ...] = ()
    allowed_senders: tuple[Sender, ...] = (Sender("ANONLIB_SCU", "127.0.0.1"),)
    remote_access: bool = False
    dicom_listen: str | None = "127.0.0.1"  # None: every address
    bindshim: Path | None = None
    node_restart: bool = True

    @property
    def shim_path(self) -> Path:
        """Where the bind shim is (built)."""
        return self.bindshim or self.env_dir.parent / "build" / "bindshim" / SHIM_NAME

    @property
    def dicom_host(self) -> str:
        """The address other nodes and local senders reach a node's DICOM port at."""
        return self.dicom_listen or "127.0.0.1"

    @property
    def scu_aet(self) -> str:
        """The AE title a sender on this machine calls intake with (the first sender's otherwise)."""
        local = [s for s in self.allowed_senders if s.host.startswith("127.")]
        return (local or list(self.allowed_senders))[0].aet

    @property
    def export(self) -> Path:
        return self.export_dir or self.home / "export"

    @property
    def info_path(self) -> Path:
        from anonlib.constellation.info import INFO_FILE

        return self.home / INFO_FILE

    def database(self, node: str | None = None) -> str:
        """The database of a node's index, or (None) of the lookup store and job queue."""
        return self.db_prefix if node is None else f"{self.db_prefix}_{node}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConstellationSettings:
        env = os.environ if env is None else env
        user = env.get("USER") or getpass.getuser()
        prefix = env.get("ANONLIB_DB_PREFIX", "anonlib")
        if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha():
            raise ConfigError("ANONLIB_DB_PREFIX must be letters, digits and _ (starting with a letter)")
        nodes = [
            NodeSpec("intake", "intake", _int(env, "ANONLIB_INTAKE_HTTP_PORT", 8042),
                     _int(env, "ANONLIB_INTAKE_DICOM_PORT", 4242), "ANONLIB_INTAKE"),
            NodeSpec("research", "research", _int(env, "ANONLIB_RESEARCH_HTTP_PORT", 8043),
                     _int(env, "ANONLIB_RESEARCH_DICOM_PORT", 4243), "ANONLIB_RESEARCH"),
        ]
        for index, name in enumerate(n.strip() for n in env.get("ANONLIB_DESTINATIONS", "").split(",")):
            if name:
                if not name.isidentifier() or name in ("intake", "research"):
                    raise ConfigError(f"ANONLIB_DESTINATIONS: bad node name {name!r}")
                key = f"ANONLIB_{name.upper()}"  # e.g. ANONLIB_DEST_HTTP_PORT for node "dest"
                nodes.append(NodeSpec(name, "destination", _int(env, f"{key}_HTTP_PORT", 8044 + index),
                                      _int(env, f"{key}_DICOM_PORT", 4244 + index), name.upper()[:16]))
        export = env.get("ANONLIB_EXPORT_DIR", "")
        return cls(
            # as before: the default home is created here, an explicit ANONLIB_HOME is not
            home=anonlib_home(create=not env.get("ANONLIB_HOME"), env=env),
            pg_admin_url=env.get("ANONLIB_PG_ADMIN", f"postgresql://{user}@127.0.0.1:5432/postgres"),
            db_prefix=prefix,
            stable_age=_int(env, "ANONLIB_STABLE_AGE", 60, 1, 86400),
            jobs_history=_int(env, "ANONLIB_JOBS_HISTORY", 1000, 10, 1_000_000),
            intake_scp_timeout=_int(env, "ANONLIB_INTAKE_SCP_TIMEOUT", 30, 1, 3600),
            workers=_int(env, "ANONLIB_WORKERS", 2, 0, 64),
            export_dir=Path(export).expanduser() if export else None,
            env_dir=Path(env["ANONLIB_ENV_DIR"]) if env.get("ANONLIB_ENV_DIR") else _default_env_dir(),
            orthanc_binary=env.get("ANONLIB_ORTHANC", "/usr/sbin/Orthanc"),
            plugins_dir=env.get("ANONLIB_ORTHANC_PLUGINS", "/usr/share/orthanc/plugins"),
            nodes=tuple(nodes),
            allowed_senders=parse_senders(env.get("ANONLIB_ALLOWED_SENDERS", "")),
            remote_access=_int(env, "ANONLIB_REMOTE_ACCESS", 0, 0, 1) == 1,
            dicom_listen=parse_listen(env.get("ANONLIB_DICOM_LISTEN", "")),
            bindshim=Path(env["ANONLIB_BINDSHIM"]) if env.get("ANONLIB_BINDSHIM") else None,
            node_restart=_int(env, "ANONLIB_NODE_RESTART", 1, 0, 1) == 1,
        )
