"""Bundled data files, read through one checksum-verified loader.

``manifest.json`` records, for every table, its provenance (edition, source) and its SHA-256;
:func:`read_verified` refuses a file whose bytes differ, so an edited or truncated table fails
when it is loaded instead of silently changing what the engine does.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import yaml

from anonlib.errors import StandardDataError

__all__ = ["load_yaml", "read_verified", "read_yaml", "manifest"]


@cache
def manifest() -> dict[str, Any]:
    """The provenance manifest of the bundled tables."""
    text = resources.files(__name__).joinpath("manifest.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def read_verified(name: str) -> bytes:
    """The bytes of the bundled file ``name``, after checking its SHA-256 against the manifest."""
    entry = manifest()["files"].get(name)
    if entry is None:
        raise StandardDataError(f"{name}: not listed in anonlib/data/manifest.json")
    try:
        data = resources.files(__name__).joinpath(name).read_bytes()
    except FileNotFoundError as exc:
        raise StandardDataError(f"{name}: bundled data file is missing") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise StandardDataError(
            f"{name}: checksum mismatch (expected {entry['sha256'][:12]}…, found {digest[:12]}…); "
            "the bundled table was altered"
        )
    return data


#: libyaml's safe loader when PyYAML was built with it (the same documents, ~20x faster to
#: parse than the pure-Python one, which cost tens of milliseconds of every start-up).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load(text)``, with libyaml when it is there."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


@cache
def read_yaml(name: str) -> Any:
    """The parsed content of the bundled YAML file ``name`` (read once; do not mutate it)."""
    return load_yaml(resources.files(__name__).joinpath(name).read_text("utf-8"))
