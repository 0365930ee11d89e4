"""Attribute Types (PS3.3) per IOD, by tag path, for resolving compound action codes.

The data is generated from highdicom's machine-readable PS3.3 tables (see
``tools/generate_iod_types.py``). Where an attribute appears in several modules of one IOD the
strictest Type wins (1 before 1C before 2 before 2C before 3): keeping an attribute that a
module would allow us to drop costs nothing, dropping one another module requires breaks the IOD.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import Any

from anonlib.data import read_verified
from anonlib.errors import StandardDataError

__all__ = ["IodTypes", "iod_types", "normalize_path", "repeating_base", "CONTENT_SEQUENCE"]

DATA_FILE = "iod_attribute_types.jsonl.gz"
CONTENT_SEQUENCE = 0x0040A730
_RANK = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}


def repeating_base(group: int) -> int | None:
    """The first group of the repeating range ``group`` belongs to — 0x6000 for the overlays
    (even groups 6000-601E), 0x5000 for the curves (even 5000-501E) — or None for any other."""
    if group % 2 == 0 and (0x6000 <= group <= 0x601E or 0x5000 <= group <= 0x501E):
        return group & 0xFF00
    return None


def _fold(tag: int) -> int:
    """Fold the repeating groups onto their first group: 60xx overlays → 6000, 50xx → 5000."""
    base = repeating_base(tag >> 16)
    return tag if base is None else (base << 16) | (tag & 0xFFFF)


def normalize_path(path: tuple[int, ...]) -> tuple[int, ...]:
    """A path as the Type data stores it: repeating groups folded, and nested SR content
    (ContentSequence within ContentSequence, to any depth) collapsed to one level."""
    out: list[int] = []
    for tag in path:
        tag = _fold(tag)
        if tag == CONTENT_SEQUENCE and out and out[-1] == CONTENT_SEQUENCE:
            continue
        out.append(tag)
    return tuple(out)


class IodTypes:
    """The Types of the attributes of one IOD, looked up by tag path."""

    def __init__(self, iod: str | None, types: dict[tuple[int, ...], str]) -> None:
        self.iod = iod
        self._types = types
        self._seen: dict[tuple[int, ...], str | None] = {}  # path as asked → its Type

    def type_of(self, path: tuple[int, ...]) -> str | None:
        """The Type of the attribute at ``path`` (sequence tags then the tag), or None when the
        IOD does not define an attribute there."""
        try:
            return self._seen[path]
        except KeyError:
            found = self._seen[path] = self._types.get(normalize_path(path))
            return found

    def __len__(self) -> int:
        return len(self._types)


@cache
def _lines() -> list[bytes]:
    """The data's lines: the index (SOP classes, IODs, where each module is), then one module
    each — parsed only when an IOD that has it is met (see ``tools/generate_iod_types.py``)."""
    return gzip.decompress(read_verified(DATA_FILE)).split(b"\n")


@cache
def _index() -> dict[str, Any]:
    index: dict[str, Any] = json.loads(_lines()[0])
    return index


@cache
def _module(name: str) -> list[list[Any]]:
    line = _index()["module_lines"].get(name)
    if line is None:
        return []
    found, rows = json.loads(_lines()[line])
    if found != name:
        raise StandardDataError(f"{DATA_FILE}: line {line} holds {found!r}, not {name!r}")
    return list(rows)


@cache
def iod_types(sop_class_uid: str) -> IodTypes:
    """The attribute Types of the IOD of ``sop_class_uid``; empty for classes the data does not
    know (private SOP classes), so that every attribute then counts as Type 3."""
    index = _index()
    iod = index["sop_class_iod"].get(sop_class_uid)
    if iod is None:
        return IodTypes(None, {})
    types: dict[tuple[int, ...], str] = {}
    for module, _usage in index["iod_modules"].get(iod, []):
        for row in _module(module):
            path = normalize_path(tuple(row[:-1]))
            new = row[-1]
            old = types.get(path)
            if old is None or _RANK.get(new, 4) < _RANK.get(old, 4):
                types[path] = new
    return IodTypes(iod, types)
