"""``anonlib audit``: build the inputs from folders or constellation nodes, run, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast

from anonlib.audit.model import AuditResult
from anonlib.audit.sources import Located, UidMapping, audit_located
from anonlib.errors import ConfigError

__all__ = ["run_audit_command", "print_summary"]


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
    if not _is_node(args.target):
        target = Path(args.target)
        if not target.is_dir():
            raise ConfigError(f"{args.target}: not a folder (nor a constellation node name)")
        if args.originals and _is_node(args.originals):
            raise ConfigError("a folder TARGET is audited against a folder of originals")
        return target, Path(args.originals) if args.originals else None, None
    info = _info()
    node = info.node(args.target)
    originals = info.node(args.originals) if args.originals else None
    studies = list(args.study) + (_studies_of_patients(node, args.patient) if args.patient else [])
    return node, originals, studies or None


def print_summary(result: AuditResult) -> None:
    print(f"audit: {'PASS' if result.passed else 'FAIL'} — {result.instances} instances "
          f"({result.with_originals} with originals), date mode {result.date_mode}")
    summary = result.summary()
    for row in summary.to_dict("records"):
        print(f"  {row['result']:<4}  {row['check']:<12} {row['category']:<28} fail {row['fail']:>4}  "
              f"warn {row['warn']:>4}  expected {row['expected']:>4}  pass {row['pass']:>4}")
    failing = result.failing_categories()
    if failing:
        print("failing: " + ", ".join(failing))


def run_audit_command(args: argparse.Namespace, uid_mapping: UidMapping | None = None) -> int:
    result = audit_located(*_locate(args), db_url=args.db, use_store=bool(args.db or args.originals),
                           conformance=not args.no_conformance, audit_empty=False,
                           uid_mapping=uid_mapping)
    if not result.instances:
        print("audit: nothing to audit", file=sys.stderr)
        return 1
    print_summary(result)
    from anonlib.audit.report import write_html, write_json

    if args.html:
        write_html(result, Path(args.html), title="De-identification audit")
        print(f"HTML report: {args.html}")
    if args.json:
        write_json(result, Path(args.json))
        print(f"JSON summary: {args.json}")
    return 0 if result.passed else 1
