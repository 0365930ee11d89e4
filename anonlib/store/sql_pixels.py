"""The pixel stage's findings and the reviewers' decisions in the SQL lookup store.

:class:`PixelReviewSql` is mixed into :class:`anonlib.store.sql.SqlStore`; it uses the store's
transactions, so errors leave as PHI-free :class:`~anonlib.errors.StoreError` like every other
call. Boxes and regions are JSON arrays of objects (``jsonb`` on PostgreSQL) holding numbers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, func, select

from anonlib.store import rules
from anonlib.store.base import PixelBox, PixelFindings, Region, ReviewDecision
from anonlib.store.db import upsert
from anonlib.store.sql_part import SqlPart
from anonlib.store.tables import pixel_finding, review

__all__ = ["PixelReviewSql"]


def _boxes(rows: Any) -> tuple[PixelBox, ...]:
    return tuple(PixelBox(int(b["frame"]), int(b["x"]), int(b["y"]), int(b["width"]), int(b["height"]),
                          float(b["score"])) for b in rows or ())


def _regions(rows: Any) -> tuple[Region, ...]:
    return tuple(Region(int(b["frame"]), int(b["x"]), int(b["y"]), int(b["width"]), int(b["height"]))
                 for b in rows or ())


class PixelReviewSql(SqlPart):
    """Pixel findings and review decisions (see :class:`~anonlib.store.base.LookupStore`)."""

    def record_pixel_findings(self, findings: PixelFindings) -> None:
        """Insert or replace the pixel findings of ``findings.original_sop_uid``."""
        what = "could not record pixel findings"
        self._check_writable(what)
        rules.check_findings(findings)
        values = {"original_sop_uid": findings.original_sop_uid, "new_sop_uid": findings.new_sop_uid,
                  "outcome": findings.outcome, "reason": findings.reason,
                  "boxes": [asdict(box) for box in findings.boxes]}
        with self._transaction(what) as conn:
            insert = upsert(conn, pixel_finding).values(**values)
            updates: dict[str, Any] = {k: insert.excluded[k] for k in values if k != "original_sop_uid"}
            updates["found_at"] = func.current_timestamp()
            conn.execute(insert.on_conflict_do_update(index_elements=[pixel_finding.c.original_sop_uid],
                                                      set_=updates))

    def discard_pixel_findings(self, *original_sop_uids: str) -> None:
        """Forget the pixel findings of these instances, in one transaction (nothing happens for
        those that have none)."""
        what = "could not discard pixel findings"
        self._check_writable(what)
        if not original_sop_uids:
            return
        with self._transaction(what) as conn:
            conn.execute(delete(pixel_finding).where(pixel_finding.c.original_sop_uid.in_(original_sop_uids)))

    def pixel_findings(self, outcome: str | None = None) -> list[PixelFindings]:
        """Every instance's pixel findings (or those with ``outcome``), by original SOP UID."""
        t = pixel_finding
        query = select(t.c.original_sop_uid, t.c.new_sop_uid, t.c.outcome, t.c.reason, t.c.boxes)
        if outcome is not None:
            query = query.where(t.c.outcome == outcome)
        rows = self._rows("could not list pixel findings", t, query)
        found = [PixelFindings(r.original_sop_uid, r.new_sop_uid, r.outcome, r.reason, _boxes(r.boxes)) for r in rows]
        return sorted(found, key=lambda f: f.original_sop_uid)

    def record_review(self, decision: ReviewDecision) -> None:
        """Insert or replace the decision about ``decision.original_sop_uid`` (the latest wins)."""
        what = "could not record review decision"
        self._check_writable(what)
        rules.check_review(decision)
        values = {"original_sop_uid": decision.original_sop_uid, "decision": decision.decision,
                  "regions": [asdict(region) for region in decision.regions], "reviewer": decision.reviewer,
                  "decided_at": rules.stamped(decision.decided_at)}
        with self._transaction(what) as conn:
            insert = upsert(conn, review).values(**values)
            updates = {k: insert.excluded[k] for k in values if k != "original_sop_uid"}
            conn.execute(insert.on_conflict_do_update(index_elements=[review.c.original_sop_uid], set_=updates))

    def review(self, original_sop_uid: str) -> ReviewDecision | None:
        """The decision about one instance, if any."""
        found = list(self._reviews(original_sop_uid))
        return found[0] if found else None

    def reviews(self) -> list[ReviewDecision]:
        """Every decision, by original SOP Instance UID."""
        return sorted(self._reviews(None), key=lambda d: d.original_sop_uid)

    def _reviews(self, original_sop_uid: str | None) -> Iterator[ReviewDecision]:
        t = review
        query = select(t.c.original_sop_uid, t.c.decision, t.c.regions, t.c.reviewer, t.c.decided_at)
        if original_sop_uid is not None:
            query = query.where(t.c.original_sop_uid == original_sop_uid)
        rows = self._rows("could not read review decisions", t, query)
        for r in rows:
            yield ReviewDecision(r.original_sop_uid, r.decision, _regions(r.regions), r.reviewer,
                                 rules.stamped(r.decided_at))
