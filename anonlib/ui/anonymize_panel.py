"""The anonymize panel: de-identify studies of a folder, or queue those of an Orthanc node."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.common import show_error, study_options
from anonlib.ui.render import show_html, table_html

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.sources.base import Source

__all__ = ["AnonymizePanel", "show_held"]


class AnonymizePanel(w.VBox):  # type: ignore[misc]
    """Choose studies and de-identify them (folder) or queue them (constellation)."""

    def __init__(self, src: Source, *, db_url: str, output: str, profile: str = "") -> None:
        self.src, self.db_url, self.output, self.profile = src, db_url, output, profile
        self.studies = w.SelectMultiple(description="Studies", options=study_options(src),
                                        layout=w.Layout(width="90%", height="12em"))
        self.button = w.Button(description="Anonymize" if src.kind == "folder" else "Queue",
                               button_style="primary")
        self.jobs = w.Button(description="Job states")
        self.bar = w.IntProgress(min=0, max=1, description="Progress")
        self.out = w.Output()
        self.button.on_click(lambda _b: self.run())
        self.jobs.on_click(lambda _b: self.show_jobs())
        controls = [self.button, self.bar] + ([self.jobs] if src.kind == "orthanc" else [])
        super().__init__([self.studies, w.HBox(controls), self.out])
        self.add_class("anonlib-anonymize")
        self.studies.add_class("anonlib-studies-picker")
        self.button.add_class("anonlib-anonymize-button")

    def _progress(self, done: int, total: int) -> None:
        self.bar.max, self.bar.value = max(total, 1), done

    def run(self) -> None:
        self.out.clear_output()
        with self.out:
            try:
                results = workflows.anonymize(self.src, list(self.studies.value), output=self.output,
                                              db_url=self.db_url, profile=self.profile, progress=self._progress)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                show_error(self.out, exc)
                return
            show_html(table_html(results, css_class="anonlib-results"))

    def show_jobs(self) -> None:
        self.out.clear_output()
        with self.out:
            show_held(workflows.held_studies())
            show_html(table_html(workflows.job_states(), css_class="anonlib-jobs"))


def show_held(held: pd.DataFrame) -> None:
    """The studies the audit gate holds (never delivered), with the reason, or that none is."""
    if held.empty:
        show_html("<p class='anonlib-held-none'>No study is held by the audit gate.</p>")
        return
    show_html(f"<h4 style='color:#b91c1c'>{len(held)} {'study' if len(held) == 1 else 'studies'} held by the audit "
              "gate — not delivered</h4><p>Fix the cause (the reason names the failing or incomplete checks), "
              "then <code>anonlib jobs retry --held</code>.</p>"
              + table_html(held, css_class="anonlib-held"))
