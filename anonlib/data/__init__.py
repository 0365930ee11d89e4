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
from pathlib import Path
from typing import Any

from anonlib.errors import StandardDataError

__all__ = ["PARSED_TABLES", "load_yaml", "parsed_tables_text", "read_verified", "read_yaml", "manifest"]

#: The bundled YAML tables already parsed, one JSON line per file (its name, the SHA-256 of its
#: bytes, its data): :func:`load_yaml` answers from it when the text's digest is listed, so a
#: de-identification run does not import PyYAML (~0.013 s of CPU, issue 12). The YAML files stay
#: the source; an edited file no longer matches its digest and is parsed as before. Rebuilt by
#: ``python -c "from anonlib.data import write_parsed_tables; write_parsed_tables()"``
#: (tests/unit/test_startup.py checks it is current).
PARSED_TABLES = "parsed_tables.jsonl"


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


@cache
def _parsed() -> dict[str, str]:
    """SHA-256 of a bundled YAML file's bytes -> its JSON line in :data:`PARSED_TABLES`."""
    try:
        text = resources.files(__name__).joinpath(PARSED_TABLES).read_text("utf-8")
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            found[str(json.loads(line)["sha256"])] = line
    return found


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load(text)``: from :data:`PARSED_TABLES` for a bundled table (a fresh copy),
    else parsed, with libyaml when it is there."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    line = _parsed().get(hashlib.sha256(data).hexdigest())
    if line is not None:
        return json.loads(line)["data"]
    return parse_yaml(text)


def parse_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load(text)``, with libyaml's safe loader when PyYAML was built with it (the
    same documents, ~20x faster to parse than the pure-Python one)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def parsed_tables_text() -> str:
    """What :data:`PARSED_TABLES` holds for the bundled YAML files as they are now."""
    lines = []
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = entry.read_bytes()
            lines.append(json.dumps({"name": entry.name, "sha256": hashlib.sha256(data).hexdigest(),
                                     "data": parse_yaml(data)}, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + "\n"


def write_parsed_tables() -> None:
    """Rebuild :data:`PARSED_TABLES` (after editing a bundled YAML table)."""
    target = resources.files(__name__).joinpath(PARSED_TABLES)
    Path(str(target)).write_text(parsed_tables_text(), encoding="utf-8")
    _parsed.cache_clear()


@cache
def read_yaml(name: str) -> Any:
    """The parsed content of the bundled YAML file ``name`` (read once; do not mutate it)."""
    return load_yaml(resources.files(__name__).joinpath(name).read_text("utf-8"))
