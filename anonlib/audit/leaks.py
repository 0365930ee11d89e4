"""Leak check: does any identifying value of an original appear in its de-identified counterpart?

Each value is searched case-insensitively in every element value of the output (sequences,
private blocks, SR content, annotations), then in the output's raw bytes (what element values
cannot show: undecoded or malformed data), and — for a whole output tree — in file and folder
names, manifests and reports. Numbers match only as whole tokens (a 5-digit ZIP code inside a
39-digit random UID is not a leak); words match on word boundaries; very short values are only
searched in element values. Findings say where and which category, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anonlib.audit.elements import walk_elements
from anonlib.audit.model import Finding
from anonlib.audit.originals import OriginalValues
from anonlib.dicomvalues import format_path

__all__ = ["find_leaks", "find_leaks_in_names", "Needles"]

_BINARY = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})


class Needles:
    """Compiled searches for one set of original values (text and bytes)."""

    def __init__(self, values: OriginalValues) -> None:
        pairs = [(v, c) for c, vs in values.values.items() for v in vs]
        pairs += [(uid, "R UIDs") for uid in values.uids]
        self.category = {v.lower(): c for v, c in pairs}
        self.text = _compile_text(tuple(sorted(self.category)))
        self.raw = _compile_bytes(tuple(sorted(v for v in self.category if len(v) >= 4)))

    def in_text(self, text: str) -> list[str]:
        """Categories of the values found in ``text``."""
        if self.text is None or not text:
            return []
        return [self.category.get(m.group(0).lower(), "?") for m in self.text.finditer(text)]

    def in_bytes(self, blob: bytes) -> list[str]:
        if self.raw is None:
            return []
        return [self.category.get(m.group(0).decode("latin-1").lower(), "?")
                for m in self.raw.finditer(blob)]


def _boundary(value: str) -> str:
    escaped = re.escape(value)
    if value.replace(".", "").replace("-", "").isdigit():
        return rf"(?<![0-9.]){escaped}(?![0-9]|\.[0-9])"
    return rf"(?<![^\W_]){escaped}(?![^\W_])"


@lru_cache(maxsize=64)
def _compile_text(values: tuple[str, ...]) -> re.Pattern[str] | None:
    if not values:
        return None
    return re.compile("|".join(_boundary(v) for v in sorted(values, key=len, reverse=True)), re.IGNORECASE)


@lru_cache(maxsize=64)
def _compile_bytes(values: tuple[str, ...]) -> re.Pattern[bytes] | None:
    if not values:
        return None
    parts = [_boundary(v).encode("latin-1", "ignore") for v in sorted(values, key=len, reverse=True)]
    return re.compile(b"|".join(parts), re.IGNORECASE)


def _element_texts(ds: Dataset) -> Iterable[tuple[str, str]]:
    for trail, element in walk_elements(ds):
        if element.VR in _BINARY or element.VR == "SQ" or isinstance(element.value, bytes):
            continue
        value = element.value
        if isinstance(value, (list, tuple, MultiValue)):
            yield format_path(trail, int(element.tag)), "\\".join(map(str, value))
        else:
            yield format_path(trail, int(element.tag)), str(value)


def find_leaks(needles: Needles, output: Dataset, raw: bytes, *, study: str, instance: str) -> list[Finding]:
    """Findings for every original value present in the output's elements or raw bytes."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for path, text in _element_texts(output):
        for category in sorted(set(needles.in_text(text))):
            seen.add(category)
            findings.append(Finding("leak", category, "fail", study, instance, path,
                                    f"an identifying {category} value of the original is in this element"))
    for category in sorted(set(needles.in_bytes(raw)) - seen):
        findings.append(Finding("leak", category, "fail", study, instance, "raw bytes",
                                f"an identifying {category} value of the original is in the file's bytes"))
    return findings


def find_leaks_in_names(needles: Needles, names: Mapping[str, str]) -> list[Finding]:
    """Findings for original values in file/folder names and text files (manifests, reports).
    ``names`` maps a PHI-free description of each place (for example "file or folder name, entry
    12") to its text; the text itself is never reported."""
    findings = []
    for place, text in names.items():
        for category in sorted(set(needles.in_text(text))):
            findings.append(Finding("leak", category, "fail", "", "", place,
                                    f"an identifying {category} value of an original is here"))
    return findings
