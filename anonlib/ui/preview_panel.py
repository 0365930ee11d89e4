"""The preview panel: what de-identification would do to one study (a dry run)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.common import show_error, study_options
from anonlib.ui.render import diff_html, show, show_html, table_html

if TYPE_CHECKING:

    from anonlib.sources.base import Source

__all__ = ["PreviewPanel", "show_preview"]


class PreviewPanel(w.VBox):  # type: ignore[misc]
    """Pick a study, see what de-identification would do to it (a dry run)."""

    def __init__(self, src: Source, *, db_url: str, profile: str = "") -> None:
        self.src, self.db_url, self.profile = src, db_url, profile
        self.picker = w.Dropdown(description="Study", options=study_options(src), layout=w.Layout(width="70%"))
        self.picker.add_class("anonlib-study-picker")
        self.button = w.Button(description="Preview de-identification", button_style="primary",
                               layout=w.Layout(width="auto"))
        self.button.add_class("anonlib-preview-button")
        self.out = w.Output()
        self.button.on_click(lambda _b: self.run())
        super().__init__([w.HBox([self.picker, self.button]), self.out])

    def run(self) -> None:
        self.out.clear_output()
        with self.out:
            try:
                preview = workflows.preview(self.src, self.picker.value, db_url=self.db_url, profile=self.profile)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                show_error(self.out, exc)
                return
            show_preview(preview)


def show_preview(preview: Any) -> None:
    """Identity, summary, the diff and the images of a :class:`~anonlib.preview.StudyPreview`."""
    show_html(f"<h4>Patient identity</h4><p>{preview.identity.describe()}</p>")
    show_html("<h4>All instances</h4>" + table_html(preview.summary))
    show_html("<h4>Diff of one instance</h4>" + diff_html(preview.diff))
    figure = preview.figure()
    if figure is not None:
        show(figure)
