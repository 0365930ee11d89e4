"""Where a study job's time goes: wall time per named phase, logged as one PHI-free line.

The study job times its phases (stability, fetch, de-identify, audit gate, upload, ...) with a
:class:`PhaseTimer` and logs them on the ``anonlib.phases`` logger at INFO. A worker shows them
when ``ANONLIB_PHASE_TIMES=1`` (:func:`enable_from_env`); ``bench/constellation.py`` sums them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["PhaseTimer", "LOGGER", "enable_from_env", "parse_line"]

LOGGER = "anonlib.phases"
_LINE = re.compile(r"\bphases: (total .*)$")
_ITEM = re.compile(r"([a-z][a-z_-]*) (\d+(?:\.\d+)?)")


class PhaseTimer:
    """Seconds per phase, in the order first seen; a phase entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def describe(self) -> str:
        """``total 1.234 stability 0.010 fetch 0.200 ...`` (seconds)."""
        total = time.perf_counter() - self._started
        return " ".join([f"total {total:.3f}", *(f"{name} {s:.3f}" for name, s in self.seconds.items())])

    def log(self, what: str) -> None:
        """One INFO line on :data:`LOGGER`: ``<what>: phases: total ... <phase> <s> ...``."""
        logger = logging.getLogger(LOGGER)
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s: phases: %s", what, self.describe())


def enable_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Log the phases (INFO on :data:`LOGGER`) when ``ANONLIB_PHASE_TIMES=1``."""
    if (os.environ if environ is None else environ).get("ANONLIB_PHASE_TIMES", "") != "1":
        return False
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    return True


def parse_line(line: str) -> dict[str, float] | None:
    """The phases of one logged line (None for any other line)."""
    found = _LINE.search(line)
    if found is None:
        return None
    return {name: float(value) for name, value in _ITEM.findall(found.group(1))}
