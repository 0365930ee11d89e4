"""Does the audit scale linearly? Time per instance of ``anonlib audit`` at 100 and 1,000 instances.

    .venv/bin/python bench/audit_scaling.py [--sizes 100 1000] [--per-study 10] [--matrix 512]
                                            [--profile]

For each size N it builds N synthetic CT instances (``anonlib.synthetic.write_batch``: studies
of ``--per-study`` slices from pydicom's CT_small, patients round-robin, each slice given a
``--matrix``² 16-bit pixel matrix, 0.5 MB at 512), de-identifies them with the folder pipeline
(``anonlib deidentify``, a fresh SQLite lookup store), then times the audit against the
originals as ``anonlib audit --originals --no-conformance`` runs it: matching outputs to
originals through the store (``folder_inputs``), the output tree's names (``tree_names``), then
``audit()`` with the leak, consistency and Safe Harbor checks, without dciodvfy. It prints the
audit's verdict (the engine's output must PASS: any failure here is a false alarm), the time per
instance and the throughput at each size, and the ratio of the time per instance at the largest
size to that at the smallest.

Targets (issue #9): ratio ≤ 1.2, and ≥ 100 instances/s without dciodvfy. ``--profile`` prints
the 25 most expensive functions of the audit at the largest size.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs, tree_names
from anonlib.engine.uids import UidMapper
from anonlib.folder_run import RunSettings, run_folder
from anonlib.store import open_store
from anonlib.synthetic.batch import write_batch


def make_originals(folder: Path, count: int, per_study: int, matrix: int) -> None:
    """``count`` CT instances in studies of ``per_study``, one patient per 5 studies."""
    studies = max(1, count // per_study)
    write_batch(folder, studies=studies, patients=max(1, studies // 5), instances=per_study, seed=7)
    pixels = np.random.default_rng(0).integers(0, 4096, (matrix, matrix), dtype=np.uint16).tobytes()
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = matrix
        ds.PixelData = pixels
        ds.save_as(path, enforce_file_format=True)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the audit's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_audit(root: Path, count: int, per_study: int, matrix: int, profile: bool) -> tuple[float, float, float]:
    """Seconds of the whole audit command, of ``audit()`` alone, and of CPU in ``audit()`` (its
    worker processes included), for ``count`` instances (CPU time: what the audit costs on a
    machine shared with other work)."""
    source, output, db = root / "in", root / "out", f"sqlite:///{root}/store.sqlite3"
    source.mkdir()
    make_originals(source, count, per_study, matrix)
    summary = run_folder(RunSettings(source, output, db_url=db))
    print(f"  de-identified: {summary.describe()}")
    store = open_store(db)
    try:
        start = time.perf_counter()
        inputs = folder_inputs(output, source, store)
        names = tree_names(output)
        mapper = UidMapper(store.secret())
        ready, cpu = time.perf_counter(), _cpu()
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        result = audit(inputs, map_uid=mapper, names=names, options=AuditOptions(conformance=False))
        if profiler is not None:
            profiler.disable()
        done, cpu = time.perf_counter(), _cpu() - cpu
    finally:
        store.close()
    verdict = result.status + (f" ({', '.join(result.failing_categories())})" if not result.passed else "")
    print(f"  audit of {result.instances} instances ({result.with_originals} with originals): {verdict}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return done - start, done - ready, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--per-study", type=int, default=10)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from anonlib.dicomio import quiet_pydicom

    quiet_pydicom()
    per_instance: dict[int, tuple[float, float, float]] = {}
    for size in args.sizes:
        print(f"{size} instances:")
        with tempfile.TemporaryDirectory(prefix="anonlib-bench-") as tmp:
            whole, core, cpu = time_audit(Path(tmp), size, args.per_study, args.matrix,
                                          args.profile and size == max(args.sizes))
        per_instance[size] = (whole / size, core / size, cpu / size)
        print(f"  anonlib audit (inputs + audit): {whole:.2f} s, {1000 * whole / size:.2f} ms/instance, "
              f"{size / whole:.0f} instances/s")
        print(f"  audit() alone:                  {core:.2f} s, {1000 * core / size:.2f} ms/instance, "
              f"{size / core:.0f} instances/s")
        print(f"  audit() CPU time:               {cpu:.2f} s, {1000 * cpu / size:.2f} ms/instance, "
              f"{size / cpu:.0f} instances/s")
    small, large = min(per_instance), max(per_instance)
    if small != large:
        print(f"time per instance at {large} / at {small}: "
              f"{per_instance[large][0] / per_instance[small][0]:.2f} (anonlib audit), "
              f"{per_instance[large][1] / per_instance[small][1]:.2f} (audit() alone), "
              f"{per_instance[large][2] / per_instance[small][2]:.2f} (audit() CPU); target ≤ 1.2")


if __name__ == "__main__":
    main()
