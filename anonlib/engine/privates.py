"""Private attributes: removed (Basic Profile), or kept only where known safe (Retain Safe Private).

Known safe means: listed in PS3.15 Table E.3.10-1 (``data/safe_private.csv``), listed by the
site profile, or declared safe by the instance's own Private Data Element Characteristics
Sequence (0008,0300) with Block Identifying Information Status SAFE (or MIXED, for the elements
in Nonidentifying Private Elements). Kept private values are still cleaned: UIDs remapped, dates
shifted, text scrubbed. Private creators go with the last element of their block.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from anonlib.data import read_verified

if TYPE_CHECKING:
    from anonlib.engine.walk import Trail, Walker

__all__ = ["PrivatePolicy", "standard_safe_private"]

_CHARACTERISTICS = 0x00080300


@cache
def standard_safe_private() -> frozenset[tuple[str, int, int]]:
    """(creator, group, element offset) rows of PS3.15 Table E.3.10-1."""
    text = read_verified("safe_private.csv").decode("utf-8")
    rows = set()
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.add((row["private_creator"].strip(), int(row["group"], 16), int(row["element"], 16)))
        except (KeyError, ValueError):
            continue
    return frozenset(rows)


def declared_safe(ds: Dataset) -> frozenset[tuple[str, int, int | None]]:
    """Blocks (element None) or elements the instance declares safe in (0008,0300)."""
    out: set[tuple[str, int, int | None]] = set()
    if _CHARACTERISTICS not in ds:
        return frozenset()
    for item in ds[_CHARACTERISTICS].value or []:
        try:
            group = int(item.PrivateGroupReference)
            creator = str(item.PrivateCreatorReference).strip()
            status = str(item.get("BlockIdentifyingInformationStatus", "")).strip().upper()
        except (AttributeError, TypeError, ValueError):
            continue
        if status == "SAFE":
            out.add((creator, group, None))
        elif status == "MIXED":
            elements = item.get("NonidentifyingPrivateElements", []) or []
            elements = elements if isinstance(elements, (list, tuple)) else [elements]
            out.update((creator, group, int(e) & 0xFF) for e in elements)
    return frozenset(out)


class PrivatePolicy:
    """Decides the fate of each private element of one instance."""

    def __init__(self, code: str, site_keep: frozenset[tuple[str, int, int]],
                 declared: frozenset[tuple[str, int, int | None]], source: str) -> None:
        self.code = code
        self.source = source
        self._safe = standard_safe_private() | site_keep
        self._declared = declared

    def is_safe(self, creator: str, group: int, offset: int) -> bool:
        key = (creator, group, offset)
        return (key in self._safe or (creator, group, None) in self._declared
                or key in self._declared)

    def visit(self, walker: Walker, ds: Dataset, tag: int, seq_path: tuple[int, ...],
              trail: Trail) -> None:
        group, element = tag >> 16, tag & 0xFFFF
        if self.code == "X":  # the Basic Profile: every private element goes, creators too
            walker.drop(ds, tag, trail, self.code, self.source, "private")
            return
        if 0x0010 <= element <= 0x00FF:
            return  # a private creator: decided in finish(), once its block is known
        creator_tag = (group << 16) | (element >> 8)
        creator = str(ds[creator_tag].value).strip() if element >= 0x1000 and creator_tag in ds else None
        keep = creator is not None and (self.code == "K" or (
            self.code == "C" and self.is_safe(creator, group, element & 0xFF)))
        if keep:
            walker._decide(ds, tag, walker._vr(ds, tag), "K", self.source, seq_path, trail, False)
        else:
            walker._apply("X", ds, tag, None, self.code, self.source, None, seq_path, trail, False,
                          "private" if creator is not None else "private element without creator")

    def finish(self, walker: Walker, ds: Dataset, trail: Trail) -> None:
        """Remove private creators whose blocks are now empty."""
        if self.code == "X":
            return
        private = [t for t in ds.keys() if (t >> 16) % 2]
        used = {((t >> 16), (t >> 8) & 0xFF) for t in private if (t & 0xFFFF) >= 0x1000}
        for tag in private:
            if 0x0010 <= (tag & 0xFFFF) <= 0x00FF and ((tag >> 16), tag & 0xFF) not in used:
                walker.drop(ds, tag, trail, self.code, self.source, "private creator of an empty block")
