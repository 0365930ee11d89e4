"""The review of burned-in text, as plain functions (``notebooks/05_review.ipynb`` and its panel).

The pixel stage records in the lookup store what it masked or quarantined
(:class:`~anonlib.store.base.PixelFindings`). :func:`review_items` lists those instances with the
file each is in now (the output folder, or its ``-quarantine`` sibling, as ``anonlib
deidentify`` and the constellation's export write them) and the reviewer's decision, if any;
:func:`item_figure` draws the boxes on the instance's frames; :func:`record_decision` records a
decision (release, mask more regions, reject). A decision is applied when the instance is
processed again (:func:`anonlib.pixels.review.apply_review`).

Everything shown is keyed by the new SOP Instance UID and the output path (PHI-free); the
images themselves may show burned-in text (quarantined instances were not masked, or not
fully): the review is for the identified zone.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anonlib.errors import ConfigError, StoreError
from anonlib.store import PixelFindings, Region, ReviewDecision, open_store
from anonlib.store.base import REVIEW_DECISIONS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["REVIEW_COLUMNS", "ReviewItem", "find_item", "item_figure", "parse_regions", "quarantine_folder",
           "record_decision", "review_items", "review_table"]

REVIEW_COLUMNS = ["instance", "file", "pixel stage", "reason", "boxes", "now", "decision", "regions",
                  "reviewer", "decided"]
#: Frames drawn per instance at most (those with boxes first).
MAX_FRAMES = 4


def quarantine_folder(output: Path) -> Path:
    """Where a run into ``output`` puts quarantined instances: ``<output>-quarantine`` (as
    :attr:`anonlib.folder_run.RunSettings.quarantine_dir` and the study job's export)."""
    return output.with_name(output.name + "-quarantine")


@dataclass(frozen=True)
class ReviewItem:
    """One instance the pixel stage masked or quarantined: its findings, what became of it in
    the latest run (``status`` written | quarantined, "" when the store has no record),
    the file it is in now (``path``, None when missing) and the reviewer's decision."""

    findings: PixelFindings
    status: str
    relative: str
    path: Path | None
    decision: ReviewDecision | None

    @property
    def key(self) -> str:
        """The instance as the reviewer sees it: its new SOP Instance UID (PHI-free)."""
        return self.findings.new_sop_uid

    def label(self) -> str:
        """One line for a picker: outcome, decision, boxes and file."""
        decided = self.decision.decision if self.decision else "pending"
        return (f"{self.findings.outcome} · {decided} · {len(self.findings.boxes)} box(es) · "
                f"{self.relative or self.key}")


def review_items(db_url: str | None, output: str | Path, *, outcome: str | None = None) -> list[ReviewItem]:
    """The instances the pixel stage masked or quarantined (or only those with ``outcome``),
    from the lookup store at ``db_url`` (opened read-only), with their files under ``output``
    or its quarantine folder."""
    root = Path(output)
    store = open_store(db_url or None, readonly=True)
    try:
        findings = store.pixel_findings(outcome)
        decisions = {d.original_sop_uid: d for d in store.reviews()}
        records = {f.original_sop_uid: store.instance(f.original_sop_uid) for f in findings}
    finally:
        store.close()
    items = []
    for found in findings:
        record = records.get(found.original_sop_uid)
        status, relative = (record.status, record.output) if record is not None else ("", "")
        path = None
        if relative:
            folder = quarantine_folder(root) if status == "quarantined" else root
            path = folder / relative if (folder / relative).is_file() else None
        items.append(ReviewItem(found, status, relative, path, decisions.get(found.original_sop_uid)))
    return items


def review_table(items: list[ReviewItem]) -> pd.DataFrame:
    """One PHI-free row per item (:data:`REVIEW_COLUMNS`)."""
    import pandas as pd

    rows = []
    for item in items:
        decision = item.decision
        rows.append({
            "instance": item.key, "file": item.relative, "pixel stage": item.findings.outcome,
            "reason": item.findings.reason, "boxes": len(item.findings.boxes),
            "now": {"written": "released", "quarantined": "quarantined"}.get(item.status, "not recorded"),
            "decision": decision.decision if decision else "pending",
            "regions": "; ".join(_region_text(r) for r in decision.regions) if decision else "",
            "reviewer": decision.reviewer if decision else "",
            "decided": f"{decision.decided_at:%Y-%m-%d %H:%M} UTC" if decision and decision.decided_at else "",
        })
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS)


def find_item(items: list[ReviewItem], key: str) -> ReviewItem:
    """The item whose new SOP Instance UID or output path is ``key``; ConfigError when none is."""
    for item in items:
        if key in (item.key, item.relative):
            return item
    raise ConfigError("no instance to review has that SOP Instance UID or file")


_REGION = re.compile(r"^\s*(?:(\d+)\s*:\s*)?(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")


def _region_text(region: Region) -> str:
    return f"{region.frame}:{region.x},{region.y},{region.width},{region.height}"


def parse_regions(text: str) -> tuple[Region, ...]:
    """Regions written ``x,y,w,h`` (frame 0) or ``frame:x,y,w,h``, separated by ``;``.
    ConfigError for anything else, or a width or height of 0."""
    regions = []
    for part in (p for p in text.split(";") if p.strip()):
        match = _REGION.match(part)
        if match is None:
            raise ConfigError(f"region {part.strip()!r}: write x,y,w,h or frame:x,y,w,h (whole pixels)")
        frame, x, y, width, height = (int(v) if v else 0 for v in match.groups())
        if width <= 0 or height <= 0:
            raise ConfigError(f"region {part.strip()!r}: width and height must be at least 1 pixel")
        regions.append(Region(frame, x, y, width, height))
    return tuple(regions)


def record_decision(db_url: str | None, item: ReviewItem, decision: str, *,
                    regions: tuple[Region, ...] | str = (), reviewer: str = "") -> ReviewDecision:
    """Record the reviewer's ``decision`` (release | mask | reject) about ``item`` in the lookup
    store and return it; ``regions`` (for mask) as :class:`Region` or text (:func:`parse_regions`).
    ConfigError for an unknown decision, mask without regions, or regions with another decision."""
    if decision not in REVIEW_DECISIONS:
        raise ConfigError(f"the decision must be one of {', '.join(REVIEW_DECISIONS)}")
    chosen = parse_regions(regions) if isinstance(regions, str) else tuple(regions)
    if decision == "mask" and not chosen:
        raise ConfigError("mask needs at least one region (x,y,w,h)")
    if decision != "mask" and chosen:
        raise ConfigError(f"{decision} takes no regions (only mask does)")
    _check_inside(item, chosen)
    recorded = ReviewDecision(item.findings.original_sop_uid, decision, chosen, reviewer.strip())
    store = open_store(db_url or None)
    try:
        store.record_review(recorded)
        found = store.review(recorded.original_sop_uid)
    finally:
        store.close()
    if found is None:
        raise StoreError("could not record review decision: the lookup store did not keep it")
    return found


def _check_inside(item: ReviewItem, regions: tuple[Region, ...]) -> None:
    """ConfigError for a region that is not inside the instance's frames (when its file is
    there to tell: the run masks only what lies on the image)."""
    if not regions or item.path is None:
        return
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(item.path, stop_before_pixels=True)
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    for region in regions:
        if region.frame >= frames or region.x + region.width > columns or region.y + region.height > rows:
            raise ConfigError(f"region {_region_text(region)} is not inside the image "
                              f"({frames} frame(s) of {columns} x {rows} pixels)")


def _frames(item: ReviewItem, count: int) -> list[int]:
    wanted = sorted({b.frame for b in item.findings.boxes}
                    | {r.frame for r in (item.decision.regions if item.decision else ())})
    frames = [f for f in wanted if f < count][:MAX_FRAMES]
    return frames or [0]


def item_figure(item: ReviewItem) -> Figure:
    """The instance's frames that carry boxes (at most :data:`MAX_FRAMES`; frame 0 when none
    does) as the file is now, with the boxes the pixel stage found outlined in red and the
    reviewer's regions in amber. A file that is missing or cannot be decoded is drawn as a
    placeholder with the reason."""
    import pydicom

    from anonlib.errors import PixelError
    from anonlib.pixels.draw import FOUND, REVIEWER, frames_with_boxes
    from anonlib.sources.thumbnails import Thumbnail, placeholder, thumbnail_figure

    regions = item.decision.regions if item.decision else ()
    if item.path is None:
        return thumbnail_figure([(Thumbnail(placeholder(), "file not found"), item.relative or item.key)],
                                columns=1, inches=4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(item.path)
        frames = _frames(item, int(ds.get("NumberOfFrames", 1) or 1))
        drawn = frames_with_boxes(ds, frames, [(item.findings.boxes, FOUND), (regions, REVIEWER)])
        shown = [(Thumbnail(image), f"frame {frame}") for frame, image in zip(frames, drawn, strict=True)]
    except (PixelError, OSError, ValueError, AttributeError) as exc:
        reason = str(exc) if isinstance(exc, PixelError) else f"cannot read the file ({type(exc).__name__})"
        shown = [(Thumbnail(placeholder(), reason), item.relative)]
    return thumbnail_figure(shown, columns=min(len(shown), 2), inches=4)
