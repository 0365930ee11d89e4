"""The profile's ``limits:`` section: what one instance may be before it is rejected.

    limits:
      max_depth: 32               # sequences nested in sequences (at most 40: Orthanc crashes at 48)
      max_text_bytes: 1 MiB       # one value of a text VR
      max_element_bytes: 512 MiB  # any other element except the pixel data
      max_inflated_bytes: 256 MiB # a deflated data set, inflated
      max_instance_bytes: 4 GiB   # the file

Sizes are bytes, or a number with KiB, MiB or GiB. Every key is optional; the defaults are
:class:`anonlib.dicomio.limits.Limits`' (chosen so that a radiology archive does not trip them).
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import Any

from anonlib.dicomio.limits import DEPTH_REASON, MAX_SAFE_DEPTH, GiB, KiB, Limits, MiB
from anonlib.errors import ConfigError

__all__ = ["Limits", "parse_limits", "parse_size"]

_SIZE = re.compile(r"\s*(\d+)\s*(KiB|MiB|GiB|B)?\s*")
_UNITS = {None: 1, "B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB}


def parse_size(value: Any, what: str) -> int:
    """``1048576``, ``"1 MiB"`` → bytes; a ConfigError for anything else or a size under 1."""
    match = _SIZE.fullmatch(str(value)) if not isinstance(value, bool) else None
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(f"{what} must be a positive size (bytes, or a number with KiB, MiB or GiB), not {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_limits(raw: Any, where: str = "profile") -> Limits:
    """The :class:`Limits` of a profile's ``limits:`` mapping (None: the defaults)."""
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: limits must be a mapping")
    names = {f.name for f in fields(Limits)}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"{where}: unknown limits {sorted(unknown)} (known: {sorted(names)})")
    values: dict[str, int] = {}
    for name, value in raw.items():
        if name == "max_depth":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: limits.max_depth must be a whole number from 1 to {MAX_SAFE_DEPTH}")
            if value > MAX_SAFE_DEPTH:
                raise ConfigError(f"{where}: limits.max_depth {value} is too deep: {DEPTH_REASON}")
            values[name] = value
        else:
            values[name] = parse_size(value, f"{where}: limits.{name}")
    return replace(Limits(), **values)
