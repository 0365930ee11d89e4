"""The audit's memory stays flat in the size of the set (issue 12): a long text of the output
tree (a manifest of thousands of rows) is searched in pieces, and finds exactly what the whole
text finds."""

from __future__ import annotations

import random

import pytest

from anonlib.audit import leaks
from anonlib.audit.matching import Matcher, scan


def _found(matcher: Matcher, text: str, reach: int) -> tuple[set[str], set[str]]:
    whole = matcher.categories(scan("place", text))
    pieces: set[str] = set()
    for piece in leaks._pieces(text, reach):
        pieces |= matcher.categories(scan("place", piece))
    return whole, pieces


def test_pieces_find_exactly_what_the_whole_text_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values of several words split by line breaks at the pieces' edges, dotted numbers,
    control characters: with the matcher's reach, no difference; without it, values spanning
    an edge are lost (so the test can tell)."""
    monkeypatch.setattr(leaks, "PIECE", 16)
    words = ["john", "smith", "anne", "marie", "zoë", "muller", "2.25.1234567890.5", "x", "jo\x02hn", "mrn884213"]
    matcher = Matcher.of({"A names": {"John Smith"}, "B address": {"Anne Marie Zoe Muller"},
                          "H record numbers": {"MRN884213"}}, {"2.25.1234567890.5"})
    rng = random.Random(2)
    lost = 0
    for _ in range(3000):
        text = "".join(rng.choice(words) + rng.choice([" ", "\n", "\n\n", "", "^"]) for _ in range(rng.randint(10, 60)))
        whole, pieces = _found(matcher, text, matcher.reach())
        assert whole == pieces, repr(text)
        blind, cut = _found(matcher, text, 0)
        lost += blind != cut
    assert lost > 50


def test_a_long_manifest_is_searched_in_pieces() -> None:
    rows = [f"ANON{n:06d}/2.25.{n}{n}{n}/{n}.dcm,ANON{n:06d},20240109,written" for n in range(20000)]
    rows[12345] = rows[12345] + ",Smith\nJohn"
    text = "\n".join(rows)
    assert len(text) > 4 * leaks.PIECE
    assert sum(1 for _ in leaks._pieces(text, 3)) > 4
    matcher = Matcher.of({"A names": {"John Smith", "Smith John"}})
    findings = leaks.find_leaks_in_names(matcher, {"content of csv file, entry 1": text})
    assert [f.category for f in findings] == ["A names"]
