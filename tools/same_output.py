"""Check that a change leaves ``anonlib deidentify``'s output byte-identical (issue 12, Deliver 4).

    .venv/bin/python tools/same_output.py --baseline /work/main [--candidate .] [--work DIR]
        [--ct 120] [--modes ocr,quarantine,allow] [--workers 1,2] [--pydicom]

Builds the synthetic corpus (``anonlib example-data``, seed 0) and a batch of deterministic
512x512 16-bit CT instances (three patients), then primes one lookup store (secret, pseudonyms,
date shifts) by de-identifying both with the baseline tree. Every run then starts from a copy of
that store, so baseline and candidate see the same secret and the same patients. Each tree
(``PYTHONPATH`` = the tree) de-identifies each corpus in each ``--burned-in`` mode and worker
count; every file of the output and quarantine trees (manifests and lists included) and the
summary line must be identical. ``--pydicom`` adds a third corpus: every file of pydicom's own test
and character-set data (every transfer syntax, DICOMDIRs, broken files), copied flat. Exit 0 when everything is the same, 1 with the differences
listed (paths relative to the output, never a value).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CT_SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
folder, count = Path(sys.argv[1]), int(sys.argv[2])
folder.mkdir(parents=True, exist_ok=True)
base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
base.Rows = base.Columns = 512
base.PixelData = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
root = "1.2.826.0.1.3680043.10.543.77"
per = max(1, count // 3)
for n in range(count):
    patient, index = divmod(n, per)
    base.PatientID = f"SAME{patient:05d}"
    base.PatientName = f"Same^Patient{patient}"
    base.StudyInstanceUID = f"{root}.1.{patient}"
    base.SeriesInstanceUID = f"{root}.2.{patient}"
    base.SOPInstanceUID = f"{root}.3.{patient}.{index}"
    base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
    base.InstanceNumber = index + 1
    base.save_as(folder / f"{patient:03d}_{index:04d}.dcm", enforce_file_format=True)
"""


_PYDICOM_SCRIPT = r"""
import os, shutil, sys
from pydicom.data import get_charset_files, get_testdata_files
os.makedirs(sys.argv[1], exist_ok=True)
paths = sorted(p for p in get_testdata_files() + get_charset_files() if os.path.isfile(p))
for n, path in enumerate(paths):
    shutil.copyfile(path, os.path.join(sys.argv[1], f"{n:04d}.dcm"))
"""


def _env(tree: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), ANONLIB_HOME=str(home))
    return env


def _run(tree: Path, home: Path, *args: str) -> str:
    # cwd=tree: ``python -m`` puts the working directory first on sys.path, before PYTHONPATH
    done = subprocess.run([sys.executable, "-m", "anonlib.cli", *args], env=_env(tree, home), cwd=tree,
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"anonlib {' '.join(args[:1])} failed under {tree} ({done.returncode}):\n{done.stderr}")
    return done.stdout.strip()


def _check_tree(tree: Path, home: Path) -> None:
    """Refuse to compare when ``tree``'s own anonlib is not the one its runs import."""
    done = subprocess.run([sys.executable, "-c", "import anonlib; print(anonlib.__file__)"], env=_env(tree, home),
                          cwd=tree, capture_output=True, text=True, check=True)
    if not Path(done.stdout.strip()).resolve().is_relative_to(tree):
        raise SystemExit(f"runs under {tree} would import {done.stdout.strip()}, not that tree's anonlib")


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def _compare(a: Path, b: Path) -> list[str]:
    left, right = _files(a), _files(b)
    problems = [f"only in baseline: {name}" for name in sorted(left.keys() - right.keys())]
    problems += [f"only in candidate: {name}" for name in sorted(right.keys() - left.keys())]
    problems += [f"bytes differ: {name}" for name in sorted(left.keys() & right.keys())
                 if not filecmp.cmp(left[name], right[name], shallow=False)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="the tree before the change (e.g. /work/main)")
    parser.add_argument("--candidate", default=Path.cwd(), type=Path, help="the tree after it (default: .)")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--ct", type=int, default=120, help="CT instances (default 120)")
    parser.add_argument("--modes", default="ocr,quarantine,allow", help="--burned-in modes to run")
    parser.add_argument("--workers", default="1,2", help="worker counts to run")
    parser.add_argument("--pydicom", action="store_true", help="also pydicom's own test files")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="same-output-"))
    work.mkdir(parents=True, exist_ok=True)
    baseline, candidate = args.baseline.resolve(), args.candidate.resolve()
    home = work / "home"
    for tree in (baseline, candidate):
        _check_tree(tree, home)
    corpora = {"example": work / "in" / "example", "ct": work / "in" / "ct"}
    if args.pydicom:
        corpora["pydicom"] = work / "in" / "pydicom"
    try:
        if not corpora["example"].exists():
            _run(baseline, home, "example-data", str(corpora["example"]), "--seed", "0")
        if not corpora["ct"].exists():
            subprocess.run([sys.executable, "-c", _CT_SCRIPT, str(corpora["ct"]), str(args.ct)], check=True,
                           env=_env(baseline, home), cwd=baseline)
        if args.pydicom and not corpora["pydicom"].exists():
            subprocess.run([sys.executable, "-c", _PYDICOM_SCRIPT, str(corpora["pydicom"])], check=True,
                           env=_env(baseline, home), cwd=baseline)
        template = work / "template.sqlite3"
        if not template.exists():
            for name, source in corpora.items():
                _run(baseline, home, "deidentify", str(source), str(work / "prime" / name), "--db",
                     f"sqlite:///{template}", "--burned-in", "quarantine", "--no-progress")
        problems: list[str] = []
        for name, source in corpora.items():
            for mode in args.modes.split(","):
                for workers in args.workers.split(","):
                    case = f"{name}-{mode}-w{workers}"
                    lines = {}
                    for side, tree in (("baseline", baseline), ("candidate", candidate)):
                        out = work / side / case
                        shutil.rmtree(out.parent / (case + "-quarantine"), ignore_errors=True)
                        shutil.rmtree(out, ignore_errors=True)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        store = work / side / f"{case}.sqlite3"
                        shutil.copyfile(template, store)
                        lines[side] = _run(tree, home, "deidentify", str(source), str(out), "--db",
                                           f"sqlite:///{store}", "--burned-in", mode, "--workers", workers,
                                           "--no-progress").replace(str(work / side), "WORK")
                    found = _compare(work / "baseline" / case, work / "candidate" / case)
                    found += _compare(work / "baseline" / (case + "-quarantine"),
                                      work / "candidate" / (case + "-quarantine"))
                    if lines["baseline"] != lines["candidate"]:
                        found.append(f"summary differs: {lines['baseline']!r} vs {lines['candidate']!r}")
                    count = len(_files(work / "baseline" / case)) + len(_files(work / "baseline" / (case + "-quarantine")))
                    print(f"{case}: {count} files, {'identical' if not found else f'{len(found)} differences'}")
                    problems += [f"{case}: {p}" for p in found]
        for line in problems[:40]:
            print(line)
        return 1 if problems else 0
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
