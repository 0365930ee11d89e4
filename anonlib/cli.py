"""The ``anonlib`` command line. Thin: it builds settings, calls the library, picks exit codes.

Exit codes: 0 success; 1 the work ran but something failed a check (``--strict``); 2 bad usage
or configuration; 3 the lookup store or another system part failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from anonlib import __version__
from anonlib.errors import AnonlibError, ConfigError, StoreError

__all__ = ["main"]


def _deidentify(args: argparse.Namespace) -> int:
    from anonlib.pipeline import RunSettings, run_folder
    from anonlib.profile import SiteProfile, load_site_profile

    profile = load_site_profile(Path(args.profile)) if args.profile else SiteProfile()
    settings = RunSettings(
        source=Path(args.src), output=Path(args.dst), db_url=args.db, profile=profile,
        workers=max(1, args.workers), quarantine=Path(args.quarantine) if args.quarantine else None,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    summary = run_folder(settings)
    for result in summary.rejected:
        print(f"rejected: {result.source}: {result.reason}", file=sys.stderr)
    print(summary.describe())
    if summary.quarantined:
        print(f"quarantined instances are in {settings.quarantine_dir} (see {settings.quarantine_dir}/quarantine.csv)")
    if args.strict and (summary.rejected or summary.quarantined):
        return 1
    return 0


def _example_data(args: argparse.Namespace) -> int:
    from anonlib.synthetic import build_corpus

    corpus = build_corpus(Path(args.dir), seed=args.seed, bad_files=not args.no_bad_files)
    print(f"wrote {len(corpus.files)} synthetic files for {len(corpus.patients)} patients to {args.dir}")
    return 0


def _constellation(args: argparse.Namespace) -> int:
    from anonlib.constellation import ConstellationSettings, manage

    settings = ConstellationSettings.from_env()
    if args.action == "up":
        info = manage.up(settings, workers=args.workers)
        for node in info.nodes.values():
            print(f"{node.name:<10} {node.url}  DICOM {node.dicom_host}:{node.dicom_port} AET {node.aet}")
        print(f"workers    {len(info.workers)} running")
        print(f"export     {info.export_dir}")
        print(f"described in {settings.info_path}")
        return 0
    if args.action == "status":
        info, nodes, workers = manage.status(settings)
        healthy = all(n.ready for n in nodes) and all(alive for _, alive in workers)
        for state_of in nodes:
            state = ("ready" if state_of.ready else
                     "running, not answering" if state_of.alive else "stopped")
            print(f"{state_of.name:<10} {state:<24} {state_of.url}")
        for pid, alive in workers:
            print(f"worker     {'running' if alive else 'stopped':<24} pid {pid}")
        return 0 if healthy else 1
    stopped = manage.down(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anonlib", description="DICOM de-identification for research")
    parser.add_argument("--version", action="version", version=f"anonlib {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details (never PHI)")
    commands = parser.add_subparsers(dest="command", required=True)

    deid = commands.add_parser("deidentify", help="de-identify every file under SRC into DST")
    deid.add_argument("src", metavar="SRC")
    deid.add_argument("dst", metavar="DST")
    deid.add_argument("--db", metavar="URL", help="lookup store URL (default: SQLite in $ANONLIB_HOME)")
    deid.add_argument("--profile", metavar="FILE", help="site profile YAML")
    deid.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes")
    deid.add_argument("--quarantine", metavar="DIR", help="quarantine folder (default: DST-quarantine)")
    deid.add_argument("--strict", action="store_true", help="exit 1 if anything was rejected or quarantined")
    deid.add_argument("--no-progress", action="store_true", help="no progress bar")
    deid.set_defaults(func=_deidentify)

    const = commands.add_parser("constellation", help="start, inspect or stop the local Orthanc constellation")
    const.add_argument("action", choices=["up", "status", "down"])
    const.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes to start (default: $ANONLIB_WORKERS or 2)")
    const.set_defaults(func=_constellation)

    example = commands.add_parser("example-data", help="write synthetic example studies (with planted PHI)")
    example.add_argument("dir", metavar="DIR")
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--no-bad-files", action="store_true", help="omit the deliberately broken files")
    example.set_defaults(func=_example_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from anonlib.dicomio import quiet_pydicom

    quiet_pydicom()  # pydicom's warnings quote values, which may be identifying
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"anonlib: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"anonlib: lookup store error: {exc}", file=sys.stderr)
        return 3
    except AnonlibError as exc:
        print(f"anonlib: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
