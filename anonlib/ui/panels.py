"""ipywidgets panels for the notebooks. They build the parameters of :mod:`anonlib.workflows`
functions and show what those return; there is no other logic here."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.render import diff_html, findings_svg, show, show_html, table_html

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.sources.base import Source

__all__ = ["BrowsePanel", "PreviewPanel", "AnonymizePanel", "AuditPanel", "show_audit", "show_findings", "show_held",
           "show_preview", "study_options"]


def study_options(src: Source) -> list[tuple[str, str]]:
    """(label, study key) for a dropdown: date, modalities, description and patient."""
    studies = src.studies()
    return [(f"{r['study_date'] or 'no date'} · {r['modalities']} · {r['description'] or '-'} · {r['patient_name']}",
             str(r["study"])) for r in studies.to_dict("records")]


def _error(out: w.Output, exc: Exception) -> None:
    with out:
        show_html(f"<p style='color:#b91c1c' class='anonlib-error'>{escape(type(exc).__name__)}: {escape(str(exc))}</p>")


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
            _error(self.out_studies, exc)
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
                _error(self.out, exc)
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
                _error(self.out, exc)
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


class AuditPanel(w.VBox):  # type: ignore[misc]
    """Run the audit of a de-identified set against its originals; write the HTML report."""

    def __init__(self, target: str, *, originals: str, db_url: str, output: str, pixels: str = "sample") -> None:
        self.target, self.originals, self.db_url, self.output = target, originals, db_url, output
        self.conformance = w.Checkbox(value=True, description="dciodvfy")
        self.pixels = w.Dropdown(options=["sample", "all", "off"], value=pixels, description="OCR pixels")
        self.button = w.Button(description="Run the audit", button_style="primary")
        self.bar = w.IntProgress(min=0, max=1, description="Instances")
        self.out = w.Output()
        self.button.on_click(lambda _b: self.run())
        super().__init__([w.HBox([self.button, self.conformance, self.pixels, self.bar]), self.out])
        self.add_class("anonlib-audit")
        self.button.add_class("anonlib-audit-button")
        self.bar.add_class("anonlib-audit-progress")

    def _progress(self, done: int, total: int) -> None:
        self.bar.max, self.bar.value = max(total, 1), done

    def run(self) -> None:
        self.out.clear_output()
        self.bar.value = 0
        with self.out:
            try:
                result, html = workflows.audit_target(self.target, originals=self.originals, db_url=self.db_url,
                                                      output=self.output, conformance=self.conformance.value,
                                                      progress=self._progress, pixels=self.pixels.value)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                _error(self.out, exc)
                return
            show_audit(result, html)
            show_findings(result)


#: Headline colours of the audit's outcome.
_STATUS_COLOURS = {"PASS": "#1e8449", "FAIL": "#c0392b", "INCOMPLETE": "#7d3c98"}


def show_audit(result: Any, html: Any) -> None:
    """Headline (PASS, FAIL or INCOMPLETE), what was audited with and without originals, the
    summary table with every verdict's count, what could not be checked, and the report's path."""
    status = str(result.status)
    where = f"{result.dataset}: " if result.dataset else ""
    show_html(f"<h3 class='anonlib-audit-status' style='color:{_STATUS_COLOURS.get(status, '#000')}'>"
              f"Audit: {escape(status)}</h3><p>{escape(where + result.describe())}</p>")
    show_html(table_html(result.summary(), css_class="anonlib-audit-summary"))
    incomplete = result.counts("incomplete")
    if incomplete:
        show_html("<p><strong>Not checked (INCOMPLETE, never a pass):</strong> "
                  + escape(", ".join(f"{name} ({n})" for name, n in incomplete)) + "</p>")
    if html is not None:
        show_html(f"<p>HTML report: {html}</p>")


def show_findings(result: Any) -> None:
    """The chart of findings (inline SVG: renders offline), the failing categories, the findings
    to act on by study, and the regulatory status. Tag paths, categories and counts only."""
    show_html(findings_svg(result))
    show_html("<h4>Failing categories</h4><p>" + (", ".join(result.failing_categories()) or "none") + "</p>")
    show_html("<h4>Findings to act on, by study</h4>" + table_html(result.by_study(), css_class="anonlib-by-study"))
    show_html(f"<h4>Regulatory status</h4><p>{escape(result.regulatory_status)}</p>")
