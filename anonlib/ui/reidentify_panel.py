"""The re-identification panel, for authorised users: a pseudonym or a de-identified UID in, its
original out, and the recent access log of the key (who, when, what kind — never a value).

Each lookup opens the lookup store, is recorded in its access log and closes it again
(:func:`anonlib.reidentify.reidentify`); the original is shown in the panel only, never logged.
The access log is an interactive table in the panel (sortable, searchable, paged) and plain HTML
headless.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib.reidentify import SUBSTITUTE_PREFIX, access_rows, accessor, open_key_store, reidentify
from anonlib.store import Original
from anonlib.ui.common import error_html, one_line
from anonlib.ui.render import show_html, table_html
from anonlib.ui.tables import interactive_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KIND_LABELS", "ReidentifyPanel", "access_log", "access_log_html", "lookup_html", "show_access_log",
           "show_lookup"]

#: What the original of each kind of value is called.
KIND_LABELS = {"patient": "Original PatientID", "study": "Original Study Instance UID",
               "instance": "Original SOP Instance UID", "uid": "Original UID"}


def lookup_html(found: Original | None) -> str:
    """The answer of one lookup: the original (in full, escaped) with what it is, or not found."""
    if found is None:
        return ("<p class='anonlib-reid-result anonlib-reid-missing' style='color:#b91c1c'>Not found: no patient "
                "pseudonym or de-identified UID in the lookup store matches (the lookup is logged).</p>")
    issuer = f" (issuer <code>{escape(found.issuer)}</code>)" if found.issuer else ""
    note = (" — the original had no PatientID; this is the key it was given instead"
            if found.kind == "patient" and found.value.startswith(SUBSTITUTE_PREFIX) else "")
    return (f"<p class='anonlib-reid-result'>{escape(KIND_LABELS.get(found.kind, found.kind))}: "
            f"<code class='anonlib-reid-value'>{escape(found.value)}</code>{issuer}{escape(note)}</p>")


_EMPTY_LOG = "<h4>Access log</h4><p class='anonlib-reid-log'>The access log is empty.</p>"


def access_log(db_url: str, limit: int = 20) -> pd.DataFrame:
    """The ``limit`` newest entries of the access log, newest first (no value is in it)."""
    import pandas as pd

    store = open_key_store(db_url or None)
    try:
        rows = access_rows(store.access_log(limit))
    finally:
        store.close()
    return pd.DataFrame(rows)


def _log_heading(entries: int) -> str:
    return f"<h4>Access log (newest {entries})</h4>"


def access_log_html(db_url: str, limit: int = 20) -> str:
    """The ``limit`` newest entries of the access log as a plain HTML table (headless)."""
    log = access_log(db_url, limit)
    if log.empty:
        return _EMPTY_LOG
    return _log_heading(len(log)) + table_html(log, css_class="anonlib-reid-log")


def show_lookup(db_url: str, value: str, user: str = "") -> Original | None:
    """Headless: look ``value`` up (logged as ``user``, else the default accessor) and show it."""
    store = open_key_store(db_url or None)
    try:
        found = reidentify(store, value, accessor(user or None))
    finally:
        store.close()
    show_html(lookup_html(found))
    return found


def show_access_log(db_url: str, limit: int = 20) -> None:
    """Headless: show the access log's ``limit`` newest entries."""
    show_html(access_log_html(db_url, limit))


class ReidentifyPanel(w.VBox):  # type: ignore[misc]
    """A text field, a "Look up" button, the result, and the recent access log."""

    def __init__(self, db_url: str, *, user: str = "", limit: int = 20) -> None:
        self.db_url, self.limit = db_url, limit
        self.field = w.Text(description="Value", placeholder="pseudonym or de-identified UID",
                            layout=w.Layout(width="60%"))
        self.user = w.Text(value=accessor(user or None), description="Who")
        self.button = w.Button(description="Look up", button_style="primary")
        self.result = w.HTML()
        self.access = w.VBox([])  # its heading and an interactive table (or one line)
        self.button.on_click(lambda _b: self.look_up())
        super().__init__([w.HBox([self.field, self.button]), self.user, self.result, self.access])
        self.add_class("anonlib-reidentify")
        self.field.add_class("anonlib-reid-field")
        self.button.add_class("anonlib-reid-button")
        self.result.add_class("anonlib-reid-answer")
        self.access.add_class("anonlib-reid-access")
        self.refresh_log()

    def _error(self, exc: Exception) -> str:
        return error_html(one_line(exc))

    def look_up(self) -> None:
        """Look the field's value up, show the original (or not found), refresh the log."""
        value = self.field.value.strip()
        if not value:
            self.result.value = "<p class='anonlib-reid-result'>Enter a pseudonym or a de-identified UID.</p>"
            return
        try:
            store = open_key_store(self.db_url or None)
            try:
                found = reidentify(store, value, accessor(self.user.value or None))
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line
            self.result.value = self._error(exc)
            return
        self.result.value = lookup_html(found)
        self.refresh_log()

    def refresh_log(self) -> None:
        """Show the recent access log as an interactive table (or in one line why it cannot be read)."""
        try:
            log = access_log(self.db_url, self.limit)
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line
            self.access.children = (w.HTML(self._error(exc)),)
            return
        if log.empty:
            self.access.children = (w.HTML(_EMPTY_LOG),)
        else:
            self.access.children = (w.HTML(_log_heading(len(log))),
                                    interactive_table(log, css_class="anonlib-reid-log"))
