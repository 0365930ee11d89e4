"""The anonymize panel: de-identify studies of a folder, or queue those of an Orthanc node.

The work runs in a background thread (ipywidgets callbacks run on the kernel's main thread: a
long callback would leave the Cancel click waiting until the run is over); the thread updates
the widgets, which ipywidgets supports. Cancel is asked between files, so a cancelled run ends
with every file written whole or not at all, its manifests describing what was done and its
summary saying it was cancelled. For an Orthanc source, the queued studies' states are polled
every few seconds until each is done, held (with the gate's reason) or failed, or Cancel.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.common import error_html, one_line, show_error, study_options
from anonlib.ui.job_progress import SETTLED, Poller, settled, study_progress
from anonlib.ui.render import show_html, table_html
from anonlib.ui.run_results import jupyter_root, problem_files, results_html, study_labels
from anonlib.ui.tables import interactive_table

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.sources.base import Source

__all__ = ["AnonymizePanel", "show_held"]


class AnonymizePanel(w.VBox):  # type: ignore[misc]
    """Choose studies and de-identify them (folder) or queue them (constellation), with a
    progress bar, a Cancel button and the run's summary, per-study table and manifest links."""

    #: Seconds between two polls of the queued studies' states.
    POLL_SECONDS = 3.0

    def __init__(self, src: Source, *, db_url: str, output: str, profile: str = "") -> None:
        self.src, self.db_url, self.output, self.profile = src, db_url, output, profile
        self.labels = study_labels(src.studies())
        self.studies = w.SelectMultiple(description="Studies", options=study_options(src),
                                        layout=w.Layout(width="90%", height="12em"))
        self.button = w.Button(description="Anonymize" if src.kind == "folder" else "Queue",
                               button_style="primary")
        # where a folder's de-identified copy goes (the constellation delivers to its own nodes)
        self.output_field = w.Text(value=output, description="Output", placeholder="folder for the de-identified copy",
                                   layout=w.Layout(width="60%"))
        self.output_field.add_class("anonlib-anonymize-output")
        self.cancel = w.Button(description="Cancel", disabled=True)
        self.jobs = w.Button(description="Job states")
        self.bar = w.IntProgress(min=0, max=1, description="Progress")
        self.count = w.Label("")
        self.out = w.Output()
        self.live = w.HTML()
        self.button.on_click(lambda _b: self.run())
        self.cancel.on_click(lambda _b: self.request_cancel())
        self.jobs.on_click(lambda _b: self.show_jobs())
        controls = [self.button, self.cancel, self.bar, self.count] + ([self.jobs] if src.kind == "orthanc" else [])
        self.files = w.VBox([])  # the files not released: a sortable, searchable, paged table
        rows = [self.studies] + ([self.output_field] if src.kind == "folder" else [])
        super().__init__([*rows, w.HBox(controls), self.out, self.live, self.files])
        self._stop = threading.Event()
        self.worker: threading.Thread | None = None
        self.poller: Poller | None = None
        self.add_class("anonlib-anonymize")
        self.studies.add_class("anonlib-studies-picker")
        self.button.add_class("anonlib-anonymize-button")
        self.cancel.add_class("anonlib-cancel-button")
        self.count.add_class("anonlib-progress-count")
        self.live.add_class("anonlib-live")

    # -- display, from any thread --------------------------------------------------------------
    def _show(self, html: str) -> None:
        from IPython.display import HTML

        self.out.append_display_data(HTML(html))  # type: ignore[no-untyped-call]

    def _error(self, exc: Exception) -> None:
        self._show(error_html(one_line(exc)))

    def _progress(self, done: int, total: int, unit: str = "files") -> None:
        self.bar.max, self.bar.value = max(total, 1), done
        self.count.value = f"{done} / {total} {unit}"

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> threading.Thread:
        """Start de-identifying (or queueing) the chosen studies in a background thread."""
        self.stop_watching()
        self._stop = threading.Event()
        self.out.outputs = ()
        self.live.value, self.files.children = "", ()
        self.bar.value = 0
        self.count.value = "reading headers…" if self.src.kind == "folder" else "queueing…"
        self.button.disabled, self.cancel.disabled, self.cancel.button_style = True, False, "warning"
        self.worker = threading.Thread(target=self._work, args=(list(self.studies.value), self._stop),
                                       name="anonlib-anonymize", daemon=True)
        self.worker.start()
        return self.worker

    def request_cancel(self) -> None:
        """Cancel: the run stops before its next file; watching the queue stops."""
        self._stop.set()
        self.stop_watching()
        if self.worker is not None and self.worker.is_alive():
            self.count.value = "cancelling after the current file…"
        self.cancel.disabled, self.cancel.button_style = True, ""

    def stop_watching(self) -> None:
        if self.poller is not None:
            self.poller.stop()

    def _work(self, studies: list[str], stop: threading.Event) -> None:
        try:
            self._do(studies, stop)
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line, never a traceback
            self.count.value = ""
            self._error(exc)
            self._finish()

    def _do(self, studies: list[str], stop: threading.Event) -> None:
        self.output = self.output_field.value.strip() if self.src.kind == "folder" else self.output
        done = workflows.anonymize(self.src, studies, output=self.output, db_url=self.db_url,
                                   profile=self.profile, progress=self._progress, stop=stop.is_set)
        if done.summary is not None:
            self.count.value = f"{len(done.summary.results)} / {done.summary.total} files" + (
                " (cancelled)" if done.summary.cancelled else "")
            self._show(results_html(done, self.labels, interactive=True, root=jupyter_root(), files=False))
            problems = problem_files(done.summary)
            if not problems.empty:
                self.files.children = (w.HTML(f"<h4>Files not released ({len(problems)})</h4>"),
                                       interactive_table(problems, css_class="anonlib-problem-files"))
            self._finish()
            return
        queued = [] if done.queued is None else [(self.src.name, str(s)) for s in dict.fromkeys(done.queued["study"])]
        self._show(f"<p class='anonlib-queued'>{len(queued)} {'study' if len(queued) == 1 else 'studies'} queued "
                   "on the constellation; their states follow (every few seconds until each is done or held).</p>")
        if queued:
            self.watch(queued, stop)
        else:
            self.count.value = ""
            self._finish()

    def _finish(self) -> None:
        self.button.disabled, self.cancel.disabled, self.cancel.button_style = False, True, ""

    # -- live progress of queued studies ---------------------------------------------------------
    def watch(self, queued: list[tuple[str, str]], stop: threading.Event | None = None) -> Poller | None:
        """Poll the states of the ``queued`` studies until each has settled or Cancel."""
        if stop is not None and stop.is_set():
            self._finish()
            return None

        def fetch() -> pd.DataFrame:
            return study_progress(queued, workflows.job_states(studies=queued), workflows.held_studies())

        def update(table: pd.DataFrame) -> None:
            finished = int(table["state"].isin(SETTLED).sum())
            self._progress(finished, len(table), "studies settled")
            held = int((table["state"] == "held").sum())
            note = (f"<p class='anonlib-live-done'>All {len(table)} settled"
                    + (f"; <b style='color:#b91c1c'>{held} held by the audit gate</b> — not delivered "
                       "(fix the cause, then <code>anonlib jobs retry --held</code>)" if held else "")
                    + ".</p>") if settled(table) else ""
            self.live.value = (note + table_html(table, css_class="anonlib-job-progress", row_class="state")
                               + _LIVE_STYLE)
            if settled(table):
                self._finish()

        def failed(exc: Exception) -> None:
            self._error(exc)
            self._finish()

        self.poller = Poller(fetch, update, on_error=failed, interval=self.POLL_SECONDS).start()
        return self.poller

    def show_jobs(self) -> None:
        self.out.clear_output()
        with self.out:
            try:
                show_held(workflows.held_studies())
                show_html(table_html(workflows.job_states(), css_class="anonlib-jobs"))
            except Exception as exc:  # noqa: BLE001 - shown to the user
                show_error(self.out, exc)


_LIVE_STYLE = """<style>
table.anonlib-job-progress tr.status-held td, table.anonlib-job-progress tr.status-failed td { background: #fde8e8; }
table.anonlib-job-progress tr.status-running td { background: #fff6dd; }
table.anonlib-job-progress tr.status-done td { background: #e6f4ea; }
</style>"""


def show_held(held: pd.DataFrame) -> None:
    """The studies the audit gate holds (never delivered), with the reason, or that none is."""
    if held.empty:
        show_html("<p class='anonlib-held-none'>No study is held by the audit gate.</p>")
        return
    show_html(f"<h4 style='color:#b91c1c'>{len(held)} {'study' if len(held) == 1 else 'studies'} held by the audit "
              "gate — not delivered</h4><p>Fix the cause (the reason names the failing or incomplete checks), "
              "then <code>anonlib jobs retry --held</code>.</p>"
              + table_html(held, css_class="anonlib-held"))
