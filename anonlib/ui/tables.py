"""How a table's cells read: one formatting for the plain HTML tables and the interactive ones.

:func:`display_frame` turns any of anonlib's tables into the frame that is shown: readable
headers (``patient_id`` → "Patient ID"), DICOM dates ``20210120`` as ``2021-01-20`` (times and
date-times likewise), person names ``Family^Given^Middle`` as ``Family, Given Middle``, and long
UIDs (or Orthanc IDs) as a short digest with the full value in a ``title`` attribute (shown on
hover). Every text cell is escaped HTML; counts stay numbers (so they sort as numbers).

A column's kind comes from the column-name conventions of :mod:`anonlib.sources.base` and the
other tables (``*_date``, ``*_time``, ``*_name``, ``*uid``, the ``study`` / ``series`` keys)
and a value is changed only when it has the shape of its kind: an accession number, a
pseudonym or a file path is shown as it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Kind", "column_kind", "header_label", "format_value", "cell_html", "display_frame", "interactive_table",
           "short_uid", "study_label", "INTERACTIVE_CSS"]

Kind = Literal["uid", "date", "time", "datetime", "name", "number", "text"]

#: Words of a header shown in capitals.
_ACRONYMS = {"id", "uid", "sop", "vr", "ct", "mr", "url", "csv", "ocr", "dt", "da", "tm", "pn"}
#: The tables' key columns that hold a UID (folders) or an Orthanc ID (nodes).
_KEY_COLUMNS = {"study", "series", "patient", "sop", "instance_uid", "study_uid", "series_uid", "sop_uid"}
#: Digits of a UID shown before and after the ellipsis.
HEAD, TAIL = 8, 6

_UID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")
_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")  # and ACR-NEMA's YYYY.MM.DD
_TM = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_DT = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?")


def header_label(column: object) -> str:
    """A readable header: ``patient_id`` → "Patient ID", ``pixel stage`` → "Pixel Stage"."""
    words = [w for w in re.split(r"[_\s]+", str(column)) if w]
    return " ".join(w.upper() if w.lower() in _ACRONYMS else w[:1].upper() + w[1:] for w in words) or str(column)


def column_kind(column: object, values: pd.Series | None = None) -> Kind:
    """The kind of a column, from its name (and, for numbers, its dtype)."""
    name = str(column).lower().strip()
    if values is not None and values.dtype.kind in "iuf":
        return "number"
    if name in _KEY_COLUMNS or name.endswith("uid"):
        return "uid"
    if name.endswith("datetime"):
        return "datetime"
    if name.endswith("date") or name.startswith("date"):
        return "date"
    if name.endswith("_time") or name == "time":
        return "time"
    if name.endswith("_name") and name not in {"file_name", "node_name"}:
        return "name"
    return "text"


def short_uid(value: str) -> str:
    """A long UID or Orthanc ID as ``first 8 … last 6`` (also after the ``~study:`` of the
    patient key of a study without PatientID); anything else unchanged."""
    prefix, _, rest = value.partition(":")
    if prefix == "~study" and rest:
        return f"~study:{short_uid(rest)}"
    if len(value) > HEAD + TAIL + 3 and (_UID.fullmatch(value) or _ORTHANC_ID.fullmatch(value)):
        return f"{value[:HEAD]}…{value[-TAIL:]}"
    return value


def _date(value: str) -> str:
    found = _DA.fullmatch(value)
    return "-".join(found.groups()) if found else value


def _time(value: str) -> str:
    found = _TM.fullmatch(value)
    if not found or int(found[1]) > 23:
        return value
    hh, mm, ss, fraction = found.groups()
    return ":".join(p for p in (hh, mm, ss) if p) + (fraction or "")


def _datetime(value: str) -> str:
    found = _DT.fullmatch(value)
    if not found:
        return _date(value)
    year, month, day, hh, mm, ss, fraction, zone = found.groups()
    clock = ":".join(p for p in (hh, mm or "00", ss) if p) + (fraction or "")
    return f"{year}-{month}-{day} {clock}" + (f" {zone}" if zone else "")


def _person(value: str) -> str:
    """``Family^Given^Middle^Prefix^Suffix`` → ``Family, Prefix Given Middle, Suffix``; each
    component group (alphabetic = ideographic = phonetic) formatted alike."""
    if "^" not in value:
        return value
    groups = []
    for group in value.split("="):
        family, given, middle, prefix, suffix = ([p.strip() for p in group.split("^")] + [""] * 5)[:5]
        rest = " ".join(p for p in (prefix, given, middle) if p)
        text = ", ".join(p for p in (family, rest, suffix) if p)
        groups.append(text)
    return " = ".join(g for g in groups if g)


_FORMATS: dict[Kind, Callable[[str], str]] = {
    "date": _date, "time": _time, "datetime": _datetime, "name": _person, "uid": short_uid}


def study_label(record: Mapping[str, object]) -> str:
    """How a study is named in pickers and result tables, from a row of a source's ``studies()``:
    ``2021-01-20 · CT/MR · description`` (its date read as the tables show it; no patient name)."""
    return (f"{format_value('date', record['study_date']) or 'no date'} · {record['modalities']}"
            f" · {record['description'] or '-'}")


def format_value(kind: Kind, value: object) -> str:
    """The text shown for ``value`` in a column of ``kind`` (not escaped)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    return _FORMATS.get(kind, str)(text.strip() if kind in _FORMATS else text)


def cell_html(kind: Kind, value: object) -> str:
    """One cell as escaped HTML; a shortened UID keeps its full value in ``title``."""
    shown = format_value(kind, value)
    full = "" if value is None else str(value).strip()
    if kind == "uid" and shown != full:
        return f'<span class="anonlib-uid" title="{html.escape(full, quote=True)}">{html.escape(shown)}</span>'
    return html.escape(shown)


def display_frame(frame: pd.DataFrame, *, max_rows: int | None = None) -> pd.DataFrame:
    """``frame`` as shown: readable headers, every text cell escaped HTML (formatted by its
    column's kind), number columns kept as numbers. The index is dropped."""
    import pandas as pd

    rows = frame if max_rows is None else frame.head(max_rows)
    data: dict[str, pd.Series] = {}
    labels: list[str] = []
    for column in rows.columns:
        values = rows[column]
        kind = column_kind(column, values)
        label = header_label(column)
        while label in labels:  # two columns reading alike stay two columns
            label += " "
        labels.append(label)
        if kind == "number":
            data[label] = values.reset_index(drop=True)
        else:
            data[label] = pd.Series([cell_html(kind, v) for v in values], dtype=object)
    return pd.DataFrame(data, columns=labels)


#: CSS of the interactive tables: left-aligned, headers on one line, text wrapping between words.
INTERACTIVE_CSS = """
.itables_anywidget { overflow-x: auto; max-width: 100%; }
table.anonlib-itable th, table.anonlib-itable td { text-align: left !important; vertical-align: top; }
table.anonlib-itable th { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
table.anonlib-itable td { white-space: normal; max-width: 32em; word-break: normal; overflow-wrap: break-word; }
table.anonlib-itable span.anonlib-uid { font-family: monospace; cursor: help; }
"""

#: The search box first (kept on short tables too, where itables' default layout drops it).
LAYOUT = {"topStart": "search", "topEnd": "pageLength", "bottomStart": "info", "bottomEnd": "paging"}


def interactive_table(frame: pd.DataFrame, *, css_class: str = "", page_length: int = 10,
                      caption: str | None = None, select: bool = False) -> Any:
    """``frame`` as an interactive table for JupyterLab — sortable, searchable (one search box
    and a filter per column, under it), paged — with the same cells as :func:`anonlib.ui.render.table_html`
    (:func:`display_frame`). An ``itables.widget.ITable`` (anywidget; DataTables bundled in the
    wheel, so it renders offline). Headless runs use ``table_html`` instead: no widget, no JS.
    ``select``: one row can be clicked; its position in ``frame`` is in the widget's
    ``selected_rows`` (observe it)."""
    from itables.widget import ITable

    classes = " ".join(c for c in ("display compact anonlib-itable", css_class) if c)
    return ITable(display_frame(frame), caption=caption, classes=classes, allow_html=True, showIndex=False,
                  column_filters="footer", pageLength=page_length, lengthMenu=[10, 25, 50, 100],
                  maxBytes=0, css=INTERACTIVE_CSS, layout=LAYOUT, style="table-layout:auto;width:auto;margin:0",
                  select={"style": "single"} if select else False)
