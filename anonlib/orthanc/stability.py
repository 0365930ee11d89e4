"""When a study counts as whole: Orthanc's ``IsStable``, and a quiet time that survives restarts.

Orthanc keeps its stability timers in memory. After a restart (or a crash) it reports every study
as ``IsStable: true`` at once — also one whose sender was cut off a second earlier and is about to
send the rest. So a study counts as stable only when Orthanc says so **and** its ``LastUpdate``
is at least the node's ``StableAge`` old by the node's own clock (``GET /tools/now-local``, the
same local time ``LastUpdate`` is written in). With ``stable_age`` 0 only ``IsStable`` counts.
"""

from __future__ import annotations

import datetime

__all__ = ["orthanc_time", "is_settled"]

_FORMAT = "%Y%m%dT%H%M%S"


def orthanc_time(value: str) -> datetime.datetime | None:
    """Orthanc's ``YYYYMMDDTHHMMSS`` (local time, as in ``LastUpdate``); None if unreadable."""
    try:
        return datetime.datetime.strptime(value.strip()[:15], _FORMAT)
    except ValueError:
        return None


def is_settled(is_stable: bool, last_update: str, now: str, stable_age: float) -> bool:
    """Orthanc's ``IsStable`` and, when ``stable_age`` > 0, ``now - last_update >= stable_age``
    (``now`` from the node's ``/tools/now-local``). A time that cannot be read is not settled."""
    if not is_stable:
        return False
    if stable_age <= 0:
        return True
    updated, current = orthanc_time(last_update), orthanc_time(now)
    if updated is None or current is None:
        return False
    return (current - updated).total_seconds() >= stable_age
