"""What a folder run did, for a person: a summary banner, one row per study and the files that
need attention — pure functions of the run's :class:`~anonlib.folder_run.RunSummary`.

The accounting is the summary's own (the line ``anonlib deidentify`` prints), applied to the
whole run for the banner and to each study's share of the results for its row, so the notebook
and the command line can never disagree. Studies with rejected or quarantined files come first,
with a ``status-rejected`` / ``status-quarantined`` row class that :data:`RESULTS_STYLE` colours.
Everything shown is PHI-free except the study labels the caller passes (the operator's own
source, as the study picker shows it) and the source files' paths relative to the source folder.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from anonlib.folder_run import RunSummary
from anonlib.pipeline import MANIFEST, QUARANTINE_MANIFEST
from anonlib.ui.render import table_html
from anonlib.ui.tables import study_label

if TYPE_CHECKING:
    from anonlib.workflows import Anonymized

__all__ = ["RESULTS_STYLE", "STUDY_COLUMNS", "file_link", "jupyter_root", "problem_files", "results_html",
           "study_labels", "study_results", "summary_banner"]

#: A study's status, worst first: the order of the per-study table.
STATUSES = ("rejected", "quarantined", "conflict", "cancelled", "done")

STUDY_COLUMNS = ["status", "study", "output", "files", "de-identified", "quarantined", "rejected",
                 "conflicts", "duplicates", "not processed", "written", "unchanged", "replaced", "reasons"]

#: Columns shown only when some study has a count in them (a table that fits the screen).
_OPTIONAL = ("conflicts", "duplicates", "not processed", "unchanged", "replaced", "reasons")

RESULTS_STYLE = """<style>
.anonlib-banner { padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 13px; }
.anonlib-banner.ok { background: #e6f4ea; border: 1px solid #34a853; }
.anonlib-banner.attention { background: #fff6dd; border: 1px solid #e0a800; }
.anonlib-banner.cancelled { background: #eef2ff; border: 1px solid #6366f1; }
.anonlib-banner .anonlib-count { display: inline-block; margin-right: 12px; }
.anonlib-banner .anonlib-count b { font-size: 15px; }
.anonlib-banner .anonlib-describe { color: #444; font-size: 12px; margin-top: 2px; }
table.anonlib-results tr.status-rejected td, table.anonlib-problem-files tr.status-rejected td { background: #fde8e8; }
table.anonlib-results tr.status-quarantined td, table.anonlib-problem-files tr.status-quarantined td {
  background: #fff3cd; }
table.anonlib-results tr.status-conflict td, table.anonlib-problem-files tr.status-conflict td,
table.anonlib-problem-files tr.status-duplicate td { background: #f3e8ff; }
table.anonlib-results tr.status-cancelled td { color: #6b7280; }
</style>"""


def study_labels(studies: pd.DataFrame) -> dict[str, str]:
    """study key → "2021-01-20 · modalities · description" (a source's ``studies()`` table): how the
    operator knows a study, without the patient's name (the output column starts with the pseudonym)."""
    return {str(r["study"]): study_label(r) for r in studies.to_dict("records")}


def _study_status(part: RunSummary, unprocessed: int) -> str:
    if part.rejected:
        return "rejected"
    if part.quarantined:
        return "quarantined"
    if part.conflicts or part.duplicates:
        return "conflict"
    return "cancelled" if unprocessed else "done"


def _reasons(part: RunSummary) -> str:
    counted = Counter(r.reason for r in part.results if r.reason and r.status not in ("written", "unchanged",
                                                                                      "replaced"))
    return "; ".join(f"{reason} ({n})" for reason, n in counted.most_common())


def study_results(summary: RunSummary, study_of: Mapping[str, str],
                  labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per study of the run (``study_of``: input file label → study key; ``labels``:
    study key → what the operator knows it by), with the summary's counts for its files; studies
    with rejected, then quarantined, then conflicting files first, then in the given order.
    Columns that are zero for every study (conflicts, duplicates, unchanged, …) are left out."""
    labels = labels or {}
    by_study: dict[str, RunSummary] = {study: RunSummary() for study in dict.fromkeys(study_of.values())}
    chosen = Counter(study_of.values())
    for result in summary.results:
        by_study.setdefault(study_of.get(result.source, ""), RunSummary()).results.append(result)
    rows = []
    for order, (study, part) in enumerate(by_study.items()):
        rows_out = [r.row for r in part.results if r.row is not None and r.status != "quarantined"]
        first = rows_out[0] if rows_out else next((r.row for r in part.results if r.row is not None), None)
        unprocessed = max(chosen.get(study, 0) - len(part.results), 0)
        rows.append({
            "status": _study_status(part, unprocessed),
            "study": labels.get(study, study) if study else "(files of no chosen study)",
            "output": "/".join(first.path.split("/")[:2]) if first else "",  # pseudonym/date_study
            "files": len(part.results) + unprocessed, "de-identified": part.processed,
            "quarantined": part.quarantined, "rejected": len(part.rejected), "conflicts": len(part.conflicts),
            "duplicates": len(part.duplicates), "not processed": unprocessed,
            "written": part.changes("written"), "unchanged": part.changes("unchanged"),
            "replaced": part.changes("replaced"), "reasons": _reasons(part), "_order": order})
    frame = pd.DataFrame(rows, columns=[*STUDY_COLUMNS, "_order"])
    frame["_rank"] = frame["status"].map(STATUSES.index)
    frame = frame.sort_values(["_rank", "_order"], kind="stable").drop(columns=["_rank", "_order"])
    optional = [c for c in _OPTIONAL if not frame[c].any()]  # columns of nothing: left out
    if summary.cancelled and "not processed" in optional:
        optional.remove("not processed")  # a cancelled run always says what it did not reach
    return frame.drop(columns=optional).reset_index(drop=True)


def problem_files(summary: RunSummary) -> pd.DataFrame:
    """The input files that were not released (rejected, quarantined, in conflict, duplicate):
    their path relative to the source folder, what happened and why — worst first."""
    order = {"rejected": 0, "quarantined": 1, "conflict": 2, "duplicate": 3}
    rows = [{"status": r.status, "file": r.source, "reason": r.reason, "kept instead": r.kept}
            for r in summary.results if r.status in order]
    rows.sort(key=lambda row: order[row["status"]])
    return pd.DataFrame(rows, columns=["status", "file", "reason", "kept instead"])


def summary_banner(summary: RunSummary) -> str:
    """The run at a glance: written, unchanged, quarantined, rejected, conflicts (and whether it
    was cancelled), then the command line's own summary line, which accounts for every file."""
    counts = [("written", summary.changes("written")), ("unchanged", summary.changes("unchanged")),
              ("replaced", summary.changes("replaced")), ("quarantined", summary.quarantined),
              ("rejected", len(summary.rejected)), ("conflicts", len(summary.conflicts)),
              ("duplicates", len(summary.duplicates))]
    shown = [(name, n) for name, n in counts if n or name not in ("replaced", "duplicates")]
    kind = "cancelled" if summary.cancelled else (
        "attention" if summary.quarantined or summary.rejected or summary.conflicts else "ok")
    title = (f"Cancelled: {len(summary.results)} of {summary.total} files processed, "
             f"{summary.total - len(summary.results)} not started" if summary.cancelled
             else f"Done: {len(summary.results)} files")
    chips = "".join(f"<span class='anonlib-count anonlib-count-{name}'><b>{n}</b> {name}</span>"
                    for name, n in shown)
    return (f"<div class='anonlib-banner {kind}'><div class='anonlib-banner-title'><b>{escape(title)}</b></div>"
            f"<div>{chips}</div><div class='anonlib-describe'>{escape(summary.describe())}</div></div>")


def jupyter_root() -> Path | None:
    """The root folder of the Jupyter server this kernel runs under (its runtime file names its
    process, the kernel's parent), or None outside one (papermill, a console)."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        info = Path(jupyter_runtime_dir()) / f"jpserver-{os.getppid()}.json"
        return Path(json.loads(info.read_text())["root_dir"]).resolve()
    except (ImportError, OSError, ValueError, KeyError, TypeError):
        return None


def file_link(path: Path, *, interactive: bool, root: Path | None = None, cwd: Path | None = None) -> str:
    """``path`` as a link JupyterLab opens (relative to the notebook's folder, the kernel's
    working directory) when it is under the server's ``root`` (or the root is unknown), else as
    plain text; headless (``interactive=False``) always as plain text."""
    text = f"<code>{escape(str(path))}</code>"
    if not interactive or not path.exists():
        return text
    target = path.resolve()
    if root is not None and root != target and root not in target.parents:
        return text + " <span class='anonlib-note'>(outside the Jupyter root: no link)</span>"
    href = Path(os.path.relpath(target, (cwd or Path.cwd()).resolve())).as_posix()
    return (f"<a class='anonlib-file-link' href='{escape(href, quote=True)}' target='_blank' "
            f"title='{escape(str(target), quote=True)}'>{escape(path.name)}</a> {text}")


def results_html(done: Anonymized, labels: Mapping[str, str] | None = None, *, interactive: bool,
                 root: Path | None = None, max_files: int = 200, files: bool = True) -> str:
    """The banner, the links to the manifests, the per-study table and (``files``) the files
    that need attention, as one HTML fragment (the panel shows that list as an interactive
    table of its own instead)."""
    summary = done.summary
    if summary is None:
        return ""
    links = []
    if done.output is not None:
        links.append(f"Manifest: {file_link(done.output / MANIFEST, interactive=interactive, root=root)}")
    if done.quarantine is not None and (done.quarantine / QUARANTINE_MANIFEST).exists():
        quarantine = file_link(done.quarantine / QUARANTINE_MANIFEST, interactive=interactive, root=root)
        links.append(f"Quarantine: {quarantine}")
    problems = problem_files(summary)
    parts = [RESULTS_STYLE, summary_banner(summary),
             f"<p class='anonlib-links'>{' &nbsp; '.join(links)}</p>" if links else "",
             "<h4>Studies</h4><div class='anonlib-scroll' style='overflow-x:auto; max-width:100%'>",
             table_html(study_results(summary, done.study_of, labels), css_class="anonlib-results",
                        row_class="status"), "</div>"]
    if files and not problems.empty:
        parts += [f"<h4>Files not released ({len(problems)})</h4>",
                  table_html(problems, css_class="anonlib-problem-files", row_class="status", max_rows=max_files)]
    return "".join(parts)
