"""Action codes (PS3.15 Table E.1-1a, plus anonlib's own) and how compound codes resolve by Type.

The table of codes is data (``ps3.15_table_e1-1a_action_codes.csv``); this module checks that
every code the profile table uses is one it knows, so an unknown code fails when the plan is
built, not halfway through a study.
"""

from __future__ import annotations

import csv
import io
from functools import cache

from anonlib.data import read_verified
from anonlib.errors import ConfigError

__all__ = ["ANONLIB_CODES", "ANONLIB_MEANINGS", "all_codes", "check_code", "code_meanings", "resolve",
           "standard_code_table"]

#: Codes anonlib adds on top of the standard ones, with what each means.
ANONLIB_MEANINGS = {"P": "Replace with the patient's pseudonym from the lookup store (anonlib's own code)"}
ANONLIB_CODES = frozenset(ANONLIB_MEANINGS)


@cache
def standard_code_table() -> dict[str, str]:
    """code → resolution text, from Table E.1-1a."""
    text = read_verified("ps3.15_table_e1-1a_action_codes.csv").decode("utf-8")
    return {row["code"]: row["resolution_by_attribute_type"] for row in csv.DictReader(io.StringIO(text))}


@cache
def code_meanings() -> dict[str, str]:
    """code → what it means: Table E.1-1a's (its ``meaning`` column) and anonlib's own."""
    text = read_verified("ps3.15_table_e1-1a_action_codes.csv").decode("utf-8")
    return {**{row["code"]: row["meaning"] for row in csv.DictReader(io.StringIO(text))}, **ANONLIB_MEANINGS}


@cache
def all_codes() -> frozenset[str]:
    """Every known action code: Table E.1-1a's and anonlib's own (read on first use)."""
    return frozenset(standard_code_table()) | ANONLIB_CODES


def check_code(code: str, where: str) -> str:
    """``code`` if it is a known action code; :class:`ConfigError` naming ``where`` otherwise."""
    known = all_codes()
    if code not in known:
        raise ConfigError(f"{where}: unknown action code {code!r} (known: {sorted(known)})")
    return code


def strength(type_: str | None) -> int:
    """1, 2 or 3 for a PS3.3 Type (1C/2C count as 1/2: the attribute is present, so its condition
    is taken to hold); 3 when the attribute is not defined at that place in the IOD."""
    if not type_:
        return 3
    return {"1": 1, "2": 2}.get(type_[0], 3)


def resolve(code: str, type_: str | None) -> str:
    """The single action a compound code means for an attribute of PS3.3 Type ``type_``.

    Follows Table E.1-1a (Z/D, X/Z, X/D, X/Z/D, X/Z/U*). Where the table's letters do not cover
    the Type (X/D on a Type 2 attribute, X/Z on a Type 1), the nearest letter that keeps the IOD
    valid is used: D for Type 1, Z (else D) for Type 2. ``X/Z/U*`` on Type 1 becomes K: the
    Sequence is kept and the UIDs inside are replaced like every other UID.
    """
    if "/" not in code:
        return code
    letters = code.replace("*", "").split("/")
    level = strength(type_)
    if level == 3:
        return "X" if "X" in letters else ("Z" if "Z" in letters else letters[0])
    if level == 2:
        return "Z" if "Z" in letters else "D"
    if "U" in letters:
        return "K"
    return "D"
