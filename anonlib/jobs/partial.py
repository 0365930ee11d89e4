"""Studies delivered without some of their instances: every rejected instance, with its reason.

A study job rejects an instance it cannot de-identify or place (a poison instance) and delivers
the rest: the study's delivery record says ``done`` with the reason ``partial: ...`` naming the
first few, and the job writes every rejected instance — its Orthanc ID and PHI-free reason — to
``anonlib_rejected_instance`` (replaced each time the study is processed). The study stays whole
on intake, deletion asked or not. ``anonlib jobs list --status partial`` lists each such study
with all its rejected instances; ``jobs list``, ``jobs wait`` and ``constellation status`` say
how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonlib.jobs.db import JobsDb

__all__ = ["PartialStudy", "count_partial", "describe_partial", "partial_hint", "partial_studies"]


@dataclass(frozen=True)
class PartialStudy:
    """One study delivered partially (PHI-free: Orthanc IDs, counts and reasons)."""

    node: str
    study_id: str
    instances: int
    released: int
    rejected: tuple[tuple[str, str], ...]  # (Orthanc instance ID, reason), every one recorded


def partial_studies(db: JobsDb) -> list[PartialStudy]:
    """Every study delivered without some instances, of every node, with their rejections."""
    records = db.partial()
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for one in db.rejections([(r.node, r.orthanc_study_id) for r in records]):
        found.setdefault((one.node, one.study_id), []).append((one.instance_id, one.reason))
    return [PartialStudy(r.node, r.orthanc_study_id, r.instances, r.released,
                         tuple(found.get((r.node, r.orthanc_study_id), ()))) for r in records]


def count_partial(db_url: str) -> int:
    """How many studies were delivered partially, on the constellation's database."""
    db = JobsDb(db_url)
    try:
        return len(db.partial())
    finally:
        db.close()


def describe_partial(study: PartialStudy) -> list[str]:
    """A line for the study, then one per rejected instance."""
    lines = [f"partial  {study.node:<8} {study.study_id}  {study.released:>4} of {study.instances} instances "
             f"released, {len(study.rejected)} rejected (kept on {study.node})"]
    lines += [f"  rejected {instance_id}  {reason}" for instance_id, reason in study.rejected]
    if not study.rejected:  # delivered before every rejection was kept: its job's outcome names some
        lines.append("  (its rejected instances were not recorded one by one: see its job in anonlib jobs list)")
    return lines


def partial_hint(count: int) -> str:
    """What ``jobs wait``, ``jobs list`` and ``constellation status`` say about ``count``
    partially delivered studies."""
    studies = "study" if count == 1 else "studies"
    return (f"{count} {studies} delivered partially (rejected instances kept on the source node): "
            "anonlib jobs list --status partial")
