"""Sources of identified studies: a folder of DICOM files or an Orthanc node.

:func:`open_source` turns what an operator types (a notebook's ``source`` parameter) into a
:class:`~anonlib.sources.base.Source`. Nothing connects or reads until a question is asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from anonlib.constellation.info import INFO_FILE, ConstellationInfo, NodeInfo, info_path, load_info
from anonlib.errors import ConfigError
from anonlib.sources.base import (
    MODALITY_SEPARATOR,
    PATIENT_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    Source,
    UnknownKey,
)
from anonlib.sources.folder import FolderSource
from anonlib.sources.orthanc import OrthancSource

__all__ = ["Source", "FolderSource", "OrthancSource", "UnknownKey", "open_source", "node_from_url",
           "PATIENT_COLUMNS", "STUDY_COLUMNS", "SERIES_COLUMNS", "MODALITY_SEPARATOR"]


def node_from_url(url: str) -> NodeInfo:
    """A :class:`NodeInfo` for ``http(s)://user:pass@host:port``; credentials are optional.
    The node's name (its PHI-free label) is ``host:port``; the URL keeps no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("an Orthanc URL looks like http(s)://user:password@host:port")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError("the Orthanc URL has an invalid port") from None
    host = parts.hostname
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return NodeInfo(name=netloc, role="", url=base, username=unquote(parts.username or ""),
                    password=unquote(parts.password or ""), dicom_host=host, dicom_port=0, aet="")


def _constellation() -> ConstellationInfo | None:
    """The constellation's description, from its file or (with ``ANONLIB_INTAKE_URL`` set) the
    environment; ``None`` when neither is there."""
    if info_path().exists() or os.environ.get("ANONLIB_INTAKE_URL"):
        return load_info()
    return None


def open_source(spec: str | Path) -> Source:
    """The source ``spec`` names: an existing folder, an ``http(s)://user:pass@host:port``
    Orthanc URL, or the name of a node of the constellation described in
    ``$ANONLIB_HOME/constellation.json`` (``intake``, ``research``, …), reached with the node's
    read-only credentials. An existing folder wins over a node of the same name. :class:`ConfigError` for anything else."""
    text = str(spec).strip()
    if not text:
        raise ConfigError("no source given: a folder, an Orthanc URL or a constellation node name")
    if text.startswith(("http://", "https://")):
        return OrthancSource(node_from_url(text))
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if path.exists():
        raise ConfigError(f"{text}: a source is a folder, not a file")
    if "/" in text or os.sep in text or "://" in text:
        raise ConfigError(f"{text}: no such folder (and not an http(s):// Orthanc URL)")
    info = _constellation()
    if info is None:
        raise ConfigError(f"{text!r} is neither a folder nor an Orthanc URL, and there is no "
                          f"constellation description ({INFO_FILE} in ANONLIB_HOME) naming nodes")
    if text not in info.nodes:
        raise ConfigError(f"{text!r} is neither a folder nor an Orthanc URL, nor a node of the "
                          f"constellation ({', '.join(sorted(info.nodes))})")
    return OrthancSource(info.nodes[text].as_reader())  # browsing and preview only read
