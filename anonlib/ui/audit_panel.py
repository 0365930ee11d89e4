"""The audit panel: audit a de-identified set against its originals; its verdict and findings."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from anonlib import workflows
from anonlib.ui.common import show_error
from anonlib.ui.render import findings_svg, show_html, table_html

if TYPE_CHECKING:

    pass

__all__ = ["AuditPanel", "show_audit", "show_findings"]


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
                show_error(self.out, exc)
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
