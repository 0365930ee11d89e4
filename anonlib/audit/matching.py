"""Finding identifying values in text: the audit's normaliser, tokeniser and needle matcher.

Text is *folded* (case-folded, NFKD with combining marks dropped, so accents and case never hide
a value) and cut into tokens: runs of letters, runs of digits, and single ideographs, kana or
hangul jamo (scripts written without spaces between words). A value of an original becomes a
*needle*: the sequence of its tokens, with, between two of them, whether they were glued
(``MRN123``) or separated (``MRN-123``, ``Smith^John``). A needle matches a run of the text's
tokens with the same gluing (any separator stands for any other), as whole words: a value with
a letter is not found glued to other letters or digits (``Smith2``, ``CT1a``); a number may
touch letters (``MRN123456``) but is not found inside a longer dotted number (``1.2.3`` in
``1.2.3.4``). Names also match with a plural or
possessive ending (``Zorbalinas``, ``Zorbalina's``). Control characters inside a word are
ignored (the text is tokenised with them dropped, and again with them as separators).

Original UIDs are looked up among the text's *dotted numbers* (maximal runs of digits and dots),
so a UID matches only whole, never inside a longer dotted number.

Everything is linear: each text is tokenised once, each token is one dictionary lookup; a
needle's later tokens are compared only where its first token occurred. Needles are built once
(per original, and once for the whole set); texts once per instance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

__all__ = ["Matcher", "Scanned", "Tokens", "fold", "scan", "tokenize", "is_searchable_uid",
           "is_searchable_value", "UID_CATEGORY", "NAME_CATEGORY", "DATE_CATEGORY"]

UID_CATEGORY = "R UIDs"
NAME_CATEGORY = "A names"
DATE_CATEGORY = "C dates"
#: Ideographs, kana, hangul (syllables and the jamo NFKD makes of them): one token per character.
_CJK = ("\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff")
_TOKEN = re.compile(rf"(?P<c>[{_CJK}])|(?P<d>\d+)|[^\W\d_{_CJK}]+")
_DOTTED = re.compile(r"(?<!\d)(?<!\d\.)\d+(?:\.\d+)+")
_UID = re.compile(r"\d+(?:\.\d+){2,}")
#: Control characters dropped inside words (NUL, tab, newlines and the like separate words).
_CONTROLS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f]")
_ALNUM = re.compile(r"[^\W_]")
_LETTER = re.compile(r"[^\W\d_]")
_LETTERS, _DIGITS, _CJK_CHAR = "l", "d", "c"


@cache
def _marks() -> re.Pattern[str]:
    """Every combining mark (canonical combining class other than 0)."""
    ranges: list[str] = []
    start = previous = -2
    for point in range(0x0300, 0x20000):
        if not unicodedata.combining(chr(point)):
            continue
        if point != previous + 1:
            if start >= 0:
                ranges.append(f"{chr(start)}-{chr(previous)}")
            start = point
        previous = point
    ranges.append(f"{chr(start)}-{chr(previous)}")
    return re.compile(f"[{''.join(ranges)}]+")


def fold(text: str, *, drop_controls: bool = True) -> str:
    """``text`` case-folded, without accents (NFKD, combining marks dropped) and, unless told
    otherwise, without the control characters that could sit inside a word."""
    if drop_controls:
        text = _CONTROLS.sub("", text)
    text = text.casefold()
    if not text.isascii():
        text = _marks().sub("", unicodedata.normalize("NFKD", text))
    return text


@dataclass(frozen=True)
class Tokens:
    """The tokens of one folded text, with their kinds and places."""

    text: str
    words: list[str]
    kinds: list[str]
    starts: list[int]
    ends: list[int]

    def glued(self, i: int) -> bool:
        """Whether token ``i`` follows token ``i - 1`` with nothing between them."""
        return self.starts[i] == self.ends[i - 1]

    def dotted_before(self, i: int) -> bool:
        start = self.starts[i]
        return start >= 2 and self.text[start - 1] == "." and self.text[start - 2].isdigit()

    def dotted_after(self, i: int) -> bool:
        end = self.ends[i]
        return end + 1 < len(self.text) and self.text[end] == "." and self.text[end + 1].isdigit()


def tokenize(folded: str) -> Tokens:
    """The tokens of a folded text."""
    words: list[str] = []
    kinds: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _TOKEN.finditer(folded):
        words.append(match.group())
        kinds.append(match.lastgroup or _LETTERS)
        starts.append(match.start())
        ends.append(match.end())
    return Tokens(folded, words, kinds, starts, ends)


@dataclass(frozen=True)
class Scanned:
    """One place of an instance (an element, a blob, a file name), ready to be searched:
    its token lists (none where words are not searched) and its dotted numbers."""

    path: str
    tokens: tuple[Tokens, ...]
    dotted: frozenset[str]
    blob: bool = False


def scan(path: str, text: str, *, words: bool = True, blob: bool = False) -> Scanned:
    """Tokenise ``text`` once. In a blob, control bytes separate words; elsewhere a word with a
    control character in it is tokenised both with it dropped and with it as a separator."""
    dotted = frozenset(_DOTTED.findall(text)) if "." in text else frozenset()
    if not words:
        return Scanned(path, (), dotted, blob)
    if blob or not _CONTROLS.search(text):
        return Scanned(path, (tokenize(fold(text, drop_controls=not blob)),), dotted, blob)
    return Scanned(path, (tokenize(fold(text)), tokenize(fold(text, drop_controls=False))), dotted, blob)


def is_searchable_uid(uid: str) -> bool:
    """Only syntactically valid UIDs of at least 10 characters and 3 components are searched."""
    return len(uid) >= 10 and _UID.fullmatch(uid) is not None


def is_searchable_value(value: str) -> bool:
    """A value of at least 3 characters with a letter or digit; a number (no letter) needs 6
    digits or more (an ID such as 123 cannot be told from an instance number)."""
    value = value.strip(" \x00")
    if len(value) < 3 or not _ALNUM.search(value):
        return False
    return bool(_LETTER.search(value)) or sum(ch.isdigit() for ch in value) >= 6


@dataclass(frozen=True)
class _Needle:
    words: tuple[str, ...]
    kinds: tuple[str, ...]
    glued: tuple[bool, ...]  # per gap between two tokens
    category: str
    name: bool  # plural and possessive endings match too
    blob: bool  # long enough to be searched in binary data (see _long_enough_for_blobs)
    letters: bool  # holds a letter (a word, matched whole), else a number


def _needle(value: str, category: str) -> _Needle | None:
    if not is_searchable_value(value):
        return None
    tokens = tokenize(fold(value))
    if not tokens.words:
        return None
    glued = tuple(tokens.glued(i) for i in range(1, len(tokens.words)))
    return _Needle(tuple(tokens.words), tuple(tokens.kinds), glued, category,
                   category == NAME_CATEGORY, _long_enough_for_blobs(value.strip(" \x00")),
                   any(kind != _DIGITS for kind in tokens.kinds))


def _long_enough_for_blobs(value: str) -> bool:
    """Binary data spells short words by chance: a value is searched there when it has 4 or more
    characters, or 3 outside ASCII (a three-character CJK name — 長谷川, 하늘빛 — is as telling
    as a long Latin one)."""
    return len(value) >= 4 or (len(value) == 3 and len(value.encode("utf-8")) >= 6)


@dataclass
class Matcher:
    """Needles for one set of values (category → values) and UIDs, built once."""

    first: dict[str, list[_Needle]] = field(default_factory=dict)  # by first token
    stems: dict[str, list[_Needle]] = field(default_factory=dict)  # one-word names, for endings
    uids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, values: Mapping[str, Iterable[str]], uids: Iterable[str] = (), *,
           cache: dict[tuple[str, str], _Needle | None] | None = None) -> Matcher:
        """The matcher of ``values`` (category → strings) and ``uids`` (category R UIDs).
        ``cache``: needles already built in this audit (the instances of a series share most
        values), kept by the caller for as long as the audit lasts."""
        matcher = cls(uids=frozenset(u for u in uids if is_searchable_uid(u)))
        seen: set[tuple[tuple[str, ...], tuple[bool, ...], str]] = set()
        built = cache if cache is not None else {}
        for category, strings in values.items():
            for value in sorted(strings):
                key = (value, category)
                needle = built[key] if key in built else built.setdefault(key, _needle(value, category))
                if needle is None or (needle.words, needle.glued, category) in seen:
                    continue
                seen.add((needle.words, needle.glued, category))
                matcher.first.setdefault(needle.words[0], []).append(needle)
                if needle.name and len(needle.words) == 1 and needle.kinds[0] == _LETTERS:
                    matcher.stems.setdefault(needle.words[0], []).append(needle)
        return matcher

    def __bool__(self) -> bool:
        return bool(self.first or self.uids)

    def reach(self) -> int:
        """How many tokens from its first one a match looks at: the longest needle's words and
        the token after it."""
        return 1 + max((len(needle.words) for needles in self.first.values() for needle in needles), default=0)

    def categories(self, place: Scanned) -> set[str]:
        """The categories of the needles found in ``place``."""
        found: set[str] = set()
        if self.uids and not self.uids.isdisjoint(place.dotted):
            found.add(UID_CATEGORY)
        for tokens in place.tokens:
            self._search(tokens, place.blob, found)
        return found

    def _search(self, tokens: Tokens, blob: bool, found: set[str]) -> None:
        first, stems = self.first, self.stems
        for i, word in enumerate(tokens.words):
            candidates = first.get(word)
            if candidates:
                for needle in candidates:
                    if needle.category not in found and (needle.blob or not blob) and _at(tokens, i, needle):
                        found.add(needle.category)
            if stems and word[-1] == "s":
                for stem in (word[:-1], word[:-2] if word.endswith("es") else ""):
                    for needle in stems.get(stem, ()):
                        if needle.category not in found and (needle.blob or not blob) and _edges(tokens, i, i, needle):
                            found.add(needle.category)


def _at(tokens: Tokens, i: int, needle: _Needle) -> bool:
    """Whether ``needle`` (whose first token is token ``i``) occurs at ``i``."""
    count = len(needle.words)
    if i + count > len(tokens.words):
        return False
    for j in range(1, count):
        word, want = tokens.words[i + j], needle.words[j]
        if word != want and not (needle.name and j == count - 1 and word in (want + "s", want + "es")):
            return False
        if _CJK_CHAR not in (needle.kinds[j], needle.kinds[j - 1]) and tokens.glued(i + j) != needle.glued[j - 1]:
            return False
    return _edges(tokens, i, i + count - 1, needle)


def _edges(tokens: Tokens, i: int, last: int, needle: _Needle) -> bool:
    """Whole words: a value with a letter is not found glued to a letter or digit (``Smith2``,
    ``CT1a``); a number (no letter) may touch letters (``MRN123456``) but is not found inside a
    dotted number. Ideographs, kana and hangul have no word boundaries."""
    kinds = tokens.kinds
    if needle.letters:
        if needle.kinds[0] != _CJK_CHAR and i > 0 and tokens.glued(i) and kinds[i - 1] != _CJK_CHAR:
            return False
        if (needle.kinds[-1] != _CJK_CHAR and last + 1 < len(kinds) and tokens.glued(last + 1)
                and kinds[last + 1] != _CJK_CHAR):
            return False
    if needle.kinds[0] == _DIGITS and tokens.dotted_before(i):
        return False
    return not (needle.kinds[-1] == _DIGITS and tokens.dotted_after(last))
