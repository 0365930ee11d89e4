"""Leak check: does any identifying value of an original appear in its de-identified counterpart?

Each value of the original (see :mod:`anonlib.audit.originals`) is searched in every place of
the output where text can be (element values at any depth, private blocks, SR content, the
bytes of private blobs, encapsulated documents and overlays: see :mod:`anonlib.audit.haystack`)
and — for a whole output tree — in file and folder names, manifests and reports, with the
matching rules of :mod:`anonlib.audit.matching`. Findings say where and which category, never
the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from anonlib.audit.matching import Matcher, Scanned, scan
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
    for place, text in names.items():
        for category in sorted(matcher.categories(scan(place, text))):
            findings.append(Finding("leak", category, "fail", "", "", place,
                                    f"an identifying {category} value of an original is here"))
    return findings
