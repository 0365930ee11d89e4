"""Command line interface (placeholder while the core lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("anonlib: not yet implemented", file=sys.stderr)
    return 2
