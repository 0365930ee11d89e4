"""What every panel shares: the source field, the study dropdown's labels, a one-line error."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib.ui.render import show_html

if TYPE_CHECKING:
    from anonlib.sources.base import Source

__all__ = ["SourceField", "error_html", "one_line", "show_error", "study_options"]


def study_options(src: Source) -> list[tuple[str, str]]:
    """(label, study key) for a dropdown: date, modalities, description and patient, the date and
    the name read as the tables show them (``2021-01-20``, ``Family, Given``)."""
    from anonlib.ui.tables import format_value, study_label

    return [(f"{study_label(r)} · {format_value('name', r['patient_name'])}", str(r["study"]))
            for r in src.studies().to_dict("records")]


def error_html(message: str) -> str:
    """``message`` as the panels' red error line (escaped; ``anonlib-error`` for tests)."""
    return f"<p style='color:#b91c1c' class='anonlib-error'>{escape(message)}</p>"


def show_error(out: w.Output, exc: Exception) -> None:
    with out:
        show_html(error_html(f"{type(exc).__name__}: {exc}"))


class SourceField(w.VBox):  # type: ignore[misc]
    """A source field (folder path, constellation node name or Orthanc URL), an "Open" button,
    a one-line error for a source that cannot be opened (never a traceback), and below them the
    panel ``build`` makes for the opened source. The notebook gives the initial source (its
    parameter); the user points the panel elsewhere without editing code."""

    def __init__(self, build: Callable[[Source], w.Widget], initial: str = "", *,
                 opener: Callable[[str], Source] | None = None) -> None:
        from anonlib import workflows

        self.build, self.opener = build, opener or workflows.source
        self.field = w.Text(value=initial, description="Source", placeholder="folder, node name or Orthanc URL",
                            continuous_update=False, layout=w.Layout(width="60%"))
        self.open_button = w.Button(description="Open", button_style="primary")
        self.error = w.HTML()
        self.body = w.VBox([])
        self.src: Source | None = None
        self.open_button.on_click(lambda _b: self.load())
        self.field.observe(lambda _change: self.load(), "value")  # Enter or leaving the field
        super().__init__([w.HBox([self.field, self.open_button]), self.error, self.body])
        self.add_class("anonlib-source")
        self.field.add_class("anonlib-source-field")
        self.open_button.add_class("anonlib-source-open")
        self.error.add_class("anonlib-source-error")
        if initial:
            self.load()

    def load(self) -> None:
        """Open the source in the field and show its panel, or say in one line why not."""
        spec = self.field.value.strip()
        try:
            src = self.opener(spec)
            panel = self.build(src)
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line
            self.error.value = error_html(one_line(exc))
            return
        self.src, self.error.value, self.body.children = src, "", (panel,)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line a user can act on: anonlib's own message as it is (it names the input
    and the reason), anything else with its type first."""
    from anonlib.errors import AnonlibError

    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, AnonlibError) else f"{type(exc).__name__}: {text}"
