"""The browse panel: filters, the matching studies, a series' thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.common import show_error
from anonlib.ui.render import show, show_html, table_html

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.sources.base import Source

__all__ = ["BrowsePanel"]


class BrowsePanel(w.VBox):  # type: ignore[misc]
    """Filters (patient, date range, modality), the matching studies, a series' thumbnails."""

    def __init__(self, src: Source) -> None:
        self.src = src
        patients = src.patients()
        self.patient = w.Dropdown(description="Patient", options=[("all", "")] + [
            (f"{r['patient_id']} {r['patient_name']}", str(r["patient"])) for r in patients.to_dict("records")])
        self.date_from = w.Text(description="From", placeholder="YYYYMMDD")
        self.date_to = w.Text(description="To", placeholder="YYYYMMDD")
        self.modality = w.Text(description="Modality", placeholder="CT, MR…")
        self.show = w.Button(description="Show studies", button_style="primary")
        self.study = w.Dropdown(description="Study", options=[])
        self.thumbs = w.Button(description="Thumbnails")
        self.out_studies, self.out_series = w.Output(), w.Output()
        self.show.on_click(lambda _b: self.refresh())
        self.thumbs.on_click(lambda _b: self.show_series())
        super().__init__([w.HBox([self.patient, self.modality]), w.HBox([self.date_from, self.date_to]),
                          self.show, self.out_studies, w.HBox([self.study, self.thumbs]), self.out_series])
        self.add_class("anonlib-browse")
        self.study.add_class("anonlib-series-picker")
        self.thumbs.add_class("anonlib-thumbnails-button")
        self.refresh(patients)

    def refresh(self, patients: pd.DataFrame | None = None) -> None:
        """Show the studies matching the filters (``patients``: the patient table just read)."""
        self.out_studies.clear_output()
        try:
            found = workflows.browse(self.src, patient=self.patient.value, date_from=self.date_from.value,
                                     date_to=self.date_to.value, modality=self.modality.value,
                                     patients=patients)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self.out_studies, exc)
            return
        self.study.options = [(f"{r['study_date']} {r['description']}", str(r["study"]))
                              for r in found.studies.to_dict("records")]
        with self.out_studies:
            show_html(table_html(found.studies, css_class="anonlib-studies"))

    def show_series(self) -> None:
        from anonlib.sources.thumbnails import series_figure

        self.out_series.clear_output()
        if not self.study.value:
            return
        with self.out_series:
            series = self.src.series(self.study.value)
            show_html(table_html(series))
            for key in series["series"].head(4):
                show(series_figure(self.src, self.study.value, str(key), max_images=8))
