"""Checking the sources a notebook is given (its ``source`` and ``originals`` parameters, a
panel's fields) before any work: one line naming the parameter and the reason, never a
traceback. A source is a folder, an ``http(s)://`` Orthanc URL or a constellation node name
(see :func:`anonlib.sources.open_source`, which reads nothing until asked)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from anonlib.errors import ConfigError

__all__ = ["SOURCE_PARAMETERS", "check_source", "check_sources"]

#: Notebook parameters that name a source; ``originals`` may be empty (no originals).
SOURCE_PARAMETERS: Mapping[str, bool] = {"source": False, "originals": True}


def check_source(name: str, spec: str, *, optional: bool = False, base: Path | None = None) -> None:
    """Raise :class:`ConfigError` ``"<name>: <reason>"`` unless ``spec`` names a source that can
    be opened; ``""`` passes when ``optional``. A relative folder is looked up in ``base`` (the
    folder the notebook's kernel runs in) when given."""
    from anonlib.sources import open_source

    text = str(spec).strip()
    if not text and optional:
        return
    if base is not None and text and "://" not in text and not Path(text).expanduser().is_absolute():
        candidate = base / text
        if candidate.exists() or "/" in text:
            text = str(candidate)
    try:
        open_source(text)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def check_sources(parameters: Mapping[str, object], *, base: Path | None = None) -> None:
    """:func:`check_source` for each source parameter given as a string in ``parameters``."""
    for name, optional in SOURCE_PARAMETERS.items():
        value = parameters.get(name)
        if isinstance(value, str):
            check_source(name, value, optional=optional, base=base)
