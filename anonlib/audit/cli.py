"""``anonlib audit``: build the inputs from folders or constellation nodes, run, report.

Exit status (see :data:`EXIT`): 0 PASS, 1 FAIL, 4 INCOMPLETE (a check could not run, an instance
had no original, or nothing was audited); configuration errors (bad ``--originals`` or ``--db``)
are raised as :class:`~anonlib.errors.ConfigError`, which the CLI turns into exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from anonlib.audit.model import VERDICTS, AuditResult, Status
from anonlib.audit.sources import Located, Progress, UidMapping, audit_located
from anonlib.errors import ConfigError

__all__ = ["EXIT", "run_audit_command", "print_summary", "headline"]

#: The audit's exit status by outcome (2: configuration, 3: store or system, from anonlib.cli).
EXIT: dict[Status, int] = {"PASS": 0, "FAIL": 1, "INCOMPLETE": 4}


def _info() -> Any:
    from anonlib.constellation import ConstellationInfo, ConstellationSettings

    return ConstellationInfo.load(ConstellationSettings.from_env().info_path)


def _is_node(text: str) -> bool:
    return not Path(text).exists() and text.replace("_", "").replace("-", "").isalnum()


def _studies_of_patients(node: Any, patients: list[str]) -> list[str]:
    from anonlib.orthanc.client import call, connect

    studies: list[str] = []
    with connect(node) as client:
        for patient in patients:
            found = cast(list[dict[str, Any]], call(node.name, "list studies", client.get_patients_id_studies, patient))
            studies += [s["ID"] for s in found]
    return studies


def _locate(args: argparse.Namespace) -> Located:
    if args.originals == "":
        raise ConfigError("--originals is empty (leave it out to audit without originals)")
    if not _is_node(args.target):
        target = Path(args.target)
        if not target.is_dir():
            raise ConfigError(f"{args.target}: not a folder (nor a constellation node name)")
        if args.originals is not None and not Path(args.originals).is_dir():
            raise ConfigError(f"originals {args.originals}: no such folder (a folder TARGET is audited "
                              "against a folder of originals)")
        return target, Path(args.originals) if args.originals is not None else None, None
    info = _info()
    node = info.node(args.target).as_reader()  # the audit only reads
    originals = info.node(args.originals).as_reader() if args.originals is not None else None
    studies = list(args.study) + (_studies_of_patients(node, args.patient) if args.patient else [])
    return node, originals, studies or None


def headline(result: AuditResult) -> str:
    """One PHI-free line: what was audited and :meth:`~AuditResult.describe`."""
    return f"audit{f' of {result.dataset}' if result.dataset else ''}: {result.describe()}"


def print_summary(result: AuditResult) -> None:
    """The headline, one line per check and category with the counts by verdict, and the
    failing and incomplete categories."""
    print(headline(result))
    for row in result.summary_rows():
        counts = "  ".join(f"{verdict} {row[verdict]:>4}" for verdict in VERDICTS)
        print(f"  {row['result']:<10}  {row['check']:<12} {row['category']:<28} {counts}")
    failing = result.failing_categories()
    if failing:
        print("failing: " + ", ".join(failing))
    incomplete = result.counts("incomplete")
    if incomplete:
        print("incomplete: " + ", ".join(f"{name} ({n})" for name, n in incomplete))


@contextmanager
def _progress_bar(show: bool) -> Iterator[Progress | None]:
    """A tqdm bar on stderr following ``progress(done, total)``, or None."""
    if not show:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=0, unit="instance", file=sys.stderr, desc="audit", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def run_audit_command(args: argparse.Namespace, uid_mapping: UidMapping | None = None) -> int:
    """Run ``anonlib audit`` with the parsed ``args``; the exit status (see :data:`EXIT`)."""
    with _progress_bar(bool(getattr(args, "progress", False)) or sys.stderr.isatty()) as progress:
        result = audit_located(*_locate(args), db_url=args.db, use_store=bool(args.db or args.originals),
                               conformance=not args.no_conformance, audit_empty=False,
                               uid_mapping=uid_mapping, progress=progress,
                               pixels=args.pixels, pixel_engine=args.pixel_engine or "")
    if not result.instances:
        print(f"audit: {result.status} — nothing to audit", file=sys.stderr)
        return EXIT[result.status]
    print_summary(result)
    if args.html:
        from anonlib.audit.report import write_html  # matplotlib and pandas: only for reports

        write_html(result, Path(args.html), title="De-identification audit")
        print(f"HTML report: {args.html}")
    if args.json:
        from anonlib.audit.report import write_json

        write_json(result, Path(args.json))
        print(f"JSON summary: {args.json}")
    return EXIT[result.status]
