"""What the preview panel shows, as pure functions of a :class:`~anonlib.preview.StudyPreview`
(no widget): the diff filtered by status and searched by path, keyword or name; the legend of
the action codes present (meanings read from PS3.15 Table E.1-1a's data file); the verdict on
the instance shown and the study's quarantined or rejected instances with their reasons; the
diff as a CSV for the browser to download; and the whole as plain HTML for headless runs.

The diff holds original values (PHI): this belongs in the identified zone, like the preview.
File names offered for download carry a digest of the content, never a key, UID or name.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from anonlib.preview import ADDED, ADDED_MEANING
from anonlib.profile.codes import code_meanings
from anonlib.ui.render import diff_html, table_html

if TYPE_CHECKING:
    from anonlib.preview import StudyPreview

__all__ = ["STATUSES", "SHOWN_BY_DEFAULT", "SEARCHED", "LEGEND_COLUMNS", "PROBLEM_COLUMNS", "Verdict", "status_counts",
           "filter_diff", "legend", "instance_verdict", "problems", "problems_label", "diff_csv", "csv_filename",
           "csv_link", "verdict_html", "no_image", "legend_html", "filter_note", "head_html", "preview_html"]

STATUSES = ("removed", "changed", "added", "kept")
#: "kept" is hidden until asked for: most of a header is kept, and it buries what changed.
SHOWN_BY_DEFAULT = ("removed", "changed", "added")
#: The columns the text search looks in.
SEARCHED = ("path", "keyword", "name")
LEGEND_COLUMNS = ["code", "meaning"]
PROBLEM_COLUMNS = ["instance", "outcome", "reason"]
_ORDER = "XZDKCUP" + ADDED  # single letters first, in the engine's order; compound codes after
_FORMULA = ("=", "+", "@", "\t", "\r")


def status_counts(diff: pd.DataFrame) -> dict[str, int]:
    """How many rows of ``diff`` have each status (every status, zero included)."""
    counts = diff["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def filter_diff(diff: pd.DataFrame, statuses: Iterable[str] = SHOWN_BY_DEFAULT, search: str = "") -> pd.DataFrame:
    """The rows of ``diff`` with one of ``statuses`` whose path, keyword or name contains
    ``search`` (case-insensitive, as typed: no pattern syntax; blank matches everything)."""
    keep = diff["status"].isin(list(statuses))
    needle = search.strip().lower()
    if needle:
        found = pd.Series(False, index=diff.index)
        for column in SEARCHED:
            found |= diff[column].astype(str).str.lower().str.contains(needle, regex=False)
        keep &= found
    return diff[keep].reset_index(drop=True)


def legend(diff: pd.DataFrame) -> pd.DataFrame:
    """:data:`LEGEND_COLUMNS` for every action and code present in ``diff``: the standard's
    meanings from Table E.1-1a, anonlib's own (``P``, and ``A`` for what it adds)."""
    meanings = {**code_meanings(), ADDED: ADDED_MEANING}
    present = {str(c) for column in ("action", "code") for c in diff[column] if str(c)}
    ordered = sorted(present, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))
    return pd.DataFrame([{"code": c, "meaning": meanings.get(c, "not a known action code")} for c in ordered],
                        columns=LEGEND_COLUMNS)


@dataclass(frozen=True)
class Verdict:
    """What the real run would do with one instance: ``released``, ``quarantined`` or
    ``rejected``, and why (empty when released)."""

    outcome: str
    reason: str = ""

    def sentence(self) -> str:
        if self.outcome == "released":
            return "This instance would be de-identified and released."
        what = "quarantined (written to the quarantine, not released)" if self.outcome == "quarantined" else \
            "rejected (nothing written)"
        return f"This instance would be {what}: {self.reason}"


def instance_verdict(preview: StudyPreview) -> Verdict:
    """The verdict on the instance the preview shows."""
    rows = preview.quarantine[preview.quarantine["instance"] == preview.instance].to_dict("records")
    return Verdict(str(rows[0]["outcome"]), str(rows[0]["reason"])) if rows else Verdict("released")


def problems(preview: StudyPreview, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The study's quarantined and rejected instances (:data:`PROBLEM_COLUMNS`), each named by
    its label in ``labels`` (default: the last part of its key)."""
    frame = preview.quarantine.copy()
    frame["instance"] = [(labels or {}).get(k) or problems_label(k) for k in frame["instance"]]
    return frame[PROBLEM_COLUMNS].reset_index(drop=True)


def _cell(value: object) -> str:
    """A value as a spreadsheet will not run it: a leading ``=``, ``+``, ``@`` or a ``-`` that
    does not start a number gets a quote (DICOM values are untrusted input)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA) or (text.startswith("-") and not text[1:2].isdigit() and text[1:2] != "."):
        return "'" + text
    return text


def diff_csv(diff: pd.DataFrame) -> bytes:
    """``diff`` as UTF-8 CSV (with a byte-order mark, so that spreadsheets read non-Latin names)."""
    text: str = diff.map(_cell).to_csv(index=False)
    return text.encode("utf-8-sig")


def csv_filename(data: bytes, what: str = "diff") -> str:
    """A file name for ``data``: ``anonlib-<what>-<digest of the content>.csv`` (no key, UID or name)."""
    return f"anonlib-{what}-{hashlib.sha256(data).hexdigest()[:12]}.csv"


def csv_link(diff: pd.DataFrame, *, label: str, what: str = "diff") -> str:
    """An ``<a download>`` whose ``data:`` URL holds ``diff`` as CSV: the browser saves it."""
    data = diff_csv(diff)
    href = "data:text/csv;charset=utf-8;base64," + base64.b64encode(data).decode("ascii")
    return (f'<a class="anonlib-csv-link" download="{csv_filename(data, what)}" href="{href}" '
            f'style="margin-right:1.5em">{html.escape(label)} ({len(diff)} rows)</a>')


def verdict_html(preview: StudyPreview, labels: Mapping[str, str] | None = None, *, table: bool = True) -> str:
    """The verdict on the instance shown (coloured) and, prominently, every instance of the
    study that would be quarantined or rejected, with its reason (``table``: as a plain HTML
    table here; without it the caller shows :func:`problems` itself, e.g. as an interactive table)."""
    verdict = instance_verdict(preview)
    colour = {"released": ("#e6f4ea", "#166534"), "quarantined": ("#fff6dd", "#92400e")}.get(
        verdict.outcome, ("#fde8e8", "#991b1b"))
    shown = (labels or {}).get(preview.instance) or problems_label(preview.instance)
    parts = [f'<div class="anonlib-verdict anonlib-verdict-{verdict.outcome}" style="background:{colour[0]};'
             f'color:{colour[1]};border-left:4px solid {colour[1]};padding:4px 8px;margin:4px 0">'
             f'<strong>{html.escape(verdict.outcome.upper())}</strong> — {html.escape(verdict.sentence())}'
             f'<br><small>Instance shown: <span class="anonlib-preview-shown">{html.escape(shown)}</span></small></div>']
    found = problems(preview, labels)
    if len(found):
        counts = found["outcome"].value_counts()
        said = ", ".join(f"{int(n)} {o}" for o, n in counts.items())
        parts.append(f'<p class="anonlib-problems-head"><strong>{said} of {preview.instances} instances</strong> '
                     "would not be released:</p>" + (table_html(found, css_class="anonlib-problems") if table else ""))
    else:
        parts.append(f"<p>None of the {preview.instances} instances would be quarantined or rejected.</p>")
    return "".join(parts)


def problems_label(key: str) -> str:
    """The short name of an instance key: its last path part (a file name or an Orthanc ID)."""
    return key.replace("\\", "/").rsplit("/", 1)[-1]


def no_image(preview: StudyPreview) -> str:
    """One line when neither image can be shown and both say the same why (an object with no
    pixel data: an SR, a plan); empty when there are images to show."""
    before, after = preview.image_notes
    if before is None or before != after:
        return ""
    return f'<p class="anonlib-no-image"><em>Images: {html.escape(before)}.</em></p>'


def legend_html(diff: pd.DataFrame, *, opened: bool = True) -> str:
    """The legend of the actions and codes in ``diff`` as a small table under a summary that
    names them (``opened``: unfolded)."""
    table = legend(diff)
    return (f'<details{" open" if opened else ""} style="line-height:1.3">'
            f"<summary>Action codes: {html.escape(', '.join(table['code']))}</summary>"
            + table_html(table, css_class="anonlib-legend") + "</details>")


def filter_note(diff: pd.DataFrame, shown: pd.DataFrame, statuses: Iterable[str], search: str) -> str:
    """One line saying what the diff table shows of the instance's rows."""
    what = ", ".join(statuses) or "no status"
    searched = f" matching “{html.escape(search.strip())}”" if search.strip() else ""
    return f'<p class="anonlib-diff-note">{len(shown)} of {len(diff)} elements shown ({html.escape(what)}{searched}).</p>'


def head_html(preview: StudyPreview, labels: Mapping[str, str] | None = None, *, table: bool = True) -> str:
    """The patient's identity and the verdict (what comes before the images); ``table`` as in
    :func:`verdict_html`."""
    return (f"<h4>Patient identity</h4><p>{html.escape(preview.identity.describe())}</p>"
            f"<h4>Verdict</h4>{verdict_html(preview, labels, table=table)}")


def preview_html(preview: StudyPreview, *, statuses: Iterable[str] = SHOWN_BY_DEFAULT, search: str = "",
                 labels: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Plain HTML of a preview for headless runs, in two parts around the images: (identity,
    verdict and problem instances; the summary, the legend and the filtered diff)."""
    statuses = list(statuses)
    shown = filter_diff(preview.diff, statuses, search)
    before = head_html(preview, labels)
    after = ("<h4>All instances</h4>" + table_html(preview.summary) + "<h4>Diff of the instance shown</h4>"
             + filter_note(preview.diff, shown, statuses, search) + legend_html(preview.diff) + diff_html(shown))
    return before, after
