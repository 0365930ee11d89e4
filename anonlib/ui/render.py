"""HTML rendering of result tables for the widgets (escaped; stable CSS hooks for tests)."""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["table_html", "diff_html", "findings_svg", "show", "show_html", "STYLE"]


def show(obj: object) -> None:
    """IPython's ``display`` (typed). A matplotlib figure is shown as a PNG image: the figures
    anonlib makes are built without pyplot, so IPython's inline backend never sees them."""
    from IPython.display import Image, display

    if type(obj).__name__ == "Figure" and hasattr(obj, "savefig"):
        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
        obj = Image(data=buffer.getvalue(), format="png")  # type: ignore[no-untyped-call]
    display(obj)  # type: ignore[no-untyped-call]


def show_html(text: str) -> None:
    """Display an HTML fragment."""
    from IPython.display import HTML

    show(HTML(text))  # type: ignore[no-untyped-call]

#: Colours of the diff statuses (removed / changed / kept / added); headers never wrap, text wraps
#: between words (a word longer than the cell is broken only as a last resort). JupyterLab's own
#: rule for output tables aligns them right and outranks ``table.anonlib-table td``: the last line.
STYLE = """<style>
table.anonlib-table { border-collapse: collapse; font-size: 12px; }
table.anonlib-table th, table.anonlib-table td { border: 1px solid #ddd; padding: 2px 6px; text-align: left;
  vertical-align: top; }
table.anonlib-table th { background: #f3f4f6; white-space: nowrap; word-break: normal; overflow-wrap: normal; }
table.anonlib-table td { max-width: 32em; white-space: normal; word-break: normal; overflow-wrap: break-word; }
table.anonlib-table span.anonlib-uid { font-family: monospace; cursor: help; }
tr.status-removed td { background: #fde8e8; } tr.status-changed td { background: #fff6dd; }
tr.status-added td { background: #e6f4ea; } tr.status-kept td { color: #555; }
.jp-RenderedHTMLCommon table.anonlib-table th, .jp-RenderedHTMLCommon table.anonlib-table td { text-align: left; }
</style>"""


def table_html(frame: pd.DataFrame, *, css_class: str = "", max_rows: int = 500,
               row_class: str | None = None) -> str:
    """``frame`` as an escaped HTML table, formatted by :func:`anonlib.ui.tables.display_frame`
    (readable headers, dates, names, short UIDs with the full value on hover); ``row_class``
    names a column whose value becomes a ``status-<value>`` class on each row."""
    from anonlib.ui.tables import display_frame

    classes = " ".join(c for c in ("anonlib-table", css_class) if c)
    shown = display_frame(frame, max_rows=max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    marks = [str(v) for v in frame[row_class].head(max_rows)] if row_class else []
    rows = []
    for index, record in enumerate(shown.itertuples(index=False, name=None)):
        cls = f' class="status-{html.escape(marks[index], quote=True)}"' if row_class else ""
        cells = "".join(f"<td>{v if isinstance(v, str) else html.escape(str(v))}</td>" for v in record)
        rows.append(f"<tr{cls}>{cells}</tr>")
    more = f"<p>… {len(frame) - max_rows} more rows</p>" if len(frame) > max_rows else ""
    return f'{STYLE}<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{more}'


def diff_html(diff: pd.DataFrame, *, max_rows: int = 1000) -> str:
    """The de-identification diff, removed / changed / kept / added rows coloured."""
    return table_html(diff, css_class="anonlib-diff-table", max_rows=max_rows, row_class="status")


def findings_svg(result: object) -> str:
    """An inline SVG chart of an audit's findings by check and category (offline, no script)."""
    from anonlib.audit.model import VERDICTS
    from anonlib.audit.report_charts import stacked_bars

    summary = result.summary()  # type: ignore[attr-defined]
    rows: list[tuple[str, dict[str, int]]] = [
        (f"{r['check']} / {r['category']}", {str(v): int(r[v]) for v in VERDICTS}) for r in summary.to_dict("records")]
    return stacked_bars(rows, title="Findings by check and category")
