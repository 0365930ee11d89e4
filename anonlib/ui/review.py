"""The review view of burned-in text (``notebooks/05_review.ipynb``): the instances the pixel
stage masked or quarantined, their boxes drawn on the images, and a decision per instance —
release, mask more regions, or reject — recorded in the lookup store through
:mod:`anonlib.pixel_review`. :func:`show_review` is the headless (papermill) view: plain tables
and images, no widget."""

from __future__ import annotations

from html import escape

import ipywidgets as w

from anonlib import pixel_review as pr
from anonlib.store import Region
from anonlib.ui.common import error_html
from anonlib.ui.render import show, show_html, table_html

__all__ = ["ReviewPanel", "show_review", "APPLY_NOTE"]

APPLY_NOTE = ("A decision is applied when the instance is processed again: run <code>anonlib deidentify</code> "
              "(or 03_anonymize) again on the same source and output.")


def show_review(items: list[pr.ReviewItem], *, images: int = 20) -> None:
    """The table of ``items`` and, for the first ``images`` of them, their frames with boxes."""
    if not items:
        show_html("<p class='anonlib-review-none'>Nothing to review: the pixel stage masked or quarantined "
                  "no instance.</p>")
        return
    show_html(f"<h4>{len(items)} instance(s) to review</h4><p>{APPLY_NOTE}</p>"
              + table_html(pr.review_table(items), css_class="anonlib-review-table"))
    for item in items[:images]:
        show_html(f"<h5>{escape(item.label())}</h5>")
        show(pr.item_figure(item))


class ReviewPanel(w.VBox):  # type: ignore[misc]
    """Pick an instance, see its boxes, then release it, mask more regions, or reject it."""

    def __init__(self, *, db_url: str, output: str, reviewer: str = "") -> None:
        self.db_url, self.output = db_url, output
        self.items: list[pr.ReviewItem] = []
        self._quiet = False  # no redraw while the picker's options are replaced
        self.regions: list[Region] = []
        self.picker = w.Dropdown(description="Instance", layout=w.Layout(width="90%"))
        self.picker.add_class("anonlib-review-picker")
        self.reviewer = w.Text(description="Reviewer", value=reviewer, placeholder="your name (optional)")
        self.frame, self.x, self.y = w.BoundedIntText(description="frame", max=10**6), \
            w.BoundedIntText(description="x", max=10**6), w.BoundedIntText(description="y", max=10**6)
        self.width = w.BoundedIntText(description="w", min=1, max=10**6, value=1)
        self.height = w.BoundedIntText(description="h", min=1, max=10**6, value=1)
        for field, name in ((self.frame, "frame"), (self.x, "x"), (self.y, "y"), (self.width, "w"),
                            (self.height, "h")):
            field.layout = w.Layout(width="12em")
            field.add_class(f"anonlib-review-{name}")
        self.add = w.Button(description="Add region")
        self.clear = w.Button(description="Clear regions")
        self.pending = w.HTML()
        self.release = w.Button(description="Release", button_style="success")
        self.mask = w.Button(description="Mask regions and release", button_style="warning",
                             layout=w.Layout(width="auto"))
        self.reject = w.Button(description="Reject", button_style="danger")
        for button, name in ((self.add, "add"), (self.release, "release"), (self.mask, "mask"),
                             (self.reject, "reject")):
            button.add_class(f"anonlib-review-{name}")
        self.table, self.image, self.status = w.Output(), w.Output(), w.Output()
        self.status.add_class("anonlib-review-status")
        self.picker.observe(lambda _change: None if self._quiet else self.show_item(), names="value")
        self.add.on_click(lambda _b: self.add_region())
        self.clear.on_click(lambda _b: self.clear_regions())
        self.release.on_click(lambda _b: self.decide("release"))
        self.mask.on_click(lambda _b: self.decide("mask"))
        self.reject.on_click(lambda _b: self.decide("reject"))
        super().__init__([self.table, self.picker, self.image,
                          w.HBox([self.frame, self.x, self.y, self.width, self.height]),
                          w.HBox([self.add, self.clear, self.pending]),
                          w.HBox([self.reviewer, self.release, self.mask, self.reject]), self.status])
        self.add_class("anonlib-review")
        self.refresh()

    def _item(self) -> pr.ReviewItem | None:
        return next((i for i in self.items if i.key == self.picker.value), None)

    def refresh(self, keep: str | None = None) -> None:
        """Read the findings and decisions again; show the table; keep ``keep`` selected."""
        self.table.clear_output()
        with self.table:
            try:
                self.items = pr.review_items(self.db_url, self.output)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._error(self.table, exc)
                return
            show_html(f"<p>{APPLY_NOTE}</p>" + table_html(pr.review_table(self.items),
                                                          css_class="anonlib-review-table"))
        self._quiet = True
        try:
            keys = [item.key for item in self.items]
            self.picker.options = [(item.label(), item.key) for item in self.items]
            self.picker.value = keep if keep in keys else (keys[0] if keys else None)
        finally:
            self._quiet = False
        self.show_item()

    def show_item(self) -> None:
        self.image.clear_output()
        item = self._item()
        if item is None:
            return
        with self.image:
            show_html(f"<p>{escape(item.findings.outcome)}: {len(item.findings.boxes)} box(es) found "
                      f"(red){escape(' — ' + item.findings.reason if item.findings.reason else '')}; "
                      "regions a reviewer asked to mask in amber.</p>")
            try:
                show(pr.item_figure(item))
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._error(self.image, exc)
            # the caption comes last: once it names the instance, the panel below has stopped moving
            show_html(f"<p class='anonlib-review-current'>Shown: {escape(item.label())}</p>")

    def add_region(self) -> None:
        self.regions.append(Region(self.frame.value, self.x.value, self.y.value, self.width.value,
                                   self.height.value))
        self._show_regions()

    def clear_regions(self) -> None:
        self.regions = []
        self._show_regions()

    @staticmethod
    def _error(out: w.Output, exc: Exception) -> None:
        with out:
            show_html(error_html(f"{type(exc).__name__}: {exc}"))

    def _show_regions(self) -> None:
        listed = "; ".join(f"frame {r.frame}: x {r.x} y {r.y} w {r.width} h {r.height}" for r in self.regions)
        self.pending.value = f"<span class='anonlib-review-regions'>{escape(listed) or 'no region'}</span>"

    def decide(self, decision: str) -> None:
        """Record ``decision`` about the selected instance (with the regions added, for mask)."""
        self.status.clear_output()
        item = self._item()
        if item is None:
            return
        try:
            recorded = pr.record_decision(self.db_url, item, decision,
                                          regions=tuple(self.regions) if decision == "mask" else (),
                                          reviewer=self.reviewer.value)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(self.status, exc)
            return
        self.regions = []
        self._show_regions()
        # refresh first: the "Recorded" line then also says the panel is settled, so a pick made
        # after it is never overridden by this refresh re-selecting ``item``
        self.refresh(keep=item.key)
        with self.status:
            show_html(f"<p class='anonlib-review-recorded'>Recorded: {escape(recorded.decision)} "
                      f"for {escape(item.relative or item.key)}. {APPLY_NOTE}</p>")

