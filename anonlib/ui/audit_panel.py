"""The audit panel: audit a de-identified set against its originals; its verdict and findings.

The verdict is a coloured PASS / FAIL / INCOMPLETE badge, the HTML report a link JupyterLab
opens, Safe Harbor categories carry their plain names (from the bundled
``hipaa_safe_harbor.csv``) beside their letter, and findings are listed per study with the
patient pseudonym and study date the outputs carry (see
:meth:`~anonlib.audit.model.AuditResult.study_labels`). The audit runs in a background thread:
the bar moves, Cancel stops it between instances (INCOMPLETE, never PASS), and a run that stops
on an error or an interrupt says after how many instances, with no verdict. Headless runs
(papermill) show the same fragments through :func:`show_audit` and :func:`show_findings`; the
summary and the findings per study are plain HTML tables there and interactive tables (sortable,
searchable, paged: :func:`~anonlib.ui.tables.interactive_table`) in the panel.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import ipywidgets as w

from anonlib import workflows
from anonlib.errors import AnonlibError
from anonlib.parameters import check_source
from anonlib.ui.common import error_html, one_line
from anonlib.ui.render import findings_svg, show_html, table_html
from anonlib.ui.tables import interactive_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AuditCancelled", "AuditPanel", "LAB_ROOT_ENV", "Part", "Table", "audit_fragments", "audit_parts",
           "badge_html", "findings_fragments", "findings_parts", "interrupted_html", "named_category",
           "report_link_html", "show_audit", "show_findings"]

#: Set by ``anonlib lab`` for its kernels: the folder JupyterLab serves (links outside it cannot open).
LAB_ROOT_ENV = "ANONLIB_LAB_ROOT"

#: Badge colours of the audit's outcome (background, text).
_STATUS_COLOURS = {"PASS": ("#1e8449", "#fff"), "FAIL": ("#c0392b", "#fff"), "INCOMPLETE": ("#7d3c98", "#fff")}
_LETTERS = re.compile(r"^([A-R](?:/[A-R])*) (.+)$")
#: Largest report offered as a download link when Lab cannot serve it (bytes).
_DOWNLOAD_MAX = 20_000_000


class AuditCancelled(AnonlibError):
    """The user cancelled the audit (raised by the panel's progress callback between instances)."""


class Table(NamedTuple):
    """A table among the audit's parts: plain HTML headless, an interactive table in the panel."""

    frame: pd.DataFrame
    css_class: str


#: One part of what the audit shows: an HTML fragment or a table.
Part = str | Table


def _plain(part: Part) -> str:
    return table_html(part.frame, css_class=part.css_class) if isinstance(part, Table) else part


# -- fragments (plain HTML: the panel and the headless notebook show the same) --------------------

def badge_html(status: str, note: str = "") -> str:
    """A coloured pill naming the outcome (``anonlib-audit-badge status-<STATUS>``), ``note`` beside it."""
    background, colour = _STATUS_COLOURS.get(status, ("#555", "#fff"))
    pill = (f"<span class='anonlib-audit-badge status-{escape(status)}' style='display:inline-block;"
            f"background:{background};color:{colour};font-weight:700;border-radius:999px;padding:0.2em 0.9em;"
            f"letter-spacing:0.05em'>{escape(status)}</span>")
    text = f" <span class='anonlib-audit-note'>{escape(note)}</span>" if note else ""
    return f"<div class='anonlib-audit-status' style='font-size:1.3em;margin:0.3em 0'>Audit: {pill}{text}</div>"


def report_link_html(report: Path | None, *, base: Path | None = None, root: Path | None = None) -> str:
    """The HTML report as a link relative to ``base`` (the notebook's folder, where the kernel
    runs): JupyterLab resolves it against the notebook and opens the report in a tab. ``root``
    (default: ``$ANONLIB_LAB_ROOT``, set by ``anonlib lab``) is the folder Lab serves: a report
    outside it cannot be opened there, so its path is shown with a link that downloads it (the
    report inline as a ``data:`` URL; up to :data:`_DOWNLOAD_MAX` bytes, else the path alone)."""
    if report is None:
        return ""
    report = Path(report).resolve()
    base = (base or Path.cwd()).resolve()
    served = root or (Path(os.environ[LAB_ROOT_ENV]) if os.environ.get(LAB_ROOT_ENV) else None)
    where = f"<code>{escape(str(report))}</code>"
    if served is not None and not report.is_relative_to(served.resolve()):
        size = report.stat().st_size if report.is_file() else None
        if size is None or size > _DOWNLOAD_MAX:
            return (f"<p class='anonlib-audit-report'>HTML report: {where} (outside the folder JupyterLab "
                    f"serves: open it from a file browser)</p>")
        href = "data:text/html;base64," + base64.b64encode(report.read_bytes()).decode("ascii")
        return (f"<p class='anonlib-audit-report'>HTML report: <a class='anonlib-audit-report-download' "
                f"download='{escape(report.name, quote=True)}' href='{href}'>download {escape(report.name)}</a> "
                f"({where}, outside the folder JupyterLab serves)</p>")
    href = quote(os.path.relpath(report, base))
    return (f"<p class='anonlib-audit-report'>HTML report: <a class='anonlib-audit-report-link' "
            f"href='{escape(href, quote=True)}'>{escape(report.name)}</a> ({where})</p>")


def interrupted_html(done: int, total: int, why: str = "") -> str:
    """What a run that stopped before its verdict leaves: how far it got, and no verdict."""
    reason = f": {escape(why)}" if why else ""
    return (f"<p class='anonlib-audit-interrupted' style='color:#b45309;font-weight:600'>Audit interrupted "
            f"after {done} of {total or '?'} instances — no verdict{reason}</p>")


def named_category(category: str) -> tuple[str, str]:
    """``(letters, plain name)`` of a finding's category: ``"A names"`` → ``("A", "Names")``,
    ``"G/H SSN, MRN"`` → ``("G/H", "Social Security numbers; Medical record numbers")``, the names
    read from the bundled Safe Harbor table; other categories (``private``, ``dciodvfy``…) keep
    their name with no letter."""
    from anonlib.audit.safe_harbor.table import LABELS, plain_name

    matched = _LETTERS.match(category)
    if matched is None:
        return "", category
    letters = matched.group(1).split("/")
    names = "; ".join(plain_name(letter) for letter in letters)
    short = ", ".join(LABELS[letter] for letter in letters)
    return matched.group(1), names if matched.group(2) == short else f"{names} ({matched.group(2)})"


def _with_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``category`` column split into the Safe Harbor letter and plain name."""
    frame = frame.copy()
    named = [named_category(str(c)) for c in frame["category"]]
    at = list(frame.columns).index("category")
    frame.insert(at, "letter", [letter for letter, _ in named])
    frame["category"] = [name for _, name in named]
    return frame


def _iso_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if re.fullmatch(r"\d{8}", value) else value


def audit_parts(result: Any, report: Path | None, *, base: Path | None = None) -> list[Part]:
    """The badge, what was audited with and without originals, the summary by check and
    category (plain names), what could not be checked, and the report's link."""
    status = str(result.status)
    where = f"{result.dataset}: " if result.dataset else ""
    parts: list[Part] = [badge_html(status), f"<p>{escape(where + result.describe())}</p>",
                         Table(_with_names(result.summary()), "anonlib-audit-summary")]
    incomplete = result.counts("incomplete")
    if incomplete:
        parts.append("<p><strong>Not checked (INCOMPLETE, never a pass):</strong> "
                     + escape(", ".join(f"{name} ({n})" for name, n in incomplete)) + "</p>")
    link = report_link_html(report, base=base)
    return parts + [link] if link else parts


def audit_fragments(result: Any, report: Path | None, *, base: Path | None = None) -> list[str]:
    """:func:`audit_parts` as plain HTML fragments (headless runs)."""
    return [_plain(part) for part in audit_parts(result, report, base=base)]


def findings_parts(result: Any) -> list[Part]:
    """The chart of findings (inline SVG: renders offline), the failing categories by plain
    name, the findings to act on per study (pseudonym, study date), and the regulatory status."""
    failing = []
    for name in result.failing_categories():
        check, _, category = name.partition("/")
        letter, plain = named_category(category)
        failing.append(f"{check}: {letter + ' ' if letter else ''}{plain}")
    by_study = _with_names(result.by_study())
    by_study["study_date"] = [_iso_date(str(d)) for d in by_study["study_date"]]
    by_study = by_study.rename(columns={"patient": "patient (pseudonym)", "study_date": "study date"})
    return [findings_svg(result),
            "<h4>Failing categories</h4><p class='anonlib-failing'>" + (escape("; ".join(failing)) or "none") + "</p>",
            "<h4>Findings to act on, by study</h4>", Table(by_study, "anonlib-by-study"),
            f"<h4>Regulatory status</h4><p>{escape(result.regulatory_status)}</p>"]


def findings_fragments(result: Any) -> list[str]:
    """:func:`findings_parts` as plain HTML fragments (headless runs)."""
    return [_plain(part) for part in findings_parts(result)]


def show_audit(result: Any, html: Path | None) -> None:
    """Display :func:`audit_fragments` (headless runs and the notebook's plain branch)."""
    for fragment in audit_fragments(result, html):
        show_html(fragment)


def show_findings(result: Any) -> None:
    """Display :func:`findings_fragments`. Tag paths, categories, counts, pseudonyms and dates."""
    for fragment in findings_fragments(result):
        show_html(fragment)


# -- the panel ---------------------------------------------------------------------------------------

class AuditPanel(w.VBox):  # type: ignore[misc]
    """Audit a de-identified set (``target``) against its ``originals``; write the HTML report
    into ``output``. The target and originals are fields the user edits (a folder, a
    constellation node name or an Orthanc URL); a bad one is one line, never a traceback."""

    def __init__(self, target: str, *, originals: str, db_url: str, output: str, pixels: str = "sample") -> None:
        self.db_url, self.output = db_url, output
        self.target_field = w.Text(value=target, description="Target", placeholder="the de-identified set",
                                   layout=w.Layout(width="60%"))
        self.originals_field = w.Text(value=originals, description="Originals",
                                      placeholder="the originals ('' for none)", layout=w.Layout(width="60%"))
        self.error = w.HTML()
        self.conformance = w.Checkbox(value=True, description="dciodvfy")
        self.pixels = w.Dropdown(options=["sample", "all", "off"], value=pixels, description="OCR pixels")
        self.button = w.Button(description="Run the audit", button_style="primary")
        self.cancel_button = w.Button(description="Cancel", disabled=True)
        self.bar = w.IntProgress(min=0, max=1, description="Instances")
        self.count = w.Label("")
        self.out = w.Output()
        self.tables: dict[str, Any] = {}  # the interactive tables shown, by CSS class
        self.done, self.total = 0, 0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.button.on_click(lambda _b: self.start())
        self.cancel_button.on_click(lambda _b: self.cancel())
        super().__init__([self.target_field, self.originals_field, self.error,
                          w.HBox([self.button, self.cancel_button, self.conformance, self.pixels]),
                          w.HBox([self.bar, self.count]), self.out])
        self.add_class("anonlib-audit")
        self.target_field.add_class("anonlib-audit-target")
        self.originals_field.add_class("anonlib-audit-originals")
        self.error.add_class("anonlib-audit-error")
        self.button.add_class("anonlib-audit-button")
        self.cancel_button.add_class("anonlib-audit-cancel")
        self.bar.add_class("anonlib-audit-progress")

    @property
    def target(self) -> str:
        return str(self.target_field.value).strip()

    @property
    def originals(self) -> str:
        return str(self.originals_field.value).strip()

    def _show(self, fragment: str) -> None:
        """Append an HTML fragment to the results (safe from the audit's thread)."""
        from IPython.display import HTML

        if fragment:
            self.out.append_display_data(HTML(fragment))  # type: ignore[no-untyped-call]

    def _show_part(self, part: Part) -> None:
        """A fragment, or a table as an interactive table (safe from the audit's thread)."""
        if isinstance(part, Table):
            table = self.tables[part.css_class] = interactive_table(part.frame, css_class=part.css_class)
            self.out.append_display_data(table)
        else:
            self._show(part)

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self.bar.max, self.bar.value = max(total, 1), done
        self.count.value = f"{done} / {total} instances"
        if self._cancel.is_set():
            raise AuditCancelled("the audit was cancelled")

    def _fields_ok(self) -> bool:
        """The target and originals fields name something that can be opened; else one line."""
        try:
            check_source("target", self.target)
            check_source("originals", self.originals, optional=True)
        except AnonlibError as exc:
            self.error.value = error_html(one_line(exc))
            return False
        self.error.value = ""
        return True

    def start(self) -> None:
        """Run the audit in a background thread (the button): the kernel stays free for Cancel."""
        if self._thread is not None and self._thread.is_alive():
            return
        if not self._fields_ok():
            return
        self._thread = threading.Thread(target=self.run, name="anonlib-audit", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop the running audit at the next instance: the result is INCOMPLETE, never PASS."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background run to end (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Audit now, in this thread; show the verdict and findings, or how it stopped."""
        self.out.outputs = ()
        self.tables = {}
        self._cancel.clear()
        self.done, self.total = 0, 0
        self.bar.value, self.count.value = 0, "starting…"
        if not self._fields_ok():
            return
        self.button.disabled, self.cancel_button.disabled = True, False
        try:
            result, html = workflows.audit_target(self.target, originals=self.originals, db_url=self.db_url,
                                                  output=self.output, conformance=self.conformance.value,
                                                  progress=self._progress, pixels=self.pixels.value)
        except AuditCancelled:
            self._show(badge_html("INCOMPLETE", f"cancelled — INCOMPLETE: stopped after {self.done} of "
                                                f"{self.total} instances, nothing judged"))
            self.count.value = "cancelled"
            return
        except KeyboardInterrupt:  # a kernel interrupt while run() holds the cell
            self._show(interrupted_html(self.done, self.total, "interrupted"))
            self.count.value = "interrupted"
            raise
        except Exception as exc:  # noqa: BLE001 - shown to the user in one line
            if self.total:
                self._show(interrupted_html(self.done, self.total, one_line(exc)))
            else:
                self._show(error_html(one_line(exc)))
            self.count.value = "stopped"
            return
        finally:
            self.button.disabled, self.cancel_button.disabled = False, True
        self.count.value = f"{self.done} / {self.total} instances" if self.total else "done"
        for part in audit_parts(result, html) + findings_parts(result):
            self._show_part(part)
