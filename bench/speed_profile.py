"""Where the time goes, written by the run itself (``bench/speed.py --profile``, issue 12).

After the timed rounds, one extra untimed run of ``anonlib deidentify --workers 1`` on the CT
corpus and one on the one-file corpus, each under ``bench/speed_sampler.py`` (CPU-time
sampling, standard library only), plus one run of the one-file command with
``PYTHONPROFILEIMPORTTIME=1`` (``python -X importtime``). Their samples are grouped into the
folder run's phases by :func:`phase_of` (rules below, tested on a recorded profile in
``tests/unit/test_bench_speed_profile.py``), the imports by top-level package
(:func:`import_groups`), and each target not met gets a line "gap: …; where the time goes: …"
(:func:`gap_lines`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.speed_measure import Measured, fresh, measure
from bench.speed_report import Row

AUDIT = "anonlib audit, no dciodvfy"  # bench/speed_tools.py's name of the audit profiled

__all__ = ["Profile", "PhaseTable", "PHASES", "MAIN_PASS", "phase_of", "phases", "import_groups",
           "first_file_cpu", "module_of", "module_phases", "ProfileReport", "run", "markdown", "gap_lines"]

# A pattern is "module" (that module or one under it), "module:qualname" (that function, or a
# function defined inside it) or ":qualname" (that function in any module). A sample's phase is
# the first rule (in this order) with a pattern matching any frame of its stack.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("imports", ("importlib._bootstrap", "importlib._bootstrap_external")),
    ("store", ("anonlib.store", "sqlite3", ":InstanceProcessor.flush", ":InstanceProcessor.identity",
               ":InstanceProcessor.record_placed")),
    ("manifest", ("anonlib.sinks.folder:update_manifest", "anonlib.sinks.folder:write_list",
                  "anonlib.sinks.folder:write_manifest")),
    ("main pass", ("anonlib.folder_run:_results", "anonlib.pipeline:InstanceProcessor.process")),
    ("pre-pass", ("anonlib.inputs", "anonlib.folder_run:_known_by_file", "anonlib.folder_run:_readings",
                  "anonlib.folder_run:discover_files")),
    ("plan", ("anonlib.profile.plan:build_plan", ":load_site_profile")),
]
# Inside the main pass, the same way.
MAIN_PASS: list[tuple[str, tuple[str, ...]]] = [
    ("read", ("anonlib.pipeline:InstanceProcessor.deidentify_file.<locals>", "anonlib.dicomio.files:read_instance",
              "anonlib.dicomio.header")),
    ("encode", ("anonlib.dicomio.encode", ":encode_instance", "pydicom.filewriter")),
    ("write (+ sha256 of the output)", ("anonlib.sinks", "anonlib.pipeline:InstanceProcessor.deliver")),
    ("IOD tables, loaded once", ("anonlib.profile.iod:_lines", "anonlib.profile.iod:_index")),
    ("engine", ("anonlib.engine", "anonlib.pipeline:InstanceProcessor.deidentify_parsed", "anonlib.pixels")),
]
OTHER = "other (CLI, summary)"
EXIT = "exit (not sampled)"
WORKERS_EXIT = "worker processes and exit (not sampled)"
THREADS = "other threads (not sampled: numpy's OpenBLAS threads…)"
DUMP = "the profile's own dump (not in the timed runs)"
ORDER = ["interpreter", "imports", "plan", "pre-pass", *(f"main pass: {p}" for p, _ in MAIN_PASS),
         "main pass: other", "store", "manifest", OTHER, THREADS, EXIT, DUMP]


def _matches(pattern: str, frame: str) -> bool:
    module, _, qualname = frame.partition(":")
    if ":" not in pattern:
        return module == pattern or module.startswith(pattern + ".")
    want_module, _, want_qualname = pattern.partition(":")
    if want_module and module != want_module:
        return False
    return qualname == want_qualname or qualname.startswith(want_qualname + ".")


def _first(rules: Sequence[tuple[str, tuple[str, ...]]], stack: Sequence[str]) -> str | None:
    for name, patterns in rules:
        if any(_matches(p, frame) for p in patterns for frame in stack):
            return name
    return None


def phase_of(stack: Sequence[str]) -> str:
    """The phase of one sample (``stack``: ``module:qualname`` frames, outermost first)."""
    phase = _first(PHASES, stack)
    if phase is None:
        return OTHER
    if phase == "main pass":
        return f"main pass: {_first(MAIN_PASS, stack) or 'other'}"
    return phase


@dataclass(frozen=True)
class Profile:
    """One sampled process (``bench/speed_sampler.py``'s JSON) and its rusage CPU seconds."""

    interpreter_cpu: float
    stacks: list[list[str]]
    samples: list[tuple[int, int]]
    cpu: float = 0.0
    dump_cpu: float = 0.0
    other_threads_cpu: float = 0.0

    @classmethod
    def load(cls, path: Path, cpu: float = 0.0) -> Profile:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(float(data["interpreter_cpu"]), data["stacks"], [(int(i), int(w)) for i, w in data["samples"]],
                   cpu, float(data.get("dump_cpu", 0.0)), float(data.get("other_threads_cpu", 0.0)))

    @property
    def sampled(self) -> float:
        return sum(w for _, w in self.samples) / 1e6


@dataclass(frozen=True)
class PhaseTable:
    """CPU seconds per phase, in :data:`ORDER`."""

    seconds: dict[str, float]

    @property
    def total(self) -> float:
        """The profiled command's CPU seconds (the profile's own dump left out)."""
        return sum(s for p, s in self.seconds.items() if p != DUMP)

    def top(self, count: int, *, skip: Sequence[str] = ()) -> list[tuple[str, float]]:
        ranked = sorted(((p, s) for p, s in self.seconds.items() if p not in skip and p != DUMP), key=lambda x: -x[1])
        return ranked[:count]

    def describe(self, count: int = 4) -> str:
        total = self.total or 1.0
        return ", ".join(f"{p} {s * 1000:.0f} ms ({100 * s / total:.0f} %)" for p, s in self.top(count))


def _unsampled(profile: Profile, found: defaultdict[str, float], rest: str = EXIT) -> None:
    """The interpreter's start before sampling, the profile's own dump, and what the rusage
    counted beyond both, the samples and the other threads (numpy's OpenBLAS threads spin for a
    while after its import): the interpreter's exit."""
    found["interpreter"] = profile.interpreter_cpu
    if profile.dump_cpu > 0:
        found[DUMP] = profile.dump_cpu
    if profile.other_threads_cpu > 0:
        found[THREADS] = profile.other_threads_cpu
    unsampled = profile.cpu - profile.interpreter_cpu - profile.sampled - profile.dump_cpu - profile.other_threads_cpu
    if unsampled > 0:
        found[rest] = unsampled


def phases(profile: Profile) -> PhaseTable:
    """The profile's CPU time by phase: the interpreter's start before sampling, the samples by
    :func:`phase_of`, and what the rusage counted beyond them (exit, finalisation)."""
    found: defaultdict[str, float] = defaultdict(float)
    by_stack = [phase_of(stack) for stack in profile.stacks]
    for index, weight in profile.samples:
        found[by_stack[index]] += weight / 1e6
    _unsampled(profile, found)
    return PhaseTable({p: found[p] for p in ORDER if found.get(p)})


def module_of(stack: Sequence[str]) -> str:
    """The audit's grouping: imports, else the innermost anonlib module (below the CLI) of the
    stack, else the outermost frame's module below it (the standard library, pydicom…)."""
    if _first(PHASES[:1], stack):
        return "imports"
    for frame in reversed(stack):
        module = frame.partition(":")[0]
        if module.startswith("anonlib.") and module != "anonlib.cli":
            return module
    return OTHER


def module_phases(profile: Profile) -> PhaseTable:
    """The profile's CPU time by :func:`module_of`, largest first (the interpreter and what was
    not sampled included: the audit's forked worker processes count there, as the sampler sees
    the main process only)."""
    found: defaultdict[str, float] = defaultdict(float)
    by_stack = [module_of(stack) for stack in profile.stacks]
    for index, weight in profile.samples:
        found[by_stack[index]] += weight / 1e6
    _unsampled(profile, found, WORKERS_EXIT)
    return PhaseTable(dict(sorted(found.items(), key=lambda item: -item[1])))


def first_file_cpu(profile: Profile) -> float | None:
    """CPU seconds from the process's start to the end of its first file's write; when no sample
    fell in a write (one small file: the write is shorter than a sample), to the end of the last
    main-pass sample. None: no main-pass sample at all."""
    by_stack = [phase_of(stack) for stack in profile.stacks]
    elapsed, writing, main_end = profile.interpreter_cpu, False, None
    for index, weight in profile.samples:
        phase = by_stack[index]
        is_write = phase.startswith("main pass: write")
        if writing and not is_write:
            return elapsed
        writing = writing or is_write
        elapsed += weight / 1e6
        if phase.startswith("main pass"):
            main_end = elapsed
    return elapsed if writing else main_end


# Top-level packages shown under another name (pydicom's pixel plugins and their decoders).
_PIXEL_PLUGINS = ("pydicom.pixels", "pylibjpeg", "libjpeg", "openjpeg", "rle", "gdcm", "PIL")
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def import_groups(text: str) -> tuple[list[tuple[str, float]], float]:
    """``-X importtime`` output grouped by top-level package (self time summed; pydicom's pixel
    plugins apart): [(group, seconds)], largest first, and the sum of the outermost imports'
    cumulative times (all the imports' wall time)."""
    groups: defaultdict[str, float] = defaultdict(float)
    total = 0.0
    for line in text.splitlines():
        found = _IMPORT_LINE.match(line)
        if not found:
            continue
        own, cumulative, indent, module = int(found[1]), int(found[2]), len(found[3]), found[4]
        if indent <= 1:
            total += cumulative / 1e6
        plugin = next((p for p in _PIXEL_PLUGINS if module == p or module.startswith(p + ".")), None)
        group = "pydicom's pixel plugins (pydicom.pixels, pylibjpeg, …)" if plugin else module.split(".")[0]
        groups[group] += own / 1e6
    return sorted(groups.items(), key=lambda item: -item[1]), total


@dataclass
class ProfileReport:
    """What the profile runs found (each part None when its run failed or did not run)."""

    ct: Profile | None = None
    ct_files: int = 0
    one: Profile | None = None
    one_seconds: float = 0.0
    audit: Profile | None = None
    audit_files: int = 0
    imports: list[tuple[str, float]] = field(default_factory=list)
    imports_total: float = 0.0
    notes: list[str] = field(default_factory=list)


def _profiled(python: Path, sampler: Path, args: list[str], base: Path, env: dict[str, str],
              timeout: float, ok: tuple[int, ...] = (0,)) -> tuple[Profile | None, Measured]:
    out = base / "profile.json"
    got = measure([str(python), str(sampler), str(out), "--", *args], base / "run.log", timeout=timeout, env=env)
    if got.returncode not in ok or got.timed_out or not out.exists():
        return None, got
    return Profile.load(out, got.cpu), got


def run(python: Path, work: Path, anonlib: list[str], command: Callable[[Path, Path, str], list[str]],
        corpora: dict[str, tuple[Path, int]], env: dict[str, str], timeout: float,
        audit: tuple[list[str], int] | None = None) -> ProfileReport:
    """The profile runs: ``command(src, out, store)`` is anonlib w1's ``deidentify`` arguments
    after the program ``anonlib``; ``corpora``: name -> (folder, files) for ``ct`` and ``one``;
    ``audit``: the CT audit's arguments (without dciodvfy) and its files, profiled too."""
    report = ProfileReport()
    if audit is not None:
        base = work / "runs" / "ct" / "profile-audit"
        fresh(base)
        base.mkdir(parents=True)
        profile, got = _profiled(python, Path(__file__).with_name("speed_sampler.py"), audit[0], base, env, timeout,
                                 ok=(0, 1, 4))  # PASS, FAIL, INCOMPLETE: the audit ran
        if profile is None:
            report.notes.append(f"audit: the profiled run failed ({got.note or got.returncode})")
        report.audit, report.audit_files = profile, audit[1]
    sampler = Path(__file__).with_name("speed_sampler.py")
    for name in ("ct", "one"):
        if name not in corpora:
            continue
        folder, files = corpora[name]
        base = work / "runs" / name / "profile"
        fresh(base)
        base.mkdir(parents=True)
        profile, got = _profiled(python, sampler, command(folder, base / "out", f"sqlite:///{base / 's.sqlite3'}"),
                                 base, env, timeout)
        if profile is None:
            report.notes.append(f"{name}: the profiled run failed ({got.note or got.returncode})")
        elif name == "ct":
            report.ct, report.ct_files = profile, files
        else:
            report.one, report.one_seconds = profile, got.seconds
        if name == "one":
            fresh(base / "out")
            fresh(base / "s.sqlite3")
            timed = measure([*anonlib, *command(folder, base / "out", f"sqlite:///{base / 's.sqlite3'}")],
                            base / "importtime.log", timeout=timeout, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
            if timed.returncode or timed.timed_out:
                report.notes.append(f"one: the -X importtime run failed ({timed.note or timed.returncode})")
            else:
                report.imports, report.imports_total = import_groups((base / "importtime.log").read_text())
    return report


def _phase_rows(table: PhaseTable, total: float | None = None) -> list[str]:
    total = (table.total if total is None else total) or 1.0
    return [f"| {p} | {s * 1000:.0f} | {'—' if p == DUMP else f'{100 * s / total:.0f}'} |"
            for p, s in table.seconds.items()]


def markdown(report: ProfileReport, all_rows: Sequence[Row] = ()) -> str:
    """The profile section: phases of the CT run, the start-up's phases and imports, the audit
    by module; beside each, the timed runs' median CPU seconds from ``all_rows`` (a profiled run
    far from it was disturbed)."""
    timed = {r.corpus.name: r.cpu for r in all_rows if r.tool == "anonlib w1"}
    timed["audit"] = next((r.cpu for r in all_rows if r.corpus.name == "ct" and r.tool == AUDIT), None)

    def beside(name: str) -> str:
        cpu = timed.get(name)
        return f" (timed runs' median {cpu:.2f} s)" if cpu else ""

    parts = ["Profile (`--profile`: one extra untimed run of each, CPU time sampled by `bench/speed_sampler.py`, "
             "phases grouped by `bench/speed_profile.py`):"]
    if report.ct is not None:
        table = phases(report.ct)
        per_file = sum(s for p, s in table.seconds.items() if p.startswith("main pass")) / max(report.ct_files, 1)
        parts.append(f"CT, anonlib w1 ({report.ct_files} files): {table.total:.2f} s CPU{beside('ct')}, main pass "
                     f"{per_file * 1000:.1f} ms/file\n\n| phase | CPU ms | % |\n|---|---|---|\n"
                     + "\n".join(_phase_rows(table)))
    if report.one is not None:
        table = phases(report.one)
        first = first_file_cpu(report.one)
        lead = (f"Start-up, one file: {table.total:.2f} s CPU{beside('one')}, {report.one_seconds:.2f} s wall; "
                + (f"the first file written after {first * 1000:.0f} ms CPU" if first is not None else "no file written"))
        parts.append(f"{lead}\n\n| phase | CPU ms | % |\n|---|---|---|\n" + "\n".join(_phase_rows(table)))
    if report.audit is not None:
        table = module_phases(report.audit)
        shown = list(table.seconds.items())[:10]
        rows = _phase_rows(PhaseTable(dict(shown)), table.total)
        parts.append(f"CT, `anonlib audit` without dciodvfy ({report.audit_files} files): {table.total:.2f} s CPU"
                     f"{beside('audit')}, by anonlib module (the innermost one of each sample)\n\n"
                     "| module | CPU ms | % |\n|---|---|---|\n" + "\n".join(rows))
    if report.imports:
        rows = [f"| {g} | {s * 1000:.0f} |" for g, s in report.imports[:8]]
        rest = sum(s for _, s in report.imports[8:])
        if rest:
            rows.append(f"| {len(report.imports) - 8} others | {rest * 1000:.0f} |")
        parts.append(f"Start-up imports (`-X importtime`, wall, own time summed per top-level package; "
                     f"{report.imports_total * 1000:.0f} ms in all):\n\n| package | ms |\n|---|---|\n" + "\n".join(rows))
    parts.extend(report.notes)
    return "\n\n".join(parts)


def _amdahl(table: PhaseTable) -> str:
    """What one worker's profile says of two: the pre-pass and the main pass split between the
    workers, the rest does not (the IOD tables are loaded once by each worker)."""
    serial = sum(s for p, s in table.seconds.items()
                 if p != DUMP and (not p.startswith(("main pass", "pre-pass", "store")) or "loaded once" in p))
    total = table.total or 1.0
    bound = total / (serial + (total - serial) / 2)
    return (f"the part two workers do not split (interpreter, imports, plan, IOD tables, manifest, exit and "
            f"other threads: "
            f"{serial * 1000:.0f} ms of {total * 1000:.0f} ms CPU in the one-worker profile) bounds them at "
            f"{bound:.2f}× before the pool's own cost (CPU w2/w1 in the row above)")


def _job_phases(rows: Sequence[Row], corpus_prefix: str) -> str | None:
    """The constellation rows' study-job phases (``bench/constellation.py`` notes them per run)."""
    notes = [run.note.partition("job phases: ")[2] for row in rows
             if row.corpus.name.startswith(corpus_prefix) and row.tool.startswith("constellation")
             for run in row.runs if "job phases: " in run.note]
    if not notes:
        return None
    return "the study jobs' phases (`ANONLIB_PHASE_TIMES`), per run: " + " | ".join(
        n.partition(";")[0] for n in notes)


def gap_lines(targets_markdown: str, report: ProfileReport, rows: Sequence[Row] = ()) -> str:
    """One line "gap: …; where the time goes: …" per target not met in ``targets_markdown``
    (the constellation's from its rows' job phases: the profile does not cover it)."""
    ct = phases(report.ct) if report.ct is not None else None
    one = phases(report.one) if report.one is not None else None
    audit = module_phases(report.audit) if report.audit is not None else None
    lines = []
    for row in targets_markdown.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[2] != "**not met**":
            continue
        target, measured = cells[0], cells[1]
        if "constellation" in target or "3-instance" in target:
            where = _job_phases(rows, "const-3x" if "3-instance" in target else "const-ct") or (
                "not profiled by `--profile`; no job phases recorded")
        elif ("dcmanon" in target or "dicognito" in target) and ct is not None:
            where = f"anonlib w1 on CT (profile below): {ct.describe()}"
        elif "start-up" in target and one is not None:
            imports = ", ".join(f"{g} {s * 1000:.0f} ms" for g, s in report.imports[:4])
            where = f"{one.describe()}" + (f"; imports by package: {imports}" if imports else "")
        elif "2 workers" in target and ct is not None:
            where = _amdahl(ct)
        elif "audit without dciodvfy" in target and audit is not None:
            where = f"anonlib audit on CT (profile below): {audit.describe()}"
        else:
            where = "not profiled by `--profile` (anonlib deidentify, and the audit without dciodvfy, only)"
        lines.append(f"- gap: {target} — measured {measured}; where the time goes: {where}")
    return "\n".join(lines)
