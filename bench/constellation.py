"""The constellation end to end against Orthanc's own anonymize + a peer store (issue 12).

    .venv/bin/python bench/constellation.py [--smoke] [--repeat 1] [--work bench/.work]
                                            [--stable-age 1] [--workers 2] [--timeout 600]

(also run by ``bench/speed.py --constellation``, whose report it joins.)

Each measurement starts a real constellation (``anonlib.constellation.manage.up``: intake and
research Orthanc 1.10.1 with PostgreSQL indexes, the anonlib plugin on intake, the lookup store
and job queue) in a fresh folder under ``<work>/constellation`` on free ports, with its own
databases ``anonlib_bench_<random>_*`` (dropped afterwards; no other database is touched), sends
a corpus into intake by C-STORE (dcmtk ``storescu``, ``TCP_NODELAY=1`` on both ends) and times
from the start of the C-STORE until every instance is delivered, then stops everything:

``constellation w2``
    ``anonlib`` as deployed: 2 supervised workers (``anonlib worker``, one job at a time each),
    the audit gate on as by default (dciodvfy included, pixel check ``sample``). Done when
    research holds every instance and the export folder tree has every file. Peak RSS is the
    largest worker's (``VmHWM``); the note gives the workers' CPU time (user + system) and
    the time the C-STORE took. The workers log each study job's phases
    (``ANONLIB_PHASE_TIMES=1``, :mod:`anonlib.phases`); their sums are printed after each run.
``orthanc anonymize + peer store``
    the peer baseline on the same kind of constellation without workers: the driver follows
    intake's ``/changes`` feed and, for each ``StableStudy``, runs Orthanc's own
    ``POST /studies/{id}/anonymize`` (asynchronous job), then sends the result with
    ``POST /peers/research/store`` (asynchronous job; the peer is declared at run time with
    ``PUT /peers/research``). Done when every study's latest copy is stored on research with
    all its instances: a study called stable before its last instance came (a gap longer than
    StableAge in the C-STORE) becomes stable again and is anonymized again, as an
    ``OnStableStudy`` script would do (Orthanc's anonymize covers the instances present when it
    starts; the note counts them). Peak RSS is intake Orthanc's.

Both wait for the same stability: a study is taken once Orthanc calls it stable (StableAge
without a new instance). The bench sets **StableAge to 1 s** (``--stable-age``; the
constellation's default is 60 s), so the figures measure the pipeline rather than the wait.

Corpora (generated once, cached under ``<work>/corpora`` like ``bench/speed_corpora.py``'s):
``const-ct-300`` one study of 300 CT slices 512x512 16-bit (0.5 MB each, as the ``ct`` corpus
makes them); ``const-3x100`` 100 studies of 3 small CT slices (CT_small, 39 KB), 50 patients.
``--smoke``: one study of 3 CT slices and 2 studies of 3 small slices (CI).

Instances/s is instances / the end-to-end wall time. Rows are :class:`bench.speed_measure.Run`
records, reported by ``bench/speed_report.py`` with its targets.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from bench.speed_corpora import Corpus, _Spec, build  # noqa: E402
from bench.speed_measure import Run  # noqa: E402

__all__ = ["ANONLIB", "NATIVE", "TOOLS", "corpora", "measure", "main"]

ANONLIB = "constellation w2"
NATIVE = "orthanc anonymize + peer store"
TOOLS = (ANONLIB, NATIVE)
PREFIX = "anonlib_bench_"
POLL = 0.05


# -- corpora ------------------------------------------------------------------------------------

def _ct_study(target: Path, files: int) -> None:
    """One study of ``files`` 512x512 16-bit CT slices (as ``bench/speed_corpora.py``'s ``ct``)."""
    from anonlib.synthetic.batch import write_batch

    pixels = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        write_batch(Path(tmp), studies=1, patients=1, instances=files, seed=31)
        for index, path in enumerate(sorted(Path(tmp).rglob("*.dcm"))):
            ds = pydicom.dcmread(path)
            ds.Rows = ds.Columns = 512
            ds.PixelData = pixels
            ds.save_as(target / f"{index:05d}.dcm", enforce_file_format=True)


def _small_studies(target: Path, files: int) -> None:
    """``files // 3`` studies of 3 small CT slices (CT_small), two studies per patient."""
    from anonlib.synthetic.batch import write_batch

    studies = max(1, files // 3)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        write_batch(Path(tmp), studies=studies, patients=max(1, studies // 2), instances=3, seed=32)
        for index, path in enumerate(sorted(Path(tmp).rglob("*.dcm"))):
            shutil.copyfile(path, target / f"{index:05d}.dcm")


def specs(smoke: bool) -> list[_Spec]:
    if smoke:
        return [_Spec("const-ct", "const", 3, _ct_study), _Spec("const-3x2", "const", 6, _small_studies)]
    return [_Spec("const-ct", "const", 300, _ct_study), _Spec("const-3x100", "const", 300, _small_studies)]


def corpora(work: Path, smoke: bool, log: Callable[[str], None] = print) -> list[Corpus]:
    made = [build(work, spec, log) for spec in specs(smoke)]
    return [Corpus(f"{spec.name}-{c.files}" if spec.name == "const-ct" else
                   f"const-3x{c.files // 3}", c.kind, c.folder, c.files, c.megabytes)
            for spec, c in zip(specs(smoke), made, strict=True)]


# -- a constellation of its own ---------------------------------------------------------------

def _admin_url() -> str:
    user = os.environ.get("USER") or "root"
    return (os.environ.get("ANONLIB_TEST_PG_ADMIN") or os.environ.get("ANONLIB_PG_ADMIN")
            or f"postgresql://{user}@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``extra`` while the constellation starts (its supervisor inherits it)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _drop(admin_url: str, prefix: str) -> None:
    from anonlib.constellation import manage

    assert prefix.startswith(PREFIX)  # never drop anything else
    manage.drop_databases(admin_url, prefix)


@contextlib.contextmanager
def constellation(home: Path, *, workers: int, stable_age: int, pycache: Path) -> Iterator[Any]:
    """A constellation (intake, research; ``workers`` workers) in ``home``, stopped and its
    databases dropped at the end."""
    from anonlib.constellation import ConstellationSettings, manage

    prefix = PREFIX + secrets.token_hex(4)
    env = {"ANONLIB_HOME": str(home), "ANONLIB_PG_ADMIN": _admin_url(), "ANONLIB_DB_PREFIX": prefix,
           "ANONLIB_STABLE_AGE": str(stable_age), "ANONLIB_WORKERS": str(workers), "ANONLIB_DESTINATIONS": "",
           "ANONLIB_INTAKE_HTTP_PORT": "0", "ANONLIB_INTAKE_DICOM_PORT": "0",
           "ANONLIB_RESEARCH_HTTP_PORT": "0", "ANONLIB_RESEARCH_DICOM_PORT": "0"}
    # the workers run this repository's anonlib from compiled bytecode, as installed software does
    run_env = {"PYTHONPATH": str(_REPO), "PYTHONPYCACHEPREFIX": str(pycache), "TQDM_DISABLE": "1",
               "ANONLIB_PHASE_TIMES": "1"}  # each study job logs its phases (anonlib.phases)
    settings = ConstellationSettings.from_env({**os.environ, **env})
    dont_write = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        with _environ(run_env):
            info = manage.up(settings)
        yield settings, info
    finally:
        if dont_write is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = dont_write
        with contextlib.suppress(Exception):
            if settings.info_path.exists():
                manage.down(settings)
        _drop(settings.pg_admin_url, prefix)


# -- measuring -------------------------------------------------------------------------------

def _client(node: Any) -> httpx.Client:
    return httpx.Client(base_url=node.url, auth=(node.username, node.password), timeout=60)


def _count(client: httpx.Client) -> int:
    return int(client.get("/statistics").json()["CountInstances"])


def _storescu(info: Any, folder: Path, log: Path) -> subprocess.Popen[bytes]:
    intake = info.intake
    argv = ["storescu", "-aet", info.scu_aet, "-aec", intake.aet, "+sd", "+r", "-R", "-xs",
            intake.dicom_host, str(intake.dicom_port), str(folder)]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TCP_NODELAY": "1"})


def count_exported(root: Path) -> int:
    """DICOM files in the export tree, outside the hidden folders a study is staged in (walked
    while the workers write it: a folder that vanishes meanwhile is skipped)."""
    count = 0
    for _, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(1 for name in files if name.endswith(".dcm"))
    return count


def _proc_status(pid: int | None) -> tuple[float, float]:
    """(peak RSS MB ``VmHWM``, CPU seconds user + system) of a live process; zeros when gone."""
    if not pid:
        return 0.0, 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(stat[11]) + int(stat[12])) / ticks


def _worker_pids(home: Path) -> list[int]:
    pids = []
    for pidfile in sorted((home / "workers").glob("worker-*.pid")):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pidfile.read_text().strip()))
    return pids


@dataclass
class _Clock:
    start: float
    sent: float = 0.0

    def poll_sender(self, proc: subprocess.Popen[bytes]) -> None:
        if not self.sent and proc.poll() is not None:
            self.sent = time.perf_counter() - self.start


def _wait_workers_ready(info: Any, home: Path, count: int, timeout: float = 60) -> None:
    """Every worker registered (heartbeat) before the clock starts: start-up is not the pipeline's."""
    from anonlib.jobs.db import JobsDb

    deadline = time.monotonic() + timeout
    db = JobsDb(info.db_url)
    try:
        while time.monotonic() < deadline:
            beats = db.worker_heartbeats()
            if len(beats) >= count and len(_worker_pids(home)) >= count:
                return
            time.sleep(0.2)
    finally:
        db.close()
    raise RuntimeError(f"the {count} workers did not register within {timeout:.0f} s")


def _settled_jobs(info: Any, timeout: float = 15) -> dict[str, int]:
    """The queue's job counts once no job is running or waiting (after the clock stopped: a
    job records its delivery after the delivery is visible), or as they are after ``timeout``."""
    from anonlib.jobs.db import JobsDb

    db = JobsDb(info.db_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            counts = db.counts()
            if not (counts.get("todo") or counts.get("doing")) or time.monotonic() > deadline:
                return counts
            time.sleep(0.2)
    finally:
        db.close()


def run_anonlib(corpus: Corpus, base: Path, rnd: int, *, workers: int, stable_age: int, timeout: float,
                pycache: Path) -> Run:
    """``constellation w<workers>`` on ``corpus`` (see the module docstring)."""
    home = base / "home"
    with constellation(home, workers=workers, stable_age=stable_age, pycache=pycache) as (_, info):
        _wait_workers_ready(info, home, workers)
        export = Path(info.export_dir)
        research = _client(info.research)
        clock = _Clock(time.perf_counter())
        sender = _storescu(info, corpus.folder, base / "storescu.log")
        timed_out, seconds = True, 0.0
        try:
            while time.perf_counter() - clock.start < timeout:
                clock.poll_sender(sender)
                if _count(research) >= corpus.files and count_exported(export) >= corpus.files:
                    seconds, timed_out = time.perf_counter() - clock.start, False
                    break
                time.sleep(POLL)
            peaks = [_proc_status(pid) for pid in _worker_pids(home)]
            delivered, exported = _count(research), count_exported(export)
            jobs = _settled_jobs(info)
        finally:
            research.close()
            sender.wait(timeout=60)
        _copy_logs(home, base)
    peak, cpu = max((p for p, _ in peaks), default=0.0), sum(c for _, c in peaks)
    note = (f"C-STORE {clock.sent:.1f} s; StableAge {stable_age} s; workers' CPU {cpu:.1f} s; "
            f"jobs {', '.join(f'{n} {s}' for s, n in sorted(jobs.items()))}")
    if timed_out:
        note = f"timed out after {timeout:.0f} s: research {delivered}, export {exported}; " + note
        seconds = time.perf_counter() - clock.start
    if summary := phase_summary(base):
        note += f"; job phases: {summary}"
    return Run(corpus.name, ANONLIB if workers == 2 else f"constellation w{workers}", rnd, seconds, peak,
               0, timed_out, min(delivered, exported), note)


def _copy_logs(home: Path, base: Path) -> None:
    """The workers' logs (PHI-free) next to the run, for the per-phase timings."""
    for log in (home / "workers").glob("worker-*.log"):
        with contextlib.suppress(OSError):
            shutil.copyfile(log, base / log.name)


def phase_totals(base: Path) -> tuple[int, dict[str, float]]:
    """(study jobs, seconds per phase summed over them) from the workers' logs of a run."""
    from anonlib.phases import parse_line

    jobs = 0
    totals: dict[str, float] = {}
    for log in sorted(base.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            found = parse_line(line)
            if found:
                jobs += 1
                for name, seconds in found.items():
                    totals[name] = totals.get(name, 0.0) + seconds
    return jobs, totals


def phase_summary(base: Path, count: int = 4) -> str:
    """The largest phases of a run's study jobs with their share of the jobs' time, in one
    phrase without ";" (it goes into a run's note): "gate 6.94 s (53 %), … of 13.04 s in 1 job(s)"."""
    jobs, totals = phase_totals(base)
    total = totals.get("total", 0.0)
    if not jobs or total <= 0:
        return ""
    largest = sorted(((n, s) for n, s in totals.items() if n != "total"), key=lambda item: -item[1])[:count]
    return (", ".join(f"{name} {seconds:.2f} s ({100 * seconds / total:.0f} %)" for name, seconds in largest)
            + f" of {total:.2f} s in {jobs} job(s)")


def describe_phases(base: Path) -> str:
    jobs, totals = phase_totals(base)
    if not jobs:
        return ""
    return f"{jobs} study jobs, seconds summed over them: " + ", ".join(
        f"{name} {seconds:.2f}" for name, seconds in totals.items())


def run_native(corpus: Corpus, base: Path, rnd: int, *, stable_age: int, timeout: float, pycache: Path) -> Run:
    """Orthanc's anonymize + peer store on ``corpus`` (see the module docstring)."""
    home = base / "home"
    with constellation(home, workers=0, stable_age=stable_age, pycache=pycache) as (_, info):
        intake, research = _client(info.intake), _client(info.research)
        peer = info.research
        intake.put("/peers/research", json={"Url": peer.url, "Username": peer.username,
                                            "Password": peer.password}).raise_for_status()
        since = int(intake.get("/changes", params={"last": ""}).json().get("Last", 0))
        originals: dict[str, int] = {}  # original study -> its anonymizations so far
        anonymizing: dict[str, str] = {}  # anonymize job -> original study
        storing: dict[str, tuple[str, int]] = {}  # peer-store job -> (original study, its instances)
        delivered_of: dict[str, int] = {}  # original study -> instances of its latest copy on the peer
        produced: set[str] = set()
        failures = reconciled = 0
        idle_since: float | None = None
        clock = _Clock(time.perf_counter())
        sender = _storescu(info, corpus.folder, base / "storescu.log")
        timed_out, seconds = True, 0.0
        try:
            while time.perf_counter() - clock.start < timeout:
                clock.poll_sender(sender)
                page = intake.get("/changes", params={"since": since, "limit": 1000}).json()
                for change in page.get("Changes", []):
                    study = change["ID"]
                    # as an OnStableStudy script would: anonymize each time an original becomes
                    # stable (again, when an instance came after it was first called stable)
                    if change["ChangeType"] != "StableStudy" or study in produced:
                        continue
                    if "AnonymizedFrom" in intake.get(f"/studies/{study}").json():
                        produced.add(study)  # a copy, stable before its job's end was seen
                        continue
                    originals[study] = originals.get(study, 0) + 1
                    job = intake.post(f"/studies/{study}/anonymize", json={"Asynchronous": True}).json()
                    anonymizing[job["ID"]] = study
                since = int(page.get("Last", since))
                states = {job["ID"]: job for job in intake.get("/jobs", params={"expand": ""}).json()} \
                    if anonymizing or storing else {}
                for job_id in list(anonymizing):
                    job = states.get(job_id, {"State": "Pending"})
                    if job["State"] == "Success":
                        study = anonymizing.pop(job_id)
                        new = job["Content"]["ID"]
                        produced.add(new)
                        count = int(intake.get(f"/studies/{new}/statistics").json()["CountInstances"])
                        store = intake.post("/peers/research/store",
                                            json={"Resources": [new], "Asynchronous": True}).json()
                        storing[store["ID"]] = (study, count)
                    elif job["State"] in ("Failure", "Paused"):
                        del anonymizing[job_id]
                        failures += 1
                for job_id in list(storing):
                    state = states.get(job_id, {}).get("State", "Pending")
                    if state in ("Success", "Failure", "Paused"):
                        study, count = storing.pop(job_id)
                        if state == "Success":  # copies may finish out of order: the largest counts
                            delivered_of[study] = max(delivered_of.get(study, 0), count)
                        failures += state != "Success"
                if not anonymizing and not storing and sum(delivered_of.values()) >= corpus.files:
                    seconds, timed_out = time.perf_counter() - clock.start, False
                    break
                if anonymizing or storing or not clock.sent:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.perf_counter()
                elif time.perf_counter() - idle_since > stable_age + 5:
                    # Orthanc can fail to call a study stable again after a late instance (see
                    # orthanc-notes.md): anonymize what its latest copy misses, as a reconcile would
                    idle_since = None
                    for study in originals:
                        held = int(intake.get(f"/studies/{study}/statistics").json()["CountInstances"])
                        if held > delivered_of.get(study, 0):
                            reconciled += 1
                            originals[study] += 1
                            job = intake.post(f"/studies/{study}/anonymize", json={"Asynchronous": True}).json()
                            anonymizing[job["ID"]] = study
                time.sleep(POLL)
            peak, _ = _proc_status(info.intake.pid)
            delivered = sum(delivered_of.values())
        finally:
            intake.close()
            research.close()
            sender.wait(timeout=60)
    again = sum(n - 1 for n in originals.values()) - reconciled
    note = f"C-STORE {clock.sent:.1f} s; StableAge {stable_age} s; {len(originals)} studies" + (
        f"; {again} anonymized again (stable again after a late instance)" if again else "") + (
        f"; {failures} Orthanc jobs failed" if failures else "") + (
        f"; {reconciled} anonymized again by the bench (no new StableStudy came)" if reconciled else "")
    if timed_out:
        note = f"timed out after {timeout:.0f} s: research {delivered}; " + note
        seconds = time.perf_counter() - clock.start
    return Run(corpus.name, NATIVE, rnd, seconds, peak, 0, timed_out, delivered, note)


def measure(work: Path, chosen: Sequence[Corpus], *, repeat: int = 1, stable_age: int = 1, workers: int = 2,
            timeout: float = 600, tools: Sequence[str] = TOOLS,
            log: Callable[[str], None] = print) -> list[Run]:
    """Every tool on every corpus, alternating the order each round; one fresh constellation per run."""
    root = work / "constellation"
    pycache = work / "pycache"
    runs = []
    for rnd in range(repeat):
        for corpus in chosen:
            order = list(tools) if rnd % 2 == 0 else list(reversed(tools))
            for tool in order:
                base = root / corpus.name / tool.split()[0]
                if base.exists():
                    shutil.rmtree(base)
                base.mkdir(parents=True)
                if tool == NATIVE:
                    run = run_native(corpus, base, rnd, stable_age=stable_age, timeout=timeout, pycache=pycache)
                else:
                    run = run_anonlib(corpus, base, rnd, workers=workers, stable_age=stable_age,
                                      timeout=timeout, pycache=pycache)
                runs.append(run)
                log(f"round {rnd + 1}/{repeat} {corpus.name:13s} {tool:32s} {run.seconds:7.2f} s "
                    f"{corpus.files / run.seconds:6.1f}/s {run.peak_mb:5.0f} MB  out {run.outputs}  {run.note}")
                if phases := describe_phases(base):
                    log(f"  phases: {phases}")
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    from bench import speed_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny corpora (CI)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=_REPO / "bench" / ".work")
    parser.add_argument("--stable-age", type=int, default=1, help="StableAge of the nodes (default 1 s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--tools", nargs="+", default=None, help="only tools whose name contains one of these")
    parser.add_argument("--corpora", nargs="+", default=None, help="only corpora whose name contains one of these")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    chosen = [c for c in corpora(work, args.smoke, lambda s: print(s, file=sys.stderr))
              if not args.corpora or any(s in c.name for s in args.corpora)]
    tools = [t for t in TOOLS if not args.tools or any(s in t for s in args.tools)]
    runs = measure(work, chosen, repeat=args.repeat, stable_age=args.stable_age, workers=args.workers,
                   timeout=args.timeout, tools=tools, log=lambda s: print(s, file=sys.stderr, flush=True))
    all_rows = speed_report.rows(chosen, list(TOOLS), runs)
    print(speed_report.table(all_rows))
    print()
    print(speed_report.targets(all_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
