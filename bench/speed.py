"""Speed of anonlib against the floors and the other de-identifiers, one command (issue 12).

    .venv/bin/python bench/speed.py [--smoke] [--repeat 3] [--out bench/RESULTS.md]
                                    [--work bench/.work] [--no-install] [--json FILE]
                                    [--tools SUBSTR ...] [--corpora NAME ...]
                                    [--timeout 600] [--audit-timeout 240] [--prepare]
                                    [--constellation] [--constellation-repeat 2]
                                    [--profile | --no-profile]

1. Generates the corpora once, cached under ``--work`` (default ``bench/.work``, not committed;
   see ``bench/speed_corpora.py``): ``ct`` 300 CT slices 512x512 16-bit (150 MB, 6 studies,
   3 patients), ``mixed`` (CT, MR, RT, SEG, SR, GSPS, SC, US from the synthetic corpus),
   ``one`` (one CT slice: start-up), ``study-500`` and ``study-5000`` (one study of small
   CT_small slices: memory flat in the study's size).
2. Installs each peer from PyPI with default settings in its own virtualenv under
   ``<work>/venvs`` (``dicognito``, ``dicom-anonymizer``, ``deid``, ``dcmanon``;
   ``--no-install`` skips those not installed). Nothing is downloaded while measuring.
   ``--prepare`` stops here (to generate and install while the machine is busy).
3. Runs every tool once untimed on its smallest corpus (a warm-up: bytecode compiled into
   ``<work>/pycache`` through ``PYTHONPYCACHEPREFIX``, as installed software runs, although this
   machine sets ``PYTHONDONTWRITEBYTECODE``; corpora in the page cache), then
   runs every tool (``bench/speed_tools.py``) as a whole process on each corpus, rotating the
   tools' order each round and repeating ``--repeat`` rounds (``study-5000``: one round, anonlib,
   ``cp -r``, dcmanon and the audit without dciodvfy only), with
   wall time and peak RSS (``wait4``), each run into a fresh output folder and lookup store:
   ``anonlib deidentify`` with 1 and 2 workers (``--burned-in allow``: no OCR, as no peer reads
   pixels), ``cp -r`` and an unchanged pydicom read + write (the floors), the peers, and
   ``anonlib audit`` (``--pixels off``) of anonlib's own output with and without dciodvfy.
4. Prints, and inserts at the top of the "Issue 12: speed" section of ``--out`` (newest run
   first, other sections kept), a Markdown section: the machine (CPU, cores, Python, load
   average before and after, the busiest processes), the commit measured, the peers' versions,
   one row per corpus and tool (wall and CPU time, files/s, MB/s, peak RSS, time relative to
   anonlib with 1 worker, outputs written) and the issue's targets with what was measured (wall
   time gives the verdict; CPU time, user + system of the process and its children from
   ``wait4``, is the cross-check on a shared machine).
5. ``--profile`` (on by default, off with ``--smoke``): after the timed rounds, anonlib w1 once
   more on ``ct`` and on ``one`` and the audit without dciodvfy on ``ct``, untimed, under a
   CPU-time sampler (``bench/speed_sampler.py``), and the one-file command with ``-X importtime``;
   ``bench/speed_profile.py`` groups the samples into phases (interpreter, imports, plan,
   pre-pass, main pass: read / engine / encode / write, store, manifest; the audit by module) and
   the imports by package, and writes under the targets a line "gap: …; where the time goes: …"
   for each target not met, then the profile's tables.

``--smoke`` (CI, ``tests/integration/test_bench_speed_smoke.py``): tiny corpora (4 CT slices,
5 mixed files, 1 file, a 20-instance study), one round, peers only when already installed;
under 30 s.

``--constellation`` adds the constellation end to end (``bench/constellation.py``: C-STORE into
intake → delivered on research and in the export tree, 2 workers, audit gate on, StableAge 1 s)
against Orthanc's own anonymize + a peer store, on its own corpora (``const-ct-300``: one
300-slice CT study; ``const-3x100``: 100 studies of 3 instances), ``--constellation-repeat``
rounds (default 2), one fresh constellation per run; with ``--smoke``, one 3-slice study and
two 3-instance studies (about a minute). ``--corpora const`` runs the constellation only.

The anonlib measured is the one importable from the repository holding this file (``PYTHONPATH``
is set to it), run by the ``anonlib`` script of the interpreter running the bench.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from bench import constellation, speed_corpora, speed_profile, speed_report  # noqa: E402
from bench.speed_corpora import Corpus  # noqa: E402
from bench.speed_measure import Run, count_dicom, fresh, measure, run_once  # noqa: E402
from bench.speed_tools import PEERS, Context, Tool, install_peer, peer_version, tools  # noqa: E402

# --smoke runs every tool on the CT corpus, and only these on the others (under 30 s).
_SMOKE_EVERYWHERE = {"anonlib w1", "floor: cp -r", "floor: pydicom read+write", "dcmanon"}


def _shell(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0") if Path("/proc/meminfo").exists() else "0"
    commit = _shell(["git", "-C", str(_REPO), "rev-parse", "--short", "HEAD"])
    dirty = _shell(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"])
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
            "python": platform.python_version(), "system": platform.platform(),
            "commit": commit + (" (with local changes)" if dirty else ""),
            "branch": _shell(["git", "-C", str(_REPO), "rev-parse", "--abbrev-ref", "HEAD"])}


def _busiest() -> str:
    lines = _shell(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"]).splitlines()[1:6]
    return ", ".join(" ".join(line.split()[::-1]) + "%" for line in lines if line.split())


def _env(ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ctx.repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["ANONLIB_HOME"] = str(ctx.work / "anonlib-home")
    # Installed software runs from compiled bytecode: with PYTHONDONTWRITEBYTECODE (set on this
    # machine) every process would compile its imports from source. Compiled once, in the work
    # folder (nothing written into a venv or the tree), during the warm-up runs.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ctx.work / "pycache")
    env.setdefault("TQDM_DISABLE", "1")
    return env


# The 5,000-instance study (memory flat in the study's size; one round) runs only these.
_LARGE = {"anonlib w1", "anonlib w2", "floor: cp -r", "dcmanon", "anonlib audit, no dciodvfy"}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def _prepare_audit(ctx: Context, corpus: Corpus, env: dict[str, str], timeout: float) -> tuple[Path, str] | None:
    """anonlib's own output of ``corpus`` and its lookup store, what the audit rows audit (untimed).

    ``--burned-in quarantine``: images at risk of burned-in text are held back unread, so the
    audit (pixels off) passes; with ``allow`` it would rightly fail them."""
    base = ctx.work / "runs" / corpus.name / "audit-input"
    out, store = base / "out", base / "store.sqlite3"
    fresh(base)
    base.mkdir(parents=True)
    argv = [*ctx.anonlib(), "deidentify", str(corpus.folder), str(out), "--db", f"sqlite:///{store}",
            "--burned-in", "quarantine", "--no-progress"]
    _, _, code, timed_out, _ = run_once(argv, base / "deidentify.log", timeout=timeout, env=env)
    return None if code or timed_out else (out, f"sqlite:///{store}")


def _measure(ctx: Context, corpus: Corpus, tool: Tool, rnd: int, env: dict[str, str], timeout: float,
             audit_input: tuple[Path, str] | None) -> Run:
    base = ctx.work / "runs" / corpus.name / _slug(tool.name)
    fresh(base)
    base.mkdir(parents=True)
    if tool.audit:
        assert audit_input is not None
        out, store = audit_input
    else:
        out, store = base / "out", f"sqlite:///{base / 'store.sqlite3'}"
        if tool.group in ("peer", "floor") and tool.name not in ("dicognito", "floor: cp -r"):
            out.mkdir()
    got = measure(tool.argv(corpus.folder, out, store), base / "run.log", timeout=timeout, env=env)
    code, note = got.returncode, got.note
    if tool.audit:
        verdict = {0: "PASS", 1: "FAIL", 4: "INCOMPLETE"}.get(code)
        note, code = (f"audit {verdict}", 0) if verdict and not got.timed_out else (note, code)
    outputs = corpus.files if tool.audit else count_dicom(out)
    return Run(corpus.name, tool.name, rnd, got.seconds, got.peak_mb, code, got.timed_out, outputs, note, got.cpu)


def _warm_up(ctx: Context, corpora: Sequence[Corpus], chosen: Sequence[Tool], env: dict[str, str], timeout: float,
             audit_inputs: dict[str, tuple[Path, str] | None]) -> None:
    """Run each tool once, untimed, on its smallest corpus: bytecode compiled, files in the page cache."""
    for tool in chosen:
        fits = [c for c in corpora if c.kind in tool.kinds and (not tool.audit or audit_inputs.get(c.name))]
        if fits:
            corpus = min(fits, key=lambda c: c.files)
            _measure(ctx, corpus, tool, -1, env, timeout, audit_inputs.get(corpus.name))


def _profile(ctx: Context, corpora: Sequence[Corpus], chosen: Sequence[Tool], env: dict[str, str],
             timeout: float, audit_input: tuple[Path, str] | None) -> speed_profile.ProfileReport | None:
    """``--profile``: anonlib w1 on ``ct`` and ``one`` and the audit without dciodvfy on ``ct``
    once more, untimed, under the sampler."""
    w1 = next((t for t in chosen if t.name == "anonlib w1"), None)
    audit = next((t for t in chosen if t.name == speed_profile.AUDIT), None)
    found = {c.name: (c.folder, c.files) for c in corpora if c.name in ("ct", "one")}
    if w1 is None or not found:
        return None
    program = ctx.anonlib()
    audited = None
    if audit is not None and audit_input is not None and "ct" in found:
        audited = (audit.argv(found["ct"][0], *audit_input)[len(program):], found["ct"][1])
    log("profiling anonlib w1 on " + " and ".join(found) + (" and the audit" if audited else "") + " ...")
    try:
        return speed_profile.run(ctx.python, ctx.work, program,
                                 lambda src, out, store: w1.argv(src, out, store)[len(program):], found, env, timeout,
                                 audited)
    except Exception as exc:  # noqa: BLE001 - a broken profile must not lose the timed rounds
        log(f"the profile failed: {exc!r}")
        return speed_profile.ProfileReport(notes=[f"The profile failed: {type(exc).__name__}: {exc}"])


def _profile_markdown(report: speed_profile.ProfileReport, targets: str,
                      all_rows: Sequence[speed_report.Row]) -> list[str]:
    """The gap lines and the profile's tables (a failure to write them noted, the run kept)."""
    try:
        return [speed_profile.gap_lines(targets, report, all_rows), speed_profile.markdown(report, all_rows)]
    except Exception as exc:  # noqa: BLE001 - a broken profile must not lose the timed rounds
        return [f"The profile could not be summarised: {type(exc).__name__}: {exc}"]


def _header(info: dict[str, str], load_before: tuple[float, ...], load_after: tuple[float, ...], busiest: str,
            versions: dict[str, str], args: argparse.Namespace, started: dt.datetime, seconds: float) -> str:
    mode = "smoke" if args.smoke else "full"
    peers = ", ".join(f"{p} {v}" if v else f"{p} not installed" for p, v in versions.items())
    return "\n".join([
        f"### {started:%Y-%m-%d %H:%M} UTC, {mode} run, {info['branch']} at {info['commit']}",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/speed.py', *sys.argv[1:]])}` — {args.repeat} round(s), "
        f"{seconds / 60:.1f} min in all; "
        + ("no warm-up" if args.smoke else "after one untimed warm-up run of each tool")
        + " (bytecode compiled once into the work folder: `PYTHONPYCACHEPREFIX`, `PYTHONDONTWRITEBYTECODE` unset).",
        "",
        f"Machine: {info['cpu']}, {info['cores']} logical CPUs, {info['memory']}, Python {info['python']}, "
        f"{info['system']}. Load average before: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}. Busiest processes before the run: {busiest}.",
        "",
        f"Peers (own virtualenvs, PyPI, default settings): {peers}.",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny corpora, one round, no peer installs")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3; --smoke: 1)")
    parser.add_argument("--out", type=Path, default=None, help="results file to insert the section into")
    parser.add_argument("--work", type=Path, default=_REPO / "bench" / ".work", help="corpora, venvs, runs")
    parser.add_argument("--json", type=Path, default=None, help="every run, as JSON")
    parser.add_argument("--no-install", action="store_true", help="skip peers not installed yet")
    parser.add_argument("--tools", nargs="+", default=None, help="only tools whose name contains one of these")
    parser.add_argument("--corpora", nargs="+", default=None, help="only these corpora (ct, mixed, one, study)")
    parser.add_argument("--prepare", action="store_true", help="generate the corpora, install the peers, stop")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    parser.add_argument("--audit-timeout", type=float, default=240, help="same, for the audit")
    parser.add_argument("--constellation", action="store_true",
                        help="also the constellation end to end against Orthanc's anonymize + peer store")
    parser.add_argument("--constellation-repeat", type=int, default=2, help="its rounds (default 2; --smoke: 1)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile anonlib w1 on ct and one, untimed (default: on, off with --smoke)")
    args = parser.parse_args(argv)
    if args.smoke and "--repeat" not in (argv if argv is not None else sys.argv[1:]):
        args.repeat = 1
    started, load_before, busiest, info = dt.datetime.now(dt.UTC), os.getloadavg(), _busiest(), machine()
    ctx = Context(python=Path(sys.executable), repo=_REPO, work=args.work.resolve())
    ctx.work.mkdir(parents=True, exist_ok=True)
    env = _env(ctx)

    specs = [s for s in speed_corpora.plan(args.smoke) if not args.corpora or s.name in args.corpora]
    corpora = [speed_corpora.build(ctx.work, spec, log) for spec in specs]
    versions = {}
    for package in PEERS:
        if not (args.smoke or args.no_install):
            install_peer(ctx, package, log)
        versions[package] = peer_version(ctx, package)
    if args.prepare:
        return 0
    chosen = [t for t in tools(ctx) if (not t.needs or versions.get(t.needs))
              and (not args.tools or any(s in t.name for s in args.tools))]

    audit_inputs = {c.name: _prepare_audit(ctx, c, env, args.timeout) for c in corpora
                    if any(t.audit and c.kind in t.kinds for t in chosen) and not (args.smoke and c.kind != "ct")}
    if not args.smoke:
        _warm_up(ctx, corpora, chosen, env, args.timeout, audit_inputs)
    runs: list[Run] = []
    gave_up: set[tuple[str, str]] = set()
    for rnd in range(args.repeat):
        for corpus in corpora:
            if rnd and corpus.files > 1000:
                continue
            order = chosen[rnd % len(chosen):] + chosen[:rnd % len(chosen)]
            for tool in order:
                if corpus.kind not in tool.kinds or (corpus.name, tool.name) in gave_up:
                    continue
                if args.smoke and corpus.kind != "ct" and tool.name not in _SMOKE_EVERYWHERE:
                    continue
                if corpus.files > 1000 and tool.name not in _LARGE:
                    continue
                if tool.audit and audit_inputs.get(corpus.name) is None:
                    continue
                timeout = args.audit_timeout if tool.audit else args.timeout
                run = _measure(ctx, corpus, tool, rnd, env, timeout, audit_inputs.get(corpus.name))
                runs.append(run)
                log(f"round {rnd + 1}/{args.repeat} {corpus.name:11s} {tool.name:28s} {run.seconds:7.2f} s "
                    f"{run.peak_mb:6.0f} MB  out {run.outputs}  {run.note}")
                if run.timed_out:
                    gave_up.add((corpus.name, tool.name))

    profiled = _profile(ctx, corpora, chosen, env, args.timeout, audit_inputs.get("ct")) \
        if (not args.smoke if args.profile is None else args.profile) else None
    const_corpora: list[Corpus] = []
    if args.constellation:
        const_corpora = [c for c in constellation.corpora(ctx.work, args.smoke, log)
                         if not args.corpora or any(s in c.name for s in args.corpora)]
        runs += constellation.measure(ctx.work, const_corpora, repeat=1 if args.smoke else args.constellation_repeat,
                                      timeout=args.timeout, log=log)
    all_rows = speed_report.rows([*corpora, *const_corpora], [t.name for t in chosen] + list(constellation.TOOLS),
                                 runs)
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    targets = speed_report.targets(all_rows)
    section = "\n\n".join([
        _header(info, load_before, os.getloadavg(), busiest, versions, args, started, elapsed),
        speed_report.table(all_rows),
        "Targets (issue 12):",
        targets,
        *(_profile_markdown(profiled, targets, all_rows) if profiled else []),
    ])
    print(section)
    if args.out:
        speed_report.insert_section(args.out, section)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
