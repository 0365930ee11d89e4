"""Collect the identifying values of one instance (at any depth) for text scrubbing.

Which attributes identify is data (``anonlib/data/identifiers.yaml``); besides those, every
person name (VR PN) at any depth counts as a name. An attribute the plan keeps on purpose (K)
is not collected: what the site chose to keep is not scrubbed from text either.

* **Names** are split into their parts on everything that is not a letter or digit — hyphens,
  spaces, apostrophes, commas, periods and the PN separators ``^`` and ``=`` — after folding
  (:mod:`anonlib.engine.fold`); a part of fewer than two characters is dropped. The name's
  family, given and middle components (not its prefix and suffix) count; ``O'Brien`` also
  gives ``OBrien``, and a name in a script written without spaces (Han, kana, Hangul) also its
  components run together (``김철수``, so that a one-syllable family name goes with it). Folding drops control characters (``Zorba\x01lina`` is ``Zorbalina``);
  a line break or tab inside a name is read both as a separator and as nothing.
* **IDs** (3 characters or more) also give their **stems**, the shorter forms scrubbed from
  free text: each leading part that ends where letters turn into digits or before a ``-``,
  ``_`` or ``.``, when it has at least 4 characters and a letter, and either it or the rest
  has a digit — ``CTSCAN`` of ``CTSCAN01``, ``CTSCAN01`` of ``CTSCAN01-B``, but nothing of
  ``MAIN-CT``, of ``20230415`` or of an ID written with spaces (see
  :mod:`anonlib.engine.known` for how they match).
"""

from __future__ import annotations

import re
from functools import cache

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from anonlib.data import read_yaml
from anonlib.engine.fold import fold
from anonlib.engine.known import unspaced
from anonlib.engine.text import Identifiers
from anonlib.engine.values import strings_of
from anonlib.engine.vr import element_vr, raw_elements
from anonlib.profile.plan import Plan

__all__ = ["collect_identifiers", "retained_identifiers", "identifier_tags", "name_parts", "id_stems"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAME_SPLIT = re.compile(r"[\W_]+")
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f]")  # white-space controls
_SPLIT_ADDRESS = re.compile(r"\s*[\^,;\r\n]+\s*")
_PHONE_SPLIT = re.compile(r"[\\;,\r\n]+|\s{2,}")
_STEM_CUT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?=[-_.])")
_STRIP = " \x00\t\n\r\x0b\x0c"


@cache
def identifier_tags() -> dict[int, str]:
    """tag → kind (names, ids, phones, telecom, addresses, institutions, dates)."""
    data = read_yaml("identifiers.yaml")
    out: dict[int, str] = {}
    for kind, keywords in data.items():
        for word in keywords:
            tag = tag_for_keyword(word)
            if tag is not None:
                out[int(tag)] = kind
    return out


def name_parts(value: str) -> set[str]:
    """The folded parts of a person name by which it is found in text (module docstring)."""
    parts: set[str] = set()
    for group in value.split("="):
        components = [c.strip(_STRIP) for c in group.split("^")[:3]]  # not prefix/suffix
        for component in components:
            variants = {fold(component)}  # other control characters are dropped by folding
            if _BREAKS.search(component):
                variants.add(fold(_BREAKS.sub("", component)))
            for variant in variants:
                parts.update(p for p in _NAME_SPLIT.split(variant) if len(p) >= 2)
                if _APOSTROPHES.search(variant):
                    parts.update(p for p in _NAME_SPLIT.split(_APOSTROPHES.sub("", variant))
                                 if len(p) >= 2)
        whole = fold(" ".join(c for c in components if c)).strip()
        if len(whole) >= 2:
            parts.add(whole)
        if unspaced(whole):  # written without a space too: 山田太郎, 김철수
            parts.add(whole.replace(" ", ""))
    return parts


def id_stems(value: str) -> set[str]:
    """The leading parts of an ID scrubbed from free text as its shorter forms (module
    docstring)."""
    stems: set[str] = set()
    if len(value) < 5 or value.isalpha() or value.isdigit() or any(c.isspace() for c in value):
        return stems  # too short, no cut point, or written in words ("CT ROOM 2"): no stem
    for cut in _STEM_CUT.finditer(value):
        head, rest = value[:cut.start()].rstrip("-_."), value[cut.start():]
        if (len(head) >= 4 and any(c.isalpha() for c in head)
                and any(c.isdigit() for c in head + rest)):
            stems.add(head)
    return stems


def _add(found: Identifiers, kind: str, value: str) -> None:
    value = value.strip(_STRIP)
    if len(value) < 2:
        return
    if kind == "names":
        found.names |= name_parts(value)
    elif kind == "ids":
        if len(value) >= 3:
            found.tokens.add(value)
            found.stems |= id_stems(fold(value))
    elif kind in ("phones", "telecom"):
        found.tokens.update(_EMAIL.findall(value))
        for piece in _PHONE_SPLIT.split(_EMAIL.sub(" ", value)):
            if sum(ch.isdigit() for ch in piece) >= 5:
                found.tokens.add(piece.strip())
    elif kind == "addresses":
        found.phrases.add(value)
        found.tokens.update(p for p in _SPLIT_ADDRESS.split(value) if len(p) >= 3)
    elif kind == "institutions":
        found.phrases.add(value)
    elif kind == "dates":
        found.dates.add(value)


_WANTED: dict[str, tuple[dict[int, str], frozenset[int]]] = {}


def _wanted(plan: Plan) -> tuple[dict[int, str], frozenset[int]]:
    """Identifier attributes the plan does not keep on purpose, and the attributes it keeps
    (cached per plan)."""
    found = _WANTED.get(plan.fingerprint)
    if found is None:
        kept = frozenset(tag for tag, rule in plan.rules.items() if rule.code == "K")
        found = _WANTED[plan.fingerprint] = (
            {tag: kind for tag, kind in identifier_tags().items() if tag not in kept}, kept)
    return found


_RETAINED: dict[str, frozenset[int]] = {}


def retained_identifiers(plan: Plan) -> frozenset[int]:
    """Identifying attributes (identifier attributes, person names) that the plan keeps on
    purpose (an option or the site profile says K): kept as they are, never scrubbed — a site
    that keeps PatientName keeps it, even where its parts are also written elsewhere (cached
    per plan: every instance's walk asks)."""
    found = _RETAINED.get(plan.fingerprint)
    if found is None:
        _, kept = _wanted(plan)
        found = _RETAINED[plan.fingerprint] = frozenset(
            tag for tag in kept if tag in identifier_tags() or _dictionary_vr(tag) == "PN")
    return found


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def collect_identifiers(ds: Dataset, plan: Plan) -> Identifiers:
    """Every identifying value in ``ds`` whose attribute the plan does not keep on purpose
    (an attribute retained by an option or the site profile is not scrubbed from text)."""
    wanted, kept = _wanted(plan)
    found = Identifiers()
    _collect(ds, wanted, kept, found)
    return found


def _collect(ds: Dataset, wanted: dict[int, str], kept: frozenset[int], found: Identifiers) -> None:
    for tag in list(raw_elements(ds)):
        # Identifier attributes are public; of private elements only person names (their VR
        # known from the file or the private dictionary) count, at any depth: a private
        # element is removed, but the name it held may be typed into kept free text too.
        kind = None if (tag >> 16) % 2 else wanted.get(tag)
        vr = element_vr(ds, tag) if kind is None else ""
        if kind is None and vr == "PN" and tag not in kept:
            kind = "names"
        if kind is not None:
            try:
                value = ds[tag].value
            except Exception:  # noqa: BLE001 - an unreadable value identifies no one
                continue
            for text in strings_of(value):
                _add(found, kind, text)
            continue
        if vr == "SQ":
            for item in ds[tag].value or []:
                if isinstance(item, Dataset):
                    _collect(item, wanted, kept, found)
