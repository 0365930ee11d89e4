"""Date arithmetic for DA, DT and AS values, and dates written in free text."""

from __future__ import annotations

import datetime as _dt
import re

from anonlib.dicomvalues import AGE_CAP, age_in_years, parse_da, years_between

__all__ = [
    "parse_da", "shift_day", "shift_da", "shift_dt", "age_in_years", "years_between", "AGE_CAP",
    "is_over_89", "normalize_tm",
]

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def shift_day(day: _dt.date, days: int) -> _dt.date | None:
    """``day`` moved by ``days``; None when that leaves the range of :class:`datetime.date`."""
    try:
        return day + _dt.timedelta(days=days)
    except OverflowError:
        return None


def shift_da(value: str, days: int) -> str | None:
    """``value`` moved by ``days``; None when it is not a valid date (caller replaces it)."""
    day = parse_da(value)
    moved = shift_day(day, days) if day else None
    return moved.strftime("%Y%m%d") if moved and moved.year >= 1 else None


def shift_dt(value: str, days: int) -> str | None:
    """A DT value moved by ``days``, keeping its precision, time and offset; None when invalid.

    A value with only a year (or year and month) is shifted from the middle of that period and
    written back at the same precision.
    """
    match = _DT.match(value.strip())
    if not match:
        return None
    year, month, day, time, offset = match.groups()
    try:
        base = _dt.date(int(year), int(month) if month else 7, int(day) if day else (15 if month else 1))
    except ValueError:
        return None
    moved = shift_day(base, days)
    if moved is None or moved.year < 1:
        return None
    text = f"{moved.year:04d}"
    if month:
        text += f"{moved.month:02d}"
    if day:
        text += f"{moved.day:02d}" + (time or "")
    return text + (offset or "")


def is_over_89(age: float | None) -> bool:
    return age is not None and age >= 90


_TM = re.compile(r"^([01]\d|2[0-3])([0-5]\d)?([0-5]\d|60)?(\.\d{1,6})?$")
_TM_COLONS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d|60)(\.\d{1,6})?)?$")


def normalize_tm(value: str) -> str | None:
    """A TM value in the standard form (``HHMMSS.FFFFFF``); the ACR-NEMA ``HH:MM:SS`` form is
    rewritten; None when the value is not a time at all (the caller replaces it)."""
    text = value.strip()
    if _TM.match(text):
        return text
    match = _TM_COLONS.match(text)
    if match:
        return "".join(part for part in match.groups() if part)
    return None
