"""The ``anonlib`` command line. Thin: it builds settings, calls the library, picks exit codes.

Exit codes: 0 success; 1 the work ran but something failed a check (``--strict``: an input
rejected, quarantined or in conflict with another; an audit that FAILs; failed jobs); 2 bad usage
or configuration; 3 the lookup store or another system part failed; 4 the audit is INCOMPLETE (a
check could not run, an instance had no original); 5 ``jobs wait``: everything settled, but
studies are held by the audit gate.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from anonlib import __version__
from anonlib.errors import AnonlibError, ConfigError, StoreError

__all__ = ["main"]

#: What Orthanc calls its resources: a SHA-1 digest in five groups of 8 hex digits.
_ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")


def _deidentify(args: argparse.Namespace) -> int:
    from anonlib.folder_run import RunSettings, run_folder
    from anonlib.pipeline import CONFLICT_LIST, QUARANTINE_MANIFEST
    from anonlib.profile import SiteProfile, load_site_profile

    profile = load_site_profile(Path(args.profile)) if args.profile else SiteProfile()
    if args.burned_in or args.ocr_engine:
        from dataclasses import replace

        policy = replace(profile.burned_in, **{k: v for k, v in (("mode", args.burned_in),
                                                                 ("engine", args.ocr_engine)) if v})
        profile = replace(profile, burned_in=policy)
    settings = RunSettings(
        source=Path(args.src), output=Path(args.dst), db_url=args.db, profile=profile,
        workers=max(1, args.workers), quarantine=Path(args.quarantine) if args.quarantine else None,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    summary = run_folder(settings)
    for result in summary.rejected + summary.conflicts:
        print(f"{result.status}: {result.source}: {result.reason}", file=sys.stderr)
    print(summary.describe())
    if summary.quarantined:
        print(f"quarantined instances are in {settings.quarantine_dir} (see {settings.quarantine_dir}/{QUARANTINE_MANIFEST})")
    if summary.conflicts or summary.duplicates:
        print(f"inputs not processed because another carries their SOP Instance UID are listed in "
              f"{settings.quarantine_dir}/{CONFLICT_LIST}")
    if args.strict and (summary.rejected or summary.quarantined or summary.conflicts):
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
        for item in manage.exposed_paths(settings) if args.fix_permissions else []:
            print(f"tightened {item.path} (was mode {item.mode:04o}): chmod -R go-rwx", file=sys.stderr)
        info = manage.up(settings, workers=args.workers, fix_permissions=args.fix_permissions)
        for node in info.nodes.values():
            print(f"{node.name:<10} {node.url}  DICOM {node.dicom_host}:{node.dicom_port} AET {node.aet}")
        print(f"workers    {len(info.workers)} running")
        print(f"export     {info.export_dir}")
        print(f"described in {settings.info_path}")
        return 0
    if args.action == "status":
        exposed = manage.exposed_paths(settings)
        for item in exposed:  # identified data other users can read: a fault, like a dead node
            print(f"anonlib: warning: {item.line()}", file=sys.stderr)
        info, nodes, workers = manage.status(settings)
        watching = manage.node_watch_state(settings)
        healthy = (all(n.ready for n in nodes) and all(w.healthy for w in workers) and not exposed
                   and watching != "stopped")
        for state_of in nodes:
            state = ("ready" if state_of.ready else
                     "running, not answering" if state_of.alive else "stopped")
            again = state_of.restarts
            restarted = (f"  restarted {again.count} time{'s' if again.count != 1 else ''}, last at {again.last} "
                         f"(it had ended: {again.ended})" if again else "")
            print(f"{state_of.name:<10} {state:<24} {state_of.url}{restarted}")
        print(f"{'nodes-sup':<10} {watching}")
        for worker in workers:
            beat = f"heartbeat {worker.heartbeat_age:.0f} s ago" if worker.heartbeat_age is not None else ""
            print(f"{worker.name:<10} {worker.state:<24} pid {worker.pid}  {beat}".rstrip())
        _print_held(info.db_url)
        return 0 if healthy else 1
    stopped = manage.down(settings)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _print_held(db_url: str) -> None:
    """The counts of studies the audit gate holds and of studies delivered partially
    (``unknown`` when the database cannot be read)."""
    from anonlib.jobs.held import count_held, held_hint
    from anonlib.jobs.partial import count_partial, partial_hint

    try:
        held, partial = count_held(db_url), count_partial(db_url)
    except StoreError as exc:
        print(f"held       unknown (the database cannot be read: {exc})")
        return
    print(f"held       {held_hint(held) if held else 'no study held by the audit gate'}")
    print(f"partial    {partial_hint(partial) if partial else 'no study delivered partially'}")


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from anonlib.jobs.heartbeat import HeartbeatTiming
    from anonlib.jobs.runtime import load_info
    from anonlib.jobs.worker import WorkerSettings, run_worker

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    state = os.environ.get("ANONLIB_WORKER_STATE", "")
    settings = WorkerSettings(concurrency=args.concurrency, interval=args.interval,
                              reconcile_interval=args.reconcile_interval, timing=HeartbeatTiming.from_env(),
                              state_file=Path(state) if state else None, retention=_retention_seconds())
    os.umask(0o077)  # identified data passes through: the spool, export tree and logs are its owner's only
    from anonlib.phases import enable_from_env

    enable_from_env()  # ANONLIB_PHASE_TIMES=1: each study job logs where its time went
    asyncio.run(run_worker(load_info(), settings))
    return 0


def _retention_seconds() -> float:
    """``ANONLIB_JOBS_RETENTION_HOURS`` (default 168: a week; 0 keeps every job) in seconds."""
    raw = os.environ.get("ANONLIB_JOBS_RETENTION_HOURS", "").strip() or "168"
    try:
        hours = float(raw)
    except ValueError:
        raise ConfigError(f"ANONLIB_JOBS_RETENTION_HOURS must be a number of hours, not {raw!r}") from None
    if hours < 0:
        raise ConfigError("ANONLIB_JOBS_RETENTION_HOURS must not be negative")
    return hours * 3600


def _enqueue(args: argparse.Namespace) -> int:
    import json

    from anonlib.jobs.commands import session
    from anonlib.jobs.runtime import load_info

    query = None
    if args.query is not None:
        try:
            query = json.loads(args.query)
        except ValueError:
            raise ConfigError("--query must be a JSON object") from None
    for option, value in (("--study", args.study), ("--patient", args.patient)):
        if value is not None and not _ORTHANC_ID.fullmatch(value):
            raise ConfigError(f"{option} takes an Orthanc ID (five groups of 8 hex digits, as "
                              f"`anonlib jobs list` and Orthanc Explorer show them), not a path or a name")
    with session(load_info()) as current:
        queued = current.enqueue(args.node, study=args.study, patient=args.patient, query=query,
                                 force=args.force)
    if queued is None:
        print(f"anonlib: {args.node} has no such {'study' if args.study else 'patient'}", file=sys.stderr)
        return 1
    for item in queued:
        print(f"{item.study_id}  {'queued as' if item.created else 'already queued in'} job {item.job_id}")
    print(f"{sum(i.created for i in queued)} queued, {sum(not i.created for i in queued)} already waiting")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from anonlib.jobs.cli import run_jobs_command

    return run_jobs_command(args)


def _audit(args: argparse.Namespace) -> int:
    from anonlib.audit.cli import run_audit_command
    from anonlib.engine.uids import UidMapper

    return run_audit_command(args, uid_mapping=UidMapper)


def _parameter_value(text: str) -> object:
    """``-p`` values are typed the way papermill types them: True/False/None, int, float, str."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _notebook(args: argparse.Namespace) -> int:
    from anonlib.notebooks import (
        IDENTIFIED_STAMP,
        NotebookError,
        absolute_paths,
        notebook_report,
        resolve_notebook,
        run_notebook,
    )

    try:
        if args.action == "run":
            parameters = {key: _parameter_value(value) for key, value in args.parameters}
            parameters.update({key: value for key, value in args.raw_parameters})
            parameters = absolute_paths(parameters, Path.cwd())
            out = run_notebook(resolve_notebook(args.notebook), Path(args.output), parameters,
                               timeout=args.timeout, kernel=args.kernel)
            print(f"executed notebook written to {out} (it may show identifying values: keep it in the identified zone)")
            return 0
        html = notebook_report(Path(args.executed), Path(args.report), allow_identified=args.allow_identified)
        if args.allow_identified and f"<title>{IDENTIFIED_STAMP}" in html.read_text(encoding="utf-8"):
            print(f"report written to {html} — it CONTAINS IDENTIFIED DATA: keep it in the identified zone")
        else:
            print(f"report written to {html}")
        return 0
    except NotebookError as exc:
        print(f"anonlib: notebook failed: {exc}", file=sys.stderr)
        return 1


def _print_access_log(rows: list[dict[str, str]]) -> None:
    """The access log as aligned columns (no values: there are none in it)."""
    if not rows:
        print("the access log is empty")
        return
    for row in rows:
        print(f"{row['when']}  {row['who']:<16} {row['action']:<7} {row['result']:<34} {row['entries']:>7}  "
              f"{row['digest']}".rstrip())


def _reidentify(args: argparse.Namespace) -> int:
    from anonlib.reidentify import SUBSTITUTE_PREFIX, access_rows, accessor, open_key_store, reidentify

    if args.value is None and not args.log:
        raise ConfigError("give a pseudonym or a de-identified UID to look up (or --log)")
    store = open_key_store(args.db)
    try:
        if args.log:
            _print_access_log(access_rows(store.access_log(args.limit)))
            return 0
        found = reidentify(store, args.value, accessor(args.user))
    finally:
        store.close()
    if found is None:
        print("anonlib: not found: no patient pseudonym or de-identified UID in the lookup store matches "
              "(the lookup is in the access log)", file=sys.stderr)
        return 1
    print(found.value + (f"\t{found.issuer}" if found.issuer else ""))  # the authorised purpose: stdout only
    if found.kind == "patient" and found.value.startswith(SUBSTITUTE_PREFIX):
        print("anonlib: the original had no PatientID; shown is the key it was given instead", file=sys.stderr)
    return 0


def _mapping(args: argparse.Namespace) -> int:
    from anonlib.mapping_export import PATID_FILE, UID_FILE, export_mapping
    from anonlib.reidentify import access_rows, accessor, open_key_store

    store = open_key_store(args.db)
    try:
        if args.action == "log":
            _print_access_log(access_rows(store.access_log(args.limit)))
            return 0
        result = export_mapping(store, Path(args.dir), accessor(args.user))
    finally:
        store.close()
    print(f"wrote {result.folder / PATID_FILE} ({result.patients} patients) and {result.folder / UID_FILE} "
          f"({result.uids} UIDs): they RE-IDENTIFY the data, keep them in the identified zone; "
          "the export is in the access log")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from anonlib.lab import run_lab

    if not 0 <= args.port <= 65535:
        raise ConfigError("--port must be between 0 and 65535")
    return run_lab(port=args.port, open_browser=not args.no_browser)


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
    deid.add_argument("--burned-in", choices=["ocr", "quarantine", "allow"], default=None,
                      help="burned-in text: read with OCR and mask (default), quarantine images at risk "
                           "unread, or trust the data (overrides the profile)")
    deid.add_argument("--ocr-engine", choices=["rapidocr", "tesseract"], default=None,
                      help="OCR engine for burned-in text (default: the profile's, else rapidocr)")
    deid.add_argument("--strict", action="store_true", help="exit 1 if anything was rejected, quarantined or in conflict")
    deid.add_argument("--no-progress", action="store_true", help="no progress bar")
    deid.set_defaults(func=_deidentify)

    const = commands.add_parser("constellation", help="start, inspect or stop the local Orthanc constellation")
    const.add_argument("action", choices=["up", "status", "down"])
    const.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes to start (default: $ANONLIB_WORKERS or 2)")
    const.add_argument("--fix-permissions", action="store_true",
                       help="up: remove other users' access (chmod -R go-rwx) to ANONLIB_HOME, node folders "
                            "and store files left open by an older anonlib, instead of refusing to start")
    const.set_defaults(func=_constellation)

    worker = commands.add_parser("worker", help="run a job worker (study jobs + catch-up) until SIGTERM")
    worker.add_argument("--concurrency", type=int, default=1, metavar="N", help="jobs run at once (threads)")
    worker.add_argument("--interval", type=float, default=5.0, metavar="S",
                        help="seconds between two reads of the /changes feeds")
    worker.add_argument("--reconcile-interval", type=float, default=300.0, metavar="S",
                        help="seconds between two reconcile passes over every study")
    worker.set_defaults(func=_worker)

    enqueue = commands.add_parser("enqueue", help="queue intake studies (by study, patient or query)")
    what = enqueue.add_mutually_exclusive_group(required=True)
    what.add_argument("--study", metavar="ID", help="Orthanc study ID")
    what.add_argument("--patient", metavar="ID", help="Orthanc patient ID (every study)")
    what.add_argument("--query", metavar="JSON", help='/tools/find study query, e.g. \'{"StudyDate": "20230101-"}\'')
    enqueue.add_argument("--node", default="intake", help="source node (default: intake)")
    enqueue.add_argument("--force", action="store_true",
                         help="process even studies already delivered as they are (e.g. after a profile change)")
    enqueue.set_defaults(func=_enqueue)

    jobs = commands.add_parser("jobs", help="list, retry or wait for study jobs")
    jobs_actions = jobs.add_subparsers(dest="action", required=True)
    listing = jobs_actions.add_parser("list", help="study jobs, newest first")
    listing.add_argument("--status", choices=["todo", "doing", "succeeded", "failed", "cancelled", "aborted", "held",
                                              "partial"],
                         help="a job status; held: the studies the audit gate holds, with the reason; partial: "
                              "the studies delivered without some instances, with every rejected instance")
    listing.add_argument("--limit", type=int, default=200, metavar="N")
    retry = jobs_actions.add_parser("retry", help="queue a failed job's study again, or every held study")
    retry_what = retry.add_mutually_exclusive_group(required=True)
    retry_what.add_argument("job_id", nargs="?", type=int, metavar="ID")
    retry_what.add_argument("--failed", action="store_true", help="every failed job not yet superseded")
    retry_what.add_argument("--held", action="store_true",
                            help="every study the audit gate holds, processed again (forced) after a fix")
    waiting = jobs_actions.add_parser("wait", help="wait until every intake study is delivered "
                                                   "(exit 5 when studies are held by the audit gate)")
    waiting.add_argument("--timeout", type=float, required=True, metavar="S")
    waiting.add_argument("--poll", type=float, default=1.0, metavar="S", help=argparse.SUPPRESS)
    jobs.set_defaults(func=_jobs)

    aud = commands.add_parser("audit", help="audit de-identified data: Safe Harbor, leaks, consistency, dciodvfy",
                              epilog="exit status: 0 PASS, 1 FAIL, 4 INCOMPLETE (an instance without its original, "
                                     "a check that could not run, pixels that could not be decoded or read, "
                                     "nothing audited), 2 configuration error (bad "
                                     "--originals or --db), 3 lookup store or system error")
    aud.add_argument("target", metavar="TARGET", help="a folder, or a constellation node name (e.g. research)")
    aud.add_argument("--originals", metavar="SRC", help="the originals: a folder or a node name (e.g. intake)")
    aud.add_argument("--db", metavar="URL", help="lookup store URL (to find each output's original)")
    aud.add_argument("--study", action="append", default=[], metavar="ID",
                     help="audit only this Orthanc study of TARGET (repeatable)")
    aud.add_argument("--patient", action="append", default=[], metavar="ID",
                     help="audit only this Orthanc patient of TARGET (repeatable)")
    aud.add_argument("--html", metavar="FILE", help="write the HTML report here")
    aud.add_argument("--json", metavar="FILE", help="write the JSON summary here")
    aud.add_argument("--no-conformance", action="store_true",
                     help="skip dciodvfy (faster; reported as skipped, never as passed)")
    aud.add_argument("--pixels", choices=["sample", "all", "off"], default="sample",
                     help="read released images with OCR for burned-in text of the originals: as the engine "
                          "samples them (default), every image, or not at all (reported as skipped)")
    aud.add_argument("--pixel-engine", metavar="NAME",
                     help="OCR engine of the pixel check (rapidocr, tesseract; default: the project's default)")
    aud.add_argument("--progress", action="store_true",
                     help="show a progress bar on stderr even when it is not a terminal")
    aud.set_defaults(func=_audit)

    nb = commands.add_parser("notebook", help="run a notebook headless (papermill) or write its offline HTML report")
    nb_actions = nb.add_subparsers(dest="action", required=True)
    nb_run = nb_actions.add_parser("run", help="execute a notebook with parameters (interactive=False unless given)")
    nb_run.add_argument("notebook", metavar="NAME_OR_PATH",
                        help="browse, preview, anonymize, audit, review, reidentify, or a notebook file; the kernel runs in "
                             "the notebook's folder (relative source/output/originals/profile paths and "
                             "sqlite:/// URLs given here are made absolute)")
    nb_run.add_argument("output", metavar="OUTPUT.ipynb", help="the executed notebook (may show identifying values)")
    nb_run.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", default=[],
                        metavar=("KEY", "VALUE"), help="a parameter, typed like papermill's -p (repeatable)")
    nb_run.add_argument("-r", "--raw", dest="raw_parameters", nargs=2, action="append", default=[],
                        metavar=("KEY", "VALUE"), help="a parameter kept as a string (repeatable)")
    nb_run.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="seconds any one cell may run before the run fails (default 600)")
    nb_run.add_argument("--kernel", metavar="NAME", help="kernel name (default: the notebook's)")
    nb_report = nb_actions.add_parser("report", help="an executed notebook as standalone HTML, no code, offline")
    nb_report.add_argument("executed", metavar="EXECUTED.ipynb")
    nb_report.add_argument("report", metavar="REPORT.html")
    nb_report.add_argument("--allow-identified", action="store_true",
                           help="report a notebook that shows identified data (browse, preview, anonymize, review, "
                                "reidentify); "
                                "every page is stamped CONTAINS IDENTIFIED DATA")
    nb.set_defaults(func=_notebook)

    reid = commands.add_parser("reidentify", help="authorised users: the original PatientID of a pseudonym, or the "
                                                  "original of a de-identified UID",
                               epilog="the original goes to stdout, nothing to any log; every lookup is appended to "
                                      "the lookup store's access log (who, when, what kind; never a value). exit "
                                      "status: 0 found, 1 not found, 2 no such store, 3 store error")
    reid.add_argument("value", nargs="?", metavar="PSEUDONYM|UID")
    reid.add_argument("--db", metavar="URL", help="lookup store URL (default: SQLite in $ANONLIB_HOME)")
    reid.add_argument("--user", metavar="NAME", help="who is looking up, for the access log "
                                                     "(default: $ANONLIB_USER, else the OS user)")
    reid.add_argument("--log", action="store_true", help="show the access log instead (newest first)")
    reid.add_argument("--limit", type=int, default=50, metavar="N", help="--log: entries shown (default 50)")
    reid.set_defaults(func=_reidentify)

    mapping = commands.add_parser("mapping", help="authorised users: export the key as patid_mapping.csv and "
                                                  "uid_mapping.csv (id_old,id_new), or show its access log")
    mapping_actions = mapping.add_subparsers(dest="action", required=True)
    export = mapping_actions.add_parser("export", help="write the two CSV files (0600) into DIR (0700), which must "
                                                       "lie outside every output and export folder")
    export.add_argument("dir", metavar="DIR")
    export.add_argument("--user", metavar="NAME", help="who exports, for the access log "
                                                       "(default: $ANONLIB_USER, else the OS user)")
    mapping_log = mapping_actions.add_parser("log", help="the access log of the key, newest first (no values)")
    mapping_log.add_argument("--limit", type=int, default=50, metavar="N", help="entries shown (default 50)")
    for sub in (export, mapping_log):
        sub.add_argument("--db", metavar="URL", help="lookup store URL (default: SQLite in $ANONLIB_HOME)")
    mapping.set_defaults(func=_mapping)

    lab = commands.add_parser("lab", help="start JupyterLab on your working copy of the notebooks "
                                          "($ANONLIB_HOME/notebooks); prints its URL with the token")
    lab.add_argument("--port", type=int, default=0, metavar="N", help="port on 127.0.0.1 (default: a free one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(func=_lab)

    example = commands.add_parser("example-data", help="write synthetic example studies (with planted PHI)")
    example.add_argument("dir", metavar="DIR")
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--no-bad-files", action="store_true", help="omit the deliberately broken files")
    example.set_defaults(func=_example_data)
    return parser


def _exit_without_teardown(status: int) -> None:
    """At interpreter exit, end the process at once with ``status`` (issue 12: tearing down the
    modules and objects of a de-identification run took ~0.04 s of a 0.25 s start-up budget).

    Registered last, so it runs first of the ``atexit`` handlers: after the caller's own
    ``finally`` blocks (bench/speed_sampler.py's dump) and after Python has joined the non-daemon
    threads. The run has closed its output files, manifests and lookup store by then; what is left
    to do is what the skipped handlers would: flush and close the logging handlers and the
    standard streams. A normal exit is kept when a worker process is still alive or coverage.py
    (which writes its data at exit) is measuring."""
    import atexit

    def now() -> None:
        multiprocessing = sys.modules.get("multiprocessing")
        if multiprocessing is not None and multiprocessing.active_children():
            return
        if "coverage" in sys.modules:
            return
        logging.shutdown()
        code = status
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except ValueError:  # already closed
                pass
            except OSError:  # a full disk, a reader gone: the summary is lost, so say so by the status
                code = code or 120  # what Python's own exit gives when flushing stdout fails
        os._exit(code)

    atexit.register(now)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status = _run(args, own_process=argv is None)
    if argv is None and args.func is _deidentify:
        # the process's own command line (the console script, bench/speed_sampler.py), not a
        # caller in a longer-lived process (tests pass ``argv``)
        _exit_without_teardown(status)
    return status


def _run(args: argparse.Namespace, *, own_process: bool = False) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # One BLAS thread per process unless the user says otherwise: anonlib's numpy work is
    # element-wise, parallelism comes from worker processes, and OpenBLAS's idle threads spin
    # after numpy's import (~0.1 s of CPU at start-up on 2 cores, measured for issue 12).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if own_process and args.func is _deidentify:
        # only for the process's own command line: a longer-lived caller (tests, a notebook
        # calling main) keeps pydicom's eager imports, so no import hook outlives the command
        from anonlib.lazy_imports import deferred

        with deferred():  # numpy, Pillow, the pixel codecs and plugins: loaded if a pixel is decoded
            import pydicom  # noqa: F401
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
    except BrokenPipeError:  # the reader went away (``anonlib audit … | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
