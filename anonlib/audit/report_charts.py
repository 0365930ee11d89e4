"""Charts of audit findings as inline SVG: text as SVG text in the reader's own sans-serif font
(nothing embedded or fetched), no namespace URLs,
no scripts, so the report renders offline in any browser and prints as vector graphics."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from anonlib.audit.model import VERDICTS

__all__ = ["stacked_bars", "COLOURS", "VERDICTS"]

COLOURS: Mapping[str, str] = {"fail": "#c0392b", "incomplete": "#7d3c98", "warn": "#e67e22",
                              "expected": "#2e86c1", "pass": "#27ae60", "skipped": "#aab7b8"}
_STYLE: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "anonlib-audit", "font.size": 9.0,
                          "text.parse_math": False}
_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)
_NAMESPACE = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_DECIMAL = re.compile(r"\d+\.\d{3,}")
#: matplotlib's clip-path and marker ids (a letter and 10 hex digits), rewritten without digits.
_HASHED_ID = re.compile(r"\b[pm][0-9a-f]{10}\b")
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def _inline(figure: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1))
    svg = _NAMESPACE.sub("", svg).replace("xlink:href=", "href=")
    svg = _DECIMAL.sub(_short, svg)
    svg = _HASHED_ID.sub(lambda m: m.group(0).translate(_LETTERS), svg)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL).strip()


def _short(match: re.Match[str]) -> str:
    """A coordinate to 2 decimals: enough for a chart. With the ids rewritten, the SVG holds no
    long run of digits that a reader grepping the report for an identifying number could hit."""
    return f"{float(match.group(0)):.2f}".rstrip("0").rstrip(".")


def stacked_bars(rows: Sequence[tuple[str, Mapping[str, int]]], *, title: str,
                 verdicts: Sequence[str] = VERDICTS) -> str:
    """Horizontal bars, one per ``(label, {verdict: count})`` row, stacked by verdict, as SVG."""
    labels = [label for label, _ in rows] or ["(no findings)"]
    counts = [counts for _, counts in rows] or [{}]
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(7.5, 0.9 + 0.28 * len(labels)))
        axes = figure.subplots()
        left = [0.0] * len(labels)
        positions = list(range(len(labels)))
        for verdict in verdicts:
            widths = [float(row.get(verdict, 0)) for row in counts]
            if any(widths):
                axes.barh(positions, widths, left=left, color=COLOURS.get(verdict, "#7f8c8d"),
                          label=verdict, height=0.7)
                left = [a + b for a, b in zip(left, widths)]
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
        axes.set_xlabel("findings")
        axes.set_title(title, loc="left")
        axes.spines[["top", "right"]].set_visible(False)
        if any(left):
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        return _inline(figure)
