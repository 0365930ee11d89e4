"""The browse panel: filters, a per-patient summary, the matching studies (newest first), the
selected study's series with a titled thumbnail strip each, and a slice viewer."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib import workflows
from anonlib.sources.summary import NO_PATIENT_ID, mark_missing_ids, newest_first, patient_summary
from anonlib.ui.common import show_error
from anonlib.ui.render import show, show_html
from anonlib.ui.slice_viewer import SliceViewer
from anonlib.ui.tables import interactive_table

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.sources.base import Source

__all__ = ["BrowsePanel", "series_title", "study_label"]

#: Series of the selected study that get a thumbnail strip (the slice viewer shows any of them).
STRIPS = 4


def series_title(row: dict[str, object]) -> str:
    """``Series 3 · CT · AXIAL 5mm · 120 instances``: what a thumbnail strip shows."""
    count = int(str(row.get("instances") or 0))
    return " · ".join([f"Series {row.get('number') or '?'}", str(row.get("modality") or "no modality"),
                       str(row.get("description") or "no description"),
                       f"{count} instance{'' if count == 1 else 's'}"])


def study_label(row: dict[str, object]) -> str:
    """A study in the picker: date, modalities, description (as everywhere, :func:`anonlib.ui.tables.study_label`),
    then the PatientID (placeholder if none)."""
    from anonlib.ui.tables import study_label as named

    return f"{named({**row, 'modalities': row.get('modalities') or '-'})} · {row.get('patient_id') or NO_PATIENT_ID}"


class BrowsePanel(w.VBox):  # type: ignore[misc]
    """Filters (patient, date range, modality), the per-patient summary and the matching studies
    as interactive tables, the selected study's series (the first study is selected at once),
    and a slice viewer for one of its series."""

    def __init__(self, src: Source) -> None:
        self.src = src
        patients = src.patients()
        self.patient = w.Dropdown(description="Patient", options=[("all", "")] + [
            (f"{r['patient_id'] or NO_PATIENT_ID} {r['patient_name']}".strip(), str(r["patient"]))
            for r in patients.to_dict("records")])
        self.date_from = w.Text(description="From", placeholder="YYYYMMDD")
        self.date_to = w.Text(description="To", placeholder="YYYYMMDD")
        self.modality = w.Text(description="Modality", placeholder="CT, MR…")
        self.show = w.Button(description="Show studies", button_style="primary")
        self.summary_box, self.studies_box = w.VBox([]), w.VBox([])
        self.out_studies = w.Output()  # errors of the filters
        self.study = w.Dropdown(description="Study", options=[], layout=w.Layout(width="60%"))
        self.thumbs = w.Button(description="Show series")
        self.out_series = w.Output()
        self.viewer_series = w.Dropdown(description="Series", options=[], layout=w.Layout(width="60%"))
        self.viewer = SliceViewer(src)
        self.show.on_click(lambda _b: self.refresh())
        self.thumbs.on_click(lambda _b: self.show_series())
        self.study.observe(lambda _c: self.show_series(), "value")
        self._choosing = False
        self.viewer_series.observe(lambda _c: None if self._choosing else self.show_slices(), "value")
        super().__init__([
            w.HBox([self.patient, self.modality]), w.HBox([self.date_from, self.date_to]), self.show,
            w.HTML("<h4>Patients</h4>"), self.summary_box, w.HTML("<h4>Studies, newest first</h4>"),
            self.studies_box, self.out_studies, w.HBox([self.study, self.thumbs]), self.out_series,
            w.HTML("<h4>Slices</h4>"), self.viewer_series, self.viewer])
        self.add_class("anonlib-browse")
        self.study.add_class("anonlib-series-picker")
        self.thumbs.add_class("anonlib-thumbnails-button")
        self.viewer_series.add_class("anonlib-viewer-series")
        self.refresh(patients)

    def refresh(self, patients: pd.DataFrame | None = None) -> None:
        """Show the patients and studies matching the filters and select the first study
        (``patients``: the patient table just read)."""
        self.out_studies.clear_output()
        try:
            found = workflows.browse(self.src, patient=self.patient.value, date_from=self.date_from.value,
                                     date_to=self.date_to.value, modality=self.modality.value,
                                     patients=patients)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self.out_studies, exc)
            return
        studies = newest_first(found.studies)
        self.summary_box.children = (interactive_table(mark_missing_ids(patient_summary(studies)),
                                                       css_class="anonlib-patient-summary"),)
        shown = mark_missing_ids(studies).drop(columns=["patient"])
        table = interactive_table(shown, css_class="anonlib-studies", select=True)
        keys = [str(key) for key in studies["study"]]
        table.observe(lambda change: self._pick(keys, change["new"]), "selected_rows")
        self.studies_box.children = (table,)
        self.study.options = [(study_label(r), str(r["study"])) for r in studies.to_dict("records")]
        self.study.value = keys[0] if keys else None  # shows its series

    def _pick(self, keys: list[str], rows: list[int]) -> None:
        """A row clicked in the studies table selects that study."""
        if rows and 0 <= rows[0] < len(keys) and self.study.value != keys[rows[0]]:
            self.study.value = keys[rows[0]]

    def show_series(self) -> None:
        """The selected study's series: their table, a titled thumbnail strip for the first
        few, and the first series in the slice viewer."""
        from anonlib.sources.thumbnails import series_figure

        self.out_series.clear_output()
        self._mark_row()
        if not self.study.value:
            self.viewer_series.options = []
            return
        study = str(self.study.value)
        try:
            series = self.src.series(study)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self.out_series, exc)
            return
        records = series.to_dict("records")
        with self.out_series:
            show(interactive_table(series.drop(columns=["study"]), css_class="anonlib-series"))
            for row in records[:STRIPS]:
                show_html(f"<h5 class='anonlib-strip-title'>{escape(series_title(row))}</h5>")
                show(series_figure(self.src, study, str(row["series"]), max_images=8))
            if len(records) > STRIPS:
                show_html(f"<p>{len(records) - STRIPS} more series: choose them in the slice viewer.</p>")
        self._choosing = True  # one load of the viewer, not one per trait change
        try:
            self.viewer_series.options = [(series_title(r), str(r["series"])) for r in records]
            self.viewer_series.value = str(records[0]["series"]) if records else None
        finally:
            self._choosing = False
        self.show_slices()

    def _mark_row(self) -> None:
        """The selected study's row highlighted in the studies table."""
        keys = [key for _label, key in self.study.options]
        table = self.studies_box.children[0] if self.studies_box.children else None
        if table is not None and self.study.value in keys:
            row = keys.index(self.study.value)
            if list(table.selected_rows) != [row]:
                table.selected_rows = [row]

    def show_slices(self) -> None:
        """The series chosen for the slice viewer, from its first slice."""
        if not self.study.value or not self.viewer_series.value:
            return
        try:
            self.viewer.load(str(self.study.value), str(self.viewer_series.value))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(self.out_series, exc)
