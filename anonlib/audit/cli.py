"""``anonlib audit``: build the inputs from folders or constellation nodes, run, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast

from anonlib.audit.model import AuditInput, AuditResult
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs, orthanc_inputs, tree_names
from anonlib.engine.uids import UidMapper
from anonlib.errors import ConfigError
from anonlib.store import LookupStore, open_store

__all__ = ["run_audit_command", "print_summary"]


def _node(name: str) -> Any:
    from anonlib.constellation import ConstellationInfo, ConstellationSettings

    info = ConstellationInfo.load(ConstellationSettings.from_env().info_path)
    return info, info.node(name)


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


def _inputs(args: argparse.Namespace, store: LookupStore | None) -> tuple[list[AuditInput], dict[str, str]]:
    if not _is_node(args.target):
        target = Path(args.target)
        if not target.is_dir():
            raise ConfigError(f"{args.target}: not a folder (nor a constellation node name)")
        if args.originals and _is_node(args.originals):
            raise ConfigError("a folder TARGET is audited against a folder of originals")
        originals = Path(args.originals) if args.originals else None
        return folder_inputs(target, originals, store), tree_names(target)
    _, node = _node(args.target)
    originals = _node(args.originals)[1] if args.originals else None
    studies = list(args.study) + (_studies_of_patients(node, args.patient) if args.patient else [])
    return orthanc_inputs(node, originals, store, studies=studies or None), {}


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


def run_audit_command(args: argparse.Namespace) -> int:
    store: LookupStore | None = None
    if args.db or args.originals:
        store = open_store(args.db)
    try:
        inputs, names = _inputs(args, store)
        if not inputs:
            print("audit: nothing to audit", file=sys.stderr)
            return 1
        mapper = UidMapper(store.secret()) if store is not None else None
        result = audit(inputs, map_uid=mapper, names=names,
                       options=AuditOptions(conformance=not args.no_conformance))
    finally:
        if store is not None:
            store.close()
    print_summary(result)
    from anonlib.audit.report import write_html, write_json

    if args.html:
        write_html(result, Path(args.html), title="De-identification audit")
        print(f"HTML report: {args.html}")
    if args.json:
        write_json(result, Path(args.json))
        print(f"JSON summary: {args.json}")
    return 0 if result.passed else 1
