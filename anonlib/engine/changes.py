"""The record of what the engine did to each element."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag

from anonlib.dicomvalues import format_path

__all__ = ["Change", "format_path"]


@dataclass(frozen=True, slots=True)
class Change:
    """One decision: where, what the plan said, which single action it resolved to, why, and
    what happened. ``before``/``after`` hold values only when the caller asked for them (the
    preview); they may be identifying and must never be logged or written to output."""

    trail: tuple[tuple[int, int], ...]  # (sequence tag, item index) from the top level down
    tag: int
    vr: str
    code: str  # the code the plan gave, e.g. "X/Z/D"
    action: str  # the single action applied, e.g. "Z"
    # what happened, in words a reviewer reads in the preview diff: removed, emptied, dummy,
    # pseudonym, uid, shifted, cleaned, capped, kept, added or replaced
    outcome: str
    source: str  # the layer that decided: "PS3.15 E.1-1 Basic Profile", "site profile 'x'", ...
    iod_type: str | None = None
    note: str = ""
    before: str | None = None
    after: str | None = None

    @property
    def path(self) -> str:
        """A PHI-free tag path, e.g. ``(0040,A730)[2]>(0040,A160)``."""
        return format_path(self.trail, self.tag)

    @property
    def keyword(self) -> str:
        if (self.tag >> 16) % 2:
            return "(private)"
        return keyword_for_tag(self.tag) or ""
