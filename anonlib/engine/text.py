"""Scrubbing identifying values out of text.

Two passes over a value:

* **known values** — every identifying value read from the instance's own header and, when the
  caller collected them, from the other instances of its study and its patient's (names and
  their parts, IDs, accession, station names, phone numbers, e-mail, address parts,
  institutions, dates in their common written forms) is replaced wherever it occurs, in any
  surviving text element — as whole words, case-, accent- and control-character-insensitively,
  with plural endings of names and longer forms of IDs; in free text also shorter forms of IDs
  (the rules are in :mod:`anonlib.engine.known`);
* **patterns** — in free text that is cleaned (descriptors, comments, SR text, annotations):
  e-mail addresses, phone numbers, dates, long digit runs and UIDs, whether known or not.

Dates are shifted by the patient's shift (or redacted when dates are removed, kept when they are
kept); UIDs found in text are remapped like every other UID, so a reference written in a comment
still resolves. Everything is pure and cached per set of identifiers.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from anonlib.engine.known import Key, matcher, stem_matcher

__all__ = ["Identifiers", "Scrubber"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_MON = "|".join(m[:3] for m in _MONTHS)
_END = r"(?![^\W_]|\.\d)"  # not followed by a letter/digit or by a decimal continuation
_DATE_END = r"(?=T\d|[^\w]|_|$)"  # a date may run straight into an ISO time ("...T10:30")
_PATTERNS = re.compile(
    r"(?P<email>(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"  # anchored: linear on a long run
    rf"|(?P<uid>(?<!\w)(?<!\d\.)[0-2](?:\.(?:0|[1-9]\d*)){{3,}}{_END})"
    rf"|(?P<ymd>(?<!\w)(?<!\d\.)(?P<y1>(?:18|19|20)\d\d)(?P<s1>[-/.]?)(?P<m1>0[1-9]|1[0-2])(?P=s1)(?P<d1>0[1-9]|[12]\d|3[01]){_DATE_END})"
    rf"|(?P<dmy>(?<!\w)(?<!\d\.)(?P<a2>\d{{1,2}})(?P<s2>[-/.])(?P<b2>\d{{1,2}})(?P=s2)(?P<y2>(?:18|19|20)?\d\d){_DATE_END})"
    rf"|(?P<text>(?<![\w])(?P<d3>\d{{1,2}})[\s./-]*(?P<m3>{_MON})[a-z]*\.?,?[\s./-]*(?P<y3>(?:18|19|20)\d\d){_DATE_END})"
    rf"|(?P<text2>(?<![\w])(?P<m4>{_MON})[a-z]*\.?\s+(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y4>(?:18|19|20)\d\d){_END})"
    rf"|(?P<age>(?<![\w.])(?P<years>9\d|1[0-4]\d)\s*(?:-|\s)?\s*(?:year-old|years?|yrs?|y/?o|yo|Y){_END})"
    rf"|(?P<phone>(?<!\w)(?<!\d\.)(?:\+\d{{1,3}}[\s.-]?)?(?:\(\d{{1,4}}\)\s?)?\d{{2,4}}(?:[\s.-]\d{{2,4}}){{1,3}}{_END})"
    rf"|(?P<digits>(?<!\w)(?<!\d\.)\d{{6,}}{_END})",
    re.IGNORECASE,
)


@dataclass
class Identifiers:
    """Identifying values collected from one instance (or a study, a patient), by kind; how
    each kind is matched in text is in :mod:`anonlib.engine.known`."""

    names: set[str] = field(default_factory=set)  # parts of person names
    tokens: set[str] = field(default_factory=set)  # IDs, phone numbers, e-mail, address parts
    phrases: set[str] = field(default_factory=set)  # institutions, whole addresses
    dates: set[str] = field(default_factory=set)  # DA values
    stems: set[str] = field(default_factory=set)  # leading parts of IDs (shorter forms)

    def key(self) -> Key:
        """A hashable snapshot of the values (the compiled matchers are cached by it)."""
        return (frozenset(self.names), frozenset(self.tokens), frozenset(self.phrases),
                frozenset(self.dates), frozenset(self.stems))

    def merge(self, other: Identifiers) -> None:
        """Add ``other``'s values to these (for example every instance's of one study)."""
        self.names |= other.names
        self.tokens |= other.tokens
        self.phrases |= other.phrases
        self.dates |= other.dates
        self.stems |= other.stems

    def covers(self, other: Identifiers) -> bool:
        """True when every value of ``other`` is one of these."""
        return (other.names <= self.names and other.tokens <= self.tokens
                and other.phrases <= self.phrases and other.dates <= self.dates
                and other.stems <= self.stems)

    def merged(self, other: Identifiers | None) -> Identifiers:
        """These values and ``other``'s: ``other`` itself when it already holds all of these
        (so that every instance of a study shares the study's set), else a new set."""
        if other is None:
            return self
        if other.covers(self):
            return other
        both = Identifiers(set(self.names), set(self.tokens), set(self.phrases), set(self.dates),
                           set(self.stems))
        both.merge(other)
        return both


class Scrubber:
    """Removes one instance's identifying values from text; see the module docstring."""

    def __init__(
        self,
        identifiers: Identifiers,
        shift_date: Callable[[_dt.date], str],
        map_uid: Callable[[str], str],
    ) -> None:
        key = identifiers.key()
        self._known = matcher(key)
        self._stems = stem_matcher(key[4])
        self._shift_date = shift_date
        self._map_uid = map_uid

    def known(self, text: str) -> str:
        """``text`` with every known identifying value replaced."""
        return self._known.sub(text, self._replace_known)

    def clean(self, text: str) -> str:
        """``text`` with identifying patterns and known values, in their longer and shorter
        forms, replaced (free-text cleaning)."""
        if not text:
            return text
        text = self._known.sub(_PATTERNS.sub(self._replace_pattern, text), self._replace_known)
        return self._stems.sub(text, self._replace_known)

    def _replace_known(self, kind: str) -> str:
        if kind.startswith("date:"):
            return self._shift_date(_dt.date.fromisoformat(kind[5:]))
        return kind

    def _replace_pattern(self, match: re.Match[str]) -> str:
        group = match.lastgroup
        if group == "email":
            return "[EMAIL]"
        if group == "uid":
            return self._map_uid(match.group(0))
        if group in ("phone", "digits"):
            digits = sum(ch.isdigit() for ch in match.group(0))
            return "[ID]" if digits >= 6 else match.group(0)
        if group == "age":
            return "90+ years"  # HIPAA 164.514(b)(2)(i)(C): ages over 89 in one category
        day = _date_of(match)
        return self._shift_date(day) if day else "[DATE]"


def _date_of(match: re.Match[str]) -> _dt.date | None:
    try:
        if match.group("ymd"):
            return _dt.date(int(match["y1"]), int(match["m1"]), int(match["d1"]))
        if match.group("dmy"):
            a, b, year = int(match["a2"]), int(match["b2"]), _year(match["y2"])
            month, day = (b, a) if match["s2"] == "." or a > 12 else (a, b)
            return _dt.date(year, month, day)
        if match.group("text"):
            return _dt.date(int(match["y3"]), _MONTHS.index(_full(match["m3"])) + 1, int(match["d3"]))
        return _dt.date(int(match["y4"]), _MONTHS.index(_full(match["m4"])) + 1, int(match["d4"]))
    except (ValueError, TypeError):
        return None


def _year(text: str) -> int:
    """A written year; two digits mean 19xx or 20xx, whichever is not in the future."""
    if len(text) == 4:
        return int(text)
    now = _dt.date.today().year % 100
    return 2000 + int(text) if int(text) <= now else 1900 + int(text)


def _full(month: str) -> str:
    prefix = month[:3].lower()
    return next(m for m in _MONTHS if m.startswith(prefix))
