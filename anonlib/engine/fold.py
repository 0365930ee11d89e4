"""Folding text for matching: accents, compatibility forms and control characters away.

A value written as ``José``, ``Jose``, ``JOSE``, ``Ｊｏｓｅ`` or ``Jo\\x01se`` is the same value
for the scrubber. :func:`fold` maps a text to its matching form, one character at a time:

* compatibility decomposition (NFKD) with the combining marks dropped — accents go, ligatures
  and full-width forms become their plain letters (``é`` → ``e``, ``ﬁ`` → ``fi``); the Latin
  letters without a decomposition are spelled out (``ß`` → ``ss``, ``ø`` → ``o``, ``æ`` →
  ``ae``, ``ł`` → ``l``);
* control and format characters (``\\x00``, ``\\x01``, soft hyphen, zero-width space) are
  dropped, except the white-space ones (tab, CR, LF...), which still separate words;
* Hangul syllables are kept whole (decomposed into jamo a one-syllable family name would look
  like a two-letter word and match inside other words).

:func:`fold_indexed` also returns, for each folded character, the index of the original
character it came from, so that a match found in the folded text replaces the right span of
the original.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["fold", "fold_indexed", "is_plain"]

#: Anything but printable ASCII and the white-space controls (tab, LF, VT, FF, CR, FS..US).
_NOT_PLAIN = re.compile(r"[^\t\n\v\f\r\x1c-\x7e]")


#: Latin letters that have no decomposition, written as people type them without the key.
_LETTERS = {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
            "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH",
            "ı": "i"}


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if "\uac00" <= ch <= "\ud7a3":  # Hangul syllables stay whole
        return ch
    if ch in _LETTERS:
        return _LETTERS[ch]
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf"):
        return ch if ch.isspace() else ""
    if category.startswith("M"):
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", ch):
        kind = unicodedata.category(part)
        if not kind.startswith("M") and (kind not in ("Cc", "Cf") or part.isspace()):
            out.append(part)
    return "".join(out)


def is_plain(text: str) -> bool:
    """True when folding leaves ``text`` as it is (printable ASCII, spaces and line breaks)."""
    return _NOT_PLAIN.search(text) is None


def fold(text: str) -> str:
    """``text`` in its matching form (see the module docstring)."""
    if is_plain(text):
        return text
    return "".join(_fold_char(ch) for ch in text)


def fold_indexed(text: str) -> tuple[str, list[int] | None]:
    """The folded text and, unless it is ``text`` itself (index ``None``), the index in
    ``text`` of each folded character."""
    if is_plain(text):
        return text, None
    out: list[str] = []
    index: list[int] = []
    for position, ch in enumerate(text):
        piece = _fold_char(ch)
        out.append(piece)
        index.extend([position] * len(piece))
    return "".join(out), index
