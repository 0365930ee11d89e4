"""The preview panel: what de-identification would do to one study (a dry run).

Pick a study, a series and an instance (any object: an image, an SR, a SEG, a presentation
state…), run the preview: the verdict on that instance and the study's instances that would
not be released come first, then the images, then the diff — filtered by status ("kept"
hidden by default), searched by path, keyword or name, with the legend of its action codes and
links to download it as CSV. The instances that would not be released are an interactive table
(sortable, searchable, paged); the diff keeps its own filter, search and row colours. What is
shown is computed by :mod:`anonlib.ui.preview_view`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w

from anonlib import workflows
from anonlib.ui import preview_view as view
from anonlib.ui.common import show_error, study_options
from anonlib.ui.render import diff_html, show, show_html, table_html
from anonlib.ui.tables import interactive_table

if TYPE_CHECKING:
    from anonlib.preview import StudyPreview
    from anonlib.sources.base import Source

__all__ = ["PreviewPanel", "show_preview", "series_options", "instance_options", "study_labels"]

_HIDDEN, _SHOWN = "none", ""


def series_options(src: Source, study: str) -> list[tuple[str, str]]:
    """(label, series key) of a study's series: number, modality, description, instance count."""
    rows = src.series(study).to_dict("records")
    return [(f"{r['number'] or '-'} · {r['modality'] or '?'} · {r['description'] or '-'} ({r['instances']})",
             str(r["series"])) for r in rows]


def instance_options(src: Source, study: str, series: str | None) -> list[tuple[str, str]]:
    """(label, instance key) of a series' instances (of the study if ``series`` is None), in
    order: position, the series' modality and the short key (file name or Orthanc ID)."""
    keys = src.instances(study, series) if series else src.instances(study)
    rows = src.series(study) if series else None
    modality = "" if rows is None else next(
        (f"{r['modality'] or '?'} · " for r in rows.to_dict("records") if str(r["series"]) == series), "")
    return [(f"{n} / {len(keys)} · {modality}{view.problems_label(k)}", k) for n, k in enumerate(keys, start=1)]


def study_labels(src: Source, study: str) -> dict[str, str]:
    """The label of every instance of a study, as the instance picker shows it in its series."""
    return {key: label for series in src.series(study)["series"]
            for label, key in instance_options(src, study, str(series))}


class PreviewPanel(w.VBox):  # type: ignore[misc]
    """Pick a study, series and instance; see what de-identification would do (a dry run)."""

    def __init__(self, src: Source, *, db_url: str, profile: str = "", study: str = "", instance: str = "") -> None:
        self.src, self.db_url, self.profile = src, db_url, profile
        self.preview: StudyPreview | None = None
        wide = w.Layout(width="70%")
        self.picker = w.Dropdown(description="Study", options=study_options(src), layout=wide)
        self.series = w.Dropdown(description="Series", options=[], layout=wide)
        self.instance = w.Dropdown(description="Instance", options=[], layout=wide)
        self.button = w.Button(description="Preview de-identification", button_style="primary",
                               layout=w.Layout(width="auto"))
        self.busy = w.HTML()
        self.bar = w.IntProgress(min=0, max=1, layout=w.Layout(width="30%", display=_HIDDEN))
        self.out = w.Output()  # identity, verdict, images, summary (or the error)
        self.statuses = {s: w.Checkbox(value=s in view.SHOWN_BY_DEFAULT, description=s, indent=False,
                                       layout=w.Layout(width="auto", margin="0 1em 0 0")) for s in view.STATUSES}
        self.search = w.Text(placeholder="search path, keyword or name", description="Search",
                             continuous_update=True, layout=w.Layout(width="40%"))
        self.note, self.legend, self.download, self.table = w.HTML(), w.HTML(), w.HTML(), w.HTML()
        self.diff_box = w.VBox([w.HTML("<h4>Diff of the instance shown</h4>"),
                                w.HBox([*self.statuses.values(), self.search]), self.note, self.legend,
                                self.download, self.table], layout=w.Layout(display=_HIDDEN))
        for name, widget in (("study-picker", self.picker), ("series-picker", self.series),
                             ("instance-picker", self.instance), ("preview-button", self.button),
                             ("preview-busy", self.busy), ("diff-search", self.search),
                             ("diff-legend", self.legend), ("diff-download", self.download)):
            widget.add_class(f"anonlib-{name}")
        for status, box in self.statuses.items():
            box.add_class(f"anonlib-diff-status-{status}")
            box.observe(lambda _c: self.show_diff(), "value")
        self.search.observe(lambda _c: self.show_diff(), "value")
        self.picker.observe(lambda _c: self._study_changed(), "value")
        self.series.observe(lambda _c: self._series_changed(), "value")
        self.button.on_click(lambda _b: self.run())
        super().__init__([self.picker, self.series, self.instance, w.HBox([self.button, self.busy, self.bar]),
                          self.out, self.diff_box])
        self.add_class("anonlib-preview")
        if study and study in {key for _label, key in self.picker.options}:
            self.picker.value = study
        self._study_changed(instance)

    # -- pickers ----------------------------------------------------------------------------

    def _study_changed(self, instance: str = "") -> None:
        study = self.picker.value
        options = series_options(self.src, study) if study else []
        found = next((s for _l, s in options if instance in self.src.instances(study, s)), None) if instance else None
        self.series.options = options  # ipywidgets leaves no option selected: choose one
        self.series.value = found or (options[0][1] if options else None)
        self._series_changed(instance)

    def _series_changed(self, instance: str = "") -> None:
        study, series = self.picker.value, self.series.value
        options = instance_options(self.src, study, series) if study and series else []
        keys = [key for _label, key in options]
        self.instance.options = [(self._mark(label, key), key) for label, key in options]
        self.instance.value = instance if instance in keys else (keys[0] if keys else None)

    def _mark(self, label: str, key: str) -> str:
        """An instance's label, marked when the last preview of its study found it would not be released."""
        if self.preview is None or self.preview.study != self.picker.value:
            return label
        verdict = self.preview.quarantine[self.preview.quarantine["instance"] == key]["outcome"]
        return f"{label} ⚠ {verdict.iloc[0]}" if len(verdict) else label

    # -- the preview --------------------------------------------------------------------------

    def _progress(self, done: int, total: int) -> None:
        self.bar.max, self.bar.value = max(total, 1), done
        self.busy.value = _busy(total // 2, done)

    def run(self) -> None:
        """Preview the chosen instance: the button is disabled and the bar moves meanwhile."""
        study, chosen = self.picker.value, self.instance.value or ""
        self.out.clear_output()
        self.diff_box.layout.display = _HIDDEN
        count = len(self.src.instances(study)) if study else 0
        self.button.disabled, self.bar.layout.display, self.bar.value = True, _SHOWN, 0
        self.busy.value = _busy(count, 0)
        try:
            self.preview = workflows.preview(self.src, study, db_url=self.db_url, profile=self.profile,
                                             instance=chosen, progress=self._progress)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.preview = None
            show_error(self.out, exc)
            return
        finally:
            self.button.disabled, self.bar.layout.display, self.busy.value = False, _HIDDEN, ""
        self._series_changed(chosen)  # mark the instances that would not be released
        with self.out:
            _show_head(self.preview, study_labels(self.src, study))
        self.diff_box.layout.display = _SHOWN
        self.show_diff()

    def chosen_statuses(self) -> list[str]:
        return [status for status, box in self.statuses.items() if box.value]

    def show_diff(self) -> None:
        """The diff of the last preview as filtered now (no new preview: only the table changes)."""
        if self.preview is None:
            return
        diff, statuses = self.preview.diff, self.chosen_statuses()
        counts = view.status_counts(diff)
        for status, box in self.statuses.items():
            box.description = f"{status} ({counts[status]})"
        shown = view.filter_diff(diff, statuses, self.search.value)
        self.note.value = view.filter_note(diff, shown, statuses, self.search.value)
        self.legend.value = view.legend_html(diff, opened=False)  # the table stays near its filter
        self.download.value = (view.csv_link(shown, label="Download the rows shown as CSV", what="diff-shown")
                               + view.csv_link(diff, label="Download the full diff as CSV"))
        self.table.value = diff_html(shown)


def _busy(count: int, done: int) -> str:
    """The busy line: what the preview is doing, ``done`` of its ``2 × count`` reads."""
    what = (f"collecting identifying values {done} / {count}" if done < count else
            f"dry run {min(done - count, count)} / {count}")
    plural = "" if count == 1 else "s"
    return f"<span class='anonlib-busy'>⏳ Computing the preview of {count} instance{plural}: {what}…</span>"


def _show_head(preview: StudyPreview, labels: dict[str, str]) -> None:
    """Identity, verdict and problem instances, the images, the counts over all instances."""
    show_html(view.head_html(preview, labels, table=False))
    found = view.problems(preview, labels)
    if len(found):
        show(interactive_table(found, css_class="anonlib-problems"))
    _show_images(preview)
    show_html("<h4>All instances</h4>" + table_html(preview.summary))


def _show_images(preview: StudyPreview) -> None:
    """The images before and after; one line instead for an object without any (an SR, a plan)."""
    note = view.no_image(preview)
    if note:
        show_html(note)
        return
    figure = preview.figure()
    if figure is not None:
        show(figure)


def show_preview(preview: Any, *, statuses: str = ",".join(view.SHOWN_BY_DEFAULT), search: str = "") -> None:
    """A :class:`~anonlib.preview.StudyPreview` as plain HTML and an image (headless runs, no
    widget): the verdict, the images, the counts, the legend and the diff filtered by
    ``statuses`` (comma-separated; "all" for every status) and ``search``."""
    chosen = list(view.STATUSES) if statuses.strip() == "all" else [
        s.strip() for s in statuses.split(",") if s.strip()]
    before, after = view.preview_html(preview, statuses=chosen, search=search)
    show_html(before)
    _show_images(preview)
    show_html(after)

