"""HTML building blocks for the audit report: escaped tables, a page shell with inline CSS.

Every piece of text goes through :func:`esc`; the only unescaped markup is what this module and
:mod:`anonlib.audit.report_charts` generate. The page loads nothing: no scripts, stylesheets,
fonts or images from anywhere.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["esc", "table", "page", "badge", "section"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 72em; padding: 0 1em; color: #1c2833; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d5d8dc; padding-bottom: 0.2em;
       margin-top: 1.8em; }
.headline { font-size: 1.6em; font-weight: 700; padding: 0.4em 0.8em; display: inline-block;
       border-radius: 0.3em; color: #fff; }
.headline.pass { background: #27ae60; } .headline.fail { background: #c0392b; }
.headline.incomplete { background: #7d3c98; }
dl.what { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; margin: 0.4em 0 1em; }
dl.what dt { font-weight: 600; } dl.what dd { margin: 0; }
.meta { color: #566573; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #d5d8dc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f3f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path { font-family: Menlo, Consolas, monospace; font-size: 0.95em; word-break: break-all; }
.v-fail, .r-FAIL { color: #c0392b; font-weight: 700; } .v-warn { color: #b9770e; font-weight: 600; }
.v-expected { color: #2e86c1; } .v-pass, .r-PASS { color: #1e8449; font-weight: 600; }
.v-incomplete, .r-INCOMPLETE { color: #7d3c98; font-weight: 700; } .v-skipped, .r-SKIPPED { color: #566573; }
.status { background: #fdfefe; border-left: 4px solid #2e86c1; padding: 0.6em 1em; }
details { margin: 0.5em 0 1em; } summary { cursor: pointer; font-weight: 600; }
.chart svg { max-width: 100%; height: auto; } .note { color: #566573; font-size: 0.88em; }
@media print { details { display: block; } .chart { page-break-inside: avoid; } }
"""


def esc(value: object) -> str:
    """``value`` as HTML text, quotes included."""
    return html.escape(str(value), quote=True)


def _cell(column: str, value: object) -> str:
    text = esc(value)
    if column == "verdict":
        return f'<td class="v-{text}">{text}</td>'
    if column == "result":
        return f'<td class="r-{text}">{text}</td>'
    if column == "path":
        return f'<td class="path">{text}</td>'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{text}</td>'
    return f"<td>{text}</td>"


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *,
          headers: Sequence[str] | None = None) -> str:
    """A table; ``columns`` name the cells' roles (``verdict``, ``path`` ... style them)."""
    head = "".join(f"<th>{esc(name)}</th>" for name in (headers or columns))
    body = "".join("<tr>" + "".join(_cell(c, v) for c, v in zip(columns, row)) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def badge(status: str) -> str:
    """The audit's outcome (PASS, FAIL or INCOMPLETE) as a coloured headline."""
    word = esc(status)
    return f'<p class="headline {word.lower()}">{word}</p>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{esc(title)}</h1>{body}</body></html>\n")
