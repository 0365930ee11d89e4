"""PS3.15 Table E.1-1 as data: loaded once from the bundled CSV, checksum-verified."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache

from anonlib.data import manifest, read_verified
from anonlib.errors import StandardDataError
from anonlib.profile.codes import check_code
from anonlib.profile.options import Option

__all__ = ["TableRow", "load_table", "TABLE_FILE", "edition"]

TABLE_FILE = "ps3.15_table_e1-1.csv"
_TAG = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")
OPTION_COLUMNS = tuple(option.column for option in Option)


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1.

    ``kind`` is ``tag`` (one attribute, ``tag`` set), ``repeating`` (a 50xx/60xx pattern:
    ``group`` is the first group of the range, ``element`` the element or None for all) or
    ``private`` (every attribute of an odd group).
    """

    kind: str
    tag: int | None
    group: int | None
    element: int | None
    keyword: str
    name: str
    basic: str
    options: tuple[tuple[str, str], ...]  # (column, code) for every non-empty option cell
    vr: str


def _parse_selector(text: str) -> tuple[str, int | None, int | None, int | None]:
    if text.startswith("(gggg,eeee)"):
        return "private", None, None, None
    match = _TAG.match(text)
    if not match:
        raise StandardDataError(f"{TABLE_FILE}: cannot read tag {text!r}")
    group_text, element_text = match.groups()
    if "x" in group_text.lower():
        group = int(group_text.lower().replace("x", "0"), 16)
        element = None if "x" in element_text.lower() else int(element_text, 16)
        return "repeating", None, group, element
    return "tag", int(group_text + element_text, 16), None, None


@cache
def load_table() -> tuple[TableRow, ...]:
    """Every row of Table E.1-1, with each action code checked."""
    text = read_verified(TABLE_FILE).decode("utf-8")
    rows = []
    for line, record in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        where = f"{TABLE_FILE} line {line}"
        kind, tag, group, element = _parse_selector(record["tag"])
        basic = check_code(record["basic_profile"], where)
        options = tuple(
            (column, check_code(record[column], where)) for column in OPTION_COLUMNS if record[column]
        )
        rows.append(
            TableRow(kind, tag, group, element, record["keyword"], record["name"], basic, options,
                     record["vr"])
        )
    expected = manifest()["files"][TABLE_FILE]["rows"]
    if len(rows) != expected:
        raise StandardDataError(f"{TABLE_FILE}: {len(rows)} rows, expected {expected}")
    return tuple(rows)


def edition() -> str:
    """The PS3.15 edition of the bundled table (for example ``2026d``)."""
    return str(manifest()["files"][TABLE_FILE]["edition"])
