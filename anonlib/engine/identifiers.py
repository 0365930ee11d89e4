"""Collect the identifying values of one instance (at any depth) for text scrubbing."""

from __future__ import annotations

import re
from functools import cache

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from anonlib.data import read_yaml
from anonlib.engine.text import Identifiers
from anonlib.engine.values import strings_of
from anonlib.engine.vr import element_vr, raw_elements
from anonlib.profile.plan import Plan

__all__ = ["collect_identifiers", "identifier_tags"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SPLIT_NAME = re.compile(r"[\s,.]+")
_SPLIT_ADDRESS = re.compile(r"\s*[\^,;\r\n]+\s*")
_PHONE_SPLIT = re.compile(r"[\\;,\r\n]+|\s{2,}")


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


def _name_parts(value: str) -> set[str]:
    parts: set[str] = set()
    for group in value.split("="):
        components = group.split("^")[:3]  # family, given, middle (not prefix/suffix)
        for component in components:
            parts.update(p for p in _SPLIT_NAME.split(component.strip()) if len(p) >= 2)
        whole = " ".join(c for c in components if c).strip()
        if len(whole) >= 2:
            parts.add(whole)
    return parts


def _add(found: Identifiers, kind: str, value: str) -> None:
    value = value.strip(" \x00")
    if len(value) < 2:
        return
    if kind == "names":
        found.names |= _name_parts(value)
    elif kind == "ids":
        if len(value) >= 3:
            found.tokens.add(value)
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


_WANTED: dict[str, dict[int, str]] = {}


def _wanted(plan: Plan) -> dict[int, str]:
    """Identifier attributes the plan does not keep on purpose (cached per plan)."""
    found = _WANTED.get(plan.fingerprint)
    if found is None:
        found = _WANTED[plan.fingerprint] = {
            tag: kind for tag, kind in identifier_tags().items()
            if (rule := plan.rule_for(tag)) is None or rule.code != "K"}
    return found


def collect_identifiers(ds: Dataset, plan: Plan) -> Identifiers:
    """Every identifying value in ``ds`` whose attribute the plan does not keep on purpose
    (an attribute retained by an option or the site profile is not scrubbed from text)."""
    wanted = _wanted(plan)
    found = Identifiers()
    _collect(ds, wanted, found)
    return found


def _collect(ds: Dataset, wanted: dict[int, str], found: Identifiers) -> None:
    for tag in list(raw_elements(ds)):
        if (tag >> 16) % 2:
            continue  # identifier attributes are public; private values are removed or scrubbed
        kind = wanted.get(tag)
        if kind is not None:
            try:
                value = ds[tag].value
            except Exception:  # noqa: BLE001 - an unreadable value identifies no one
                continue
            for text in strings_of(value):
                _add(found, kind, text)
            continue
        if element_vr(ds, tag) == "SQ":
            for item in ds[tag].value or []:
                if isinstance(item, Dataset):
                    _collect(item, wanted, found)
