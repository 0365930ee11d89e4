"""What a running constellation looks like, as written to ``$ANONLIB_HOME/constellation.json``.

Every tool that talks to the constellation (worker, plugin, CLI, notebooks, tests) reads this
file instead of guessing ports and credentials. It holds passwords, so it is written 0600 and
never committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from anonlib.errors import ConfigError
from anonlib.settings import private_dir, write_private

__all__ = ["NodeInfo", "ConstellationInfo", "INFO_FILE", "info_path", "load_info"]

INFO_FILE = "constellation.json"


@dataclass(frozen=True)
class NodeInfo:
    """One Orthanc node: how to reach it over REST and DICOM."""

    name: str  # e.g. "intake", "research"
    role: str  # "intake" | "research" | "destination"
    url: str  # REST base URL, e.g. http://127.0.0.1:8042
    username: str  # the worker's user (read/write); each node has its own users and passwords
    password: str
    dicom_host: str
    dicom_port: int
    aet: str
    database: str = ""  # its PostgreSQL index database
    pid: int | None = None
    stable_age: int = 0  # its StableAge (seconds): a study counts as stable only this long after its last change
    reader_username: str = ""  # the read-only user (notebooks, audit); "" = none known
    reader_password: str = ""

    def as_reader(self) -> NodeInfo:
        """This node with its read-only credentials (itself when none are known, e.g. a
        deployment described by the environment without reader variables)."""
        if not self.reader_username:
            return self
        return replace(self, username=self.reader_username, password=self.reader_password)


@dataclass(frozen=True)
class ConstellationInfo:
    """All nodes, where de-identified files are exported, and the lookup/job database."""

    home: str
    nodes: dict[str, NodeInfo]
    export_dir: str
    db_url: str  # lookup store + job queue (PostgreSQL)
    destinations: list[str] = field(default_factory=list)  # names forwarded to from research
    workers: list[int] = field(default_factory=list)  # worker PIDs started by `up`
    scu_aet: str = "ANONLIB_SCU"  # the AET intake accepts C-STORE from (declared modality)
    started_postgres: bool = False  # `up` started the local PostgreSQL cluster (`down` stops it)

    def node(self, name: str) -> NodeInfo:
        try:
            return self.nodes[name]
        except KeyError:
            raise ConfigError(f"the constellation has no node {name!r} ({sorted(self.nodes)})") from None

    @property
    def intake(self) -> NodeInfo:
        return self.node("intake")

    @property
    def research(self) -> NodeInfo:
        return self.node("research")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConstellationInfo:
        nodes = {name: NodeInfo(**node) for name, node in data["nodes"].items()}
        return cls(**{**data, "nodes": nodes})

    def save(self, path: Path) -> None:
        private_dir(path.parent)
        write_private(path, self.to_json())

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConstellationInfo:
        """The description from environment variables, for deployments without
        ``constellation.json`` (docker): ``ANONLIB_DB_URL``, ``ANONLIB_INTAKE_URL``,
        ``ANONLIB_RESEARCH_URL``, ``ANONLIB_INTAKE_USER``/``_PASSWORD`` and
        ``ANONLIB_RESEARCH_USER``/``_PASSWORD`` (each node's own worker user), ``ANONLIB_EXPORT_DIR``;
        optional ``ANONLIB_INTAKE_READER_USER``/``_PASSWORD`` (and research's), ``ANONLIB_DESTINATIONS``
        (comma-separated names), ``ANONLIB_HOME``, ``ANONLIB_SCU_AET``, ``ANONLIB_STABLE_AGE`` (intake's,
        seconds). DICOM ports and AE titles are the defaults (the
        worker talks to the nodes over REST only)."""
        required = ("ANONLIB_DB_URL", "ANONLIB_INTAKE_URL", "ANONLIB_RESEARCH_URL", "ANONLIB_INTAKE_USER",
                    "ANONLIB_INTAKE_PASSWORD", "ANONLIB_RESEARCH_USER", "ANONLIB_RESEARCH_PASSWORD",
                    "ANONLIB_EXPORT_DIR")
        missing = [name for name in required if not environ.get(name)]
        if missing:
            raise ConfigError(f"no {INFO_FILE} and these variables are not set: {', '.join(missing)}")
        nodes = {}
        try:
            stable_age = max(0, int(environ.get("ANONLIB_STABLE_AGE") or 0))
        except ValueError:
            raise ConfigError("ANONLIB_STABLE_AGE must be a whole number of seconds") from None
        for name, port in (("intake", 4242), ("research", 4242)):
            key = f"ANONLIB_{name.upper()}"
            url = environ[f"{key}_URL"].rstrip("/")
            host = urlsplit(url).hostname
            if not url.startswith(("http://", "https://")) or not host:
                raise ConfigError(f"ANONLIB_{name.upper()}_URL must be an http(s):// URL")
            nodes[name] = NodeInfo(name=name, role=name, url=url, username=environ[f"{key}_USER"],
                                   password=environ[f"{key}_PASSWORD"], dicom_host=host, dicom_port=port,
                                   aet=key, stable_age=stable_age if name == "intake" else 0,
                                   reader_username=environ.get(f"{key}_READER_USER", ""),
                                   reader_password=environ.get(f"{key}_READER_PASSWORD", ""))
        destinations = [d.strip() for d in environ.get("ANONLIB_DESTINATIONS", "").split(",") if d.strip()]
        return cls(home=environ.get("ANONLIB_HOME", ""), nodes=nodes,
                   export_dir=environ["ANONLIB_EXPORT_DIR"], db_url=environ["ANONLIB_DB_URL"],
                   destinations=destinations, scu_aet=environ.get("ANONLIB_SCU_AET") or "ANONLIB_SCU")

    @classmethod
    def load(cls, path: Path) -> ConstellationInfo:
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no constellation description (run `anonlib constellation up`)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable constellation description ({type(exc).__name__})") from exc


def info_path(env: Mapping[str, str] | None = None) -> Path:
    """``$ANONLIB_HOME/constellation.json`` (the home as :func:`anonlib.settings.anonlib_home`
    finds it in ``env``, default ``os.environ``; not created)."""
    from anonlib.settings import anonlib_home

    return anonlib_home(create=False, env=env) / INFO_FILE


def load_info(env: Mapping[str, str] | None = None, *, env_fallback: bool = True) -> ConstellationInfo:
    """The constellation description: ``$ANONLIB_HOME/constellation.json`` when it exists,
    else :meth:`ConstellationInfo.from_env` (docker sets ``ANONLIB_DB_URL`` and friends).
    Without ``env_fallback`` a missing file is a :class:`ConfigError`, as for :meth:`ConstellationInfo.load`."""
    env = os.environ if env is None else env
    path = info_path(env)
    if path.exists() or not env_fallback:
        return ConstellationInfo.load(path)
    return ConstellationInfo.from_env(env)
