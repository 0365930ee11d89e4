"""Leak check: does any identifying value of an original appear in its de-identified counterpart?

Each value of the original (see :mod:`anonlib.audit.originals`) is searched in every place of
the output where text can be (element values at any depth, private blocks, SR content, the
bytes of private blobs, encapsulated documents and overlays: see :mod:`anonlib.audit.haystack`)
and — for a whole output tree — in file and folder names, manifests and reports, with the
matching rules of :mod:`anonlib.audit.matching`. Findings say where and which category, never
the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from anonlib.audit.matching import _TOKEN, Matcher, Scanned, fold, scan
from anonlib.audit.model import Finding

__all__ = ["find_leaks", "find_leaks_in_names"]


def find_leaks(matcher: Matcher, places: Iterable[Scanned], *, study: str, instance: str) -> list[Finding]:
    """Findings for every value of ``matcher`` found in one output's ``places``."""
    findings: list[Finding] = []
    if not matcher:
        return findings
    for place in places:
        where = "in the bytes of this element" if place.blob else "in this element"
        for category in sorted(matcher.categories(place)):
            findings.append(Finding("leak", category, "fail", study, instance, place.path,
                                    f"an identifying {category} value of the original is {where}"))
    return findings


def find_leaks_in_names(matcher: Matcher, names: Mapping[str, str]) -> list[Finding]:
    """Findings for original values in file/folder names and text files (manifests, reports).
    ``names`` maps a PHI-free description of each place (for example "file or folder name, entry
    12") to its text; the text itself is never reported."""
    findings = []
    reach = matcher.reach()
    for place, text in names.items():
        found: set[str] = set()
        for piece in _pieces(text, reach):
            found |= matcher.categories(scan(place, piece))
        for category in sorted(found):
            findings.append(Finding("leak", category, "fail", "", "", place,
                                    f"an identifying {category} value of an original is here"))
    return findings


#: Texts longer than this are searched in pieces of about this many characters (a manifest of
#: thousands of rows, tokenised at once, would hold tens of MB: the audit's memory would grow
#: with the size of the set).
PIECE = 1 << 16


def _pieces(text: str, reach: int) -> Iterator[str]:
    """``text`` in pieces of whole lines, each extended by the lines that hold the next
    ``reach`` tokens (the longest value's words and the token after it), so that every value
    found in the whole text is found in a piece and nothing else is: a line break separates
    words as it does in the whole text, and nothing is glued across it."""
    if len(text) <= 2 * PIECE:
        yield text
        return
    lines = text.split("\n")
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and (size < PIECE or end == start):
            size += len(lines[end]) + 1
            end += 1
        stop, extra = end, 0
        while stop < len(lines) and extra < reach:
            extra += min(len(_TOKEN.findall(fold(lines[stop], drop_controls=drop))) for drop in (True, False))
            stop += 1
        yield "\n".join(lines[start:stop])
        start = end
