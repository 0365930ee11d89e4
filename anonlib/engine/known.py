"""Finding known identifying values in text: which written forms match, and where.

Values and text are folded first (:mod:`anonlib.engine.fold`: accents, compatibility forms and
control characters away) and letters match in any case, so ``José`` finds ``JOSE`` and
``Zorba\\x01lina`` finds ``Zorbalina``. Every value matches as a **whole word** — not preceded
or followed by a letter or digit (``_`` separates words, as in ``DOE_J``) and never inside a
dotted number such as a UID or a decimal — and never inside the engine's own placeholders
(``[NAME]``, ``[ID]``...). Where values overlap, the longest wins. By kind:

* **names** (the parts of person names, see :mod:`anonlib.engine.identifiers`): also with a
  plural ending, ``-s`` or ``-es`` (``Zorbalinas``); a possessive needs nothing more, the
  apostrophe already ends the word (``Zorbalina's`` → ``[NAME]'s``). A two-letter part matches
  only as exactly that word (``Li`` never touches ``Lis`` or ``Lidocaine``). A part written in
  a script that does not separate words with spaces (Han, kana, Hangul, Thai) matches anywhere.
* **tokens** (IDs, station names, serial numbers, phone numbers, e-mail, address parts): also in
  a *longer form* — followed directly by a suffix where letters turn into digits or digits into
  letters (``CTSCAN01B``, ``CTS2`` for ``CTS``), and by pieces joined with ``-``, ``_`` or ``.``
  and a letter (``CTSCAN01-B``, ``1234567_2``, ``CTSCAN01.b``, but not the decimal
  ``1234567.5``); a token ending in a letter also with a plural ending. A token followed by
  another letter (``Major`` in ``Majority``) does not match, and a short number (fewer than 6
  digits and no letter, such as a study ID ``123``) matches only exactly.
* **stems** (the leading part of an ID, see :mod:`anonlib.engine.identifiers`: ``CTSCAN`` of
  ``CTSCAN01``): a *shorter form*, matched in free text only (descriptions, comments, SR text),
  as a whole word (with the token suffixes) and in the letter case the ID is written in — so the
  stem ``SCANNER`` of a station ``SCANNER3`` is removed from ``SCANNER ROOM`` but not from ``the
  scanner``.
* **phrases** (institutions, whole addresses) and **dates** (in their common written forms):
  exactly.

Compiled matchers are cached per set of values: the instances of one study share one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from anonlib.dicomvalues import date_forms
from anonlib.engine.dates import parse_da
from anonlib.engine.fold import fold, fold_indexed

__all__ = ["Matcher", "matcher", "stem_matcher", "unspaced"]

#: Scripts written without spaces between words (or with particles glued to names).
_UNSPACED = re.compile("[\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf"
                       "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
_START = r"(?<![^\W_])(?<!\d\.)(?!(?<=\[)(?:NAME|ID|REMOVED|EMAIL|DATE)\])"
_END = r"(?![^\W_])(?!\.\d)"
#: Pieces joined to an ID: ``-`` or ``_`` and letters/digits, or ``.`` and a word that starts
#: with a letter (``.5`` after a number is a decimal, not a suffix).
_JOINED = r"(?:[-_][^\W_]+|\.[^\W\d_][^\W_]*)*"
_PLURAL = r"(?:e?s)?"
_LISTED = 64  # up to this many values, an alternation; more, a trie


def unspaced(value: str) -> bool:
    """True when ``value`` is written in a script without spaces between words."""
    return _UNSPACED.search(value) is not None


def _token_tail(value: str) -> str:
    """The longer forms of a token; none for a short number (under 6 digits, such as a study
    ID ``123``: ``123-125`` or ``123B`` are not forms of it)."""
    if not any(c.isalpha() for c in value) and sum(c.isdigit() for c in value) < 6:
        return ""
    last = value[-1]
    if last.isdigit():
        return r"(?:[^\W\d_][^\W_]*)?" + _JOINED
    if last.isalpha():
        return r"(?:e?s(?![^\W_])|\d[^\W_]*)?" + _JOINED
    return _JOINED


@dataclass(frozen=True)
class Matcher:
    """A compiled set of known values; :meth:`sub` replaces them in text."""

    pattern: re.Pattern[str] | None
    kinds: dict[str, str]  # folded, lower-case value → its replacement kind

    def kind(self, found: str) -> str:
        """The kind of a match: of the longest known value it starts with (a match may carry a
        suffix)."""
        lower = found.lower()
        for end in range(len(lower), 0, -1):
            kind = self.kinds.get(lower[:end])
            if kind is not None:
                return kind
        return "[REMOVED]"

    def sub(self, text: str, replace: Callable[[str], str]) -> str:
        """``text`` with every match replaced by ``replace(kind)``."""
        if self.pattern is None or not text:
            return text
        folded, index = fold_indexed(text)
        if index is None:
            return self.pattern.sub(lambda m: replace(self.kind(m.group(0))), text)
        pieces: list[str] = []
        last = 0
        for match in self.pattern.finditer(folded):
            start, end = index[match.start()], index[match.end() - 1] + 1
            while end < len(text) and unicodedata.category(text[end]).startswith("M"):
                end += 1  # a combining accent belongs to the letter before it
            if start < last:
                continue
            pieces += [text[last:start], replace(self.kind(match.group(0)))]
            last = end
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)


Key = tuple[frozenset[str], ...]


@lru_cache(maxsize=256)
def matcher(key: Key) -> Matcher:
    """The matcher of ``key`` = (names, tokens, phrases, dates, stems), each a set of values as
    collected; stems are left to :func:`stem_matcher`. A date's kind is ``date:<ISO date>``."""
    names, tokens, phrases, dates, _ = key
    kinds: dict[str, str] = {}
    bounded: dict[str, str] = {}  # folded lower-case value → its suffix pattern
    anywhere: dict[str, str] = {}
    for value in phrases:
        folded = fold(value).lower()
        kinds[folded] = "[REMOVED]"
        _add(bounded, folded, "")
    for value in tokens:
        folded = fold(value).lower()
        kinds[folded] = "[ID]"
        _add(bounded, folded, _token_tail(folded))
    for value in names:
        folded = fold(value).lower()
        if len(folded) < 2:
            continue
        kinds[folded] = "[NAME]"
        if unspaced(folded):
            _add(anywhere, folded, "")
        else:
            _add(bounded, folded, _PLURAL if len(folded) >= 3 and folded[-1].isalpha() else "")
    for value in dates:
        day = parse_da(value)
        if day is not None:
            for form in date_forms(day):
                kinds[form] = "date:" + day.isoformat()
                _add(bounded, form, "")
    parts = [f"{_START}(?:{_trie(bounded)}){_END}"] if bounded else []
    if anywhere:
        parts.append(f"(?:{_trie(anywhere)})")
    if not parts:
        return Matcher(None, kinds)
    return Matcher(re.compile("|".join(parts), re.IGNORECASE), kinds)


@lru_cache(maxsize=256)
def stem_matcher(stems: frozenset[str]) -> Matcher:
    """The shorter forms of IDs (free text only), in the letter case they are written in — a
    pattern of its own, small and shared by every instance that has the same IDs, applied after
    :func:`matcher`'s (it never matches inside the placeholders that one wrote)."""
    cased: dict[str, str] = {}
    for value in stems:
        folded = fold(value)
        _add(cased, folded, _token_tail(folded))
    if not cased:
        return Matcher(None, {})
    return Matcher(re.compile(f"{_START}(?:{_trie(cased)}){_END}"), {v.lower(): "[ID]" for v in cased})


def _add(entries: dict[str, str], value: str, tail: str) -> None:
    """Register ``value`` with its suffix pattern (both patterns when it has two kinds)."""
    known = entries.get(value)
    entries[value] = tail if known is None or known == tail else f"(?:{known}|{tail})"


def _trie(entries: dict[str, str]) -> str:
    """One pattern for all of ``entries`` (value → suffix pattern), built as a trie so that a
    text is scanned once whatever the number of values (an alternation of thousands of values
    would be tried one by one at every position); at every branch the longer values are tried
    before a value that ends there, so the longest match wins. A few values are simply listed,
    longest first (quicker to build, as quick to scan)."""
    if len(entries) <= _LISTED:
        ordered = sorted(entries, key=lambda v: (-len(v), v))
        return "|".join(re.escape(v) + entries[v] for v in ordered)
    root: dict[str, Any] = {}
    for value, tail in entries.items():
        node = root
        for ch in value:
            node = node.setdefault(ch, {})
        node[""] = tail  # "" marks the end of a value ("" is never a character key)
    return _node(root)


def _node(node: dict[str, Any]) -> str:
    options = []
    for ch in sorted(k for k in node if k):
        path, child = [ch], node[ch]
        while len(child) == 1 and "" not in child:  # a chain without branches: one literal
            (ch, child), = child.items()
            path.append(ch)
        options.append(re.escape("".join(path)) + _node(child))
    if "" in node:
        options.append(node[""])  # the value ends here: tried after every longer one
    if len(options) == 1:
        return options[0]
    return "(?:" + "|".join(options) + ")"

