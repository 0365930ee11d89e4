"""What the pixel stage costs on a series without burned-in text (issue 10 target: <= 25 %).

    .venv/bin/python bench/pixel_overhead.py [--slices 300] [--repeats 3] [--engine rapidocr] [--record]

Writes one CT series of N 512x512 16-bit signed slices (a generated body section, its noise
drawn anew per slice; no text), then times ``anonlib deidentify`` on the folder with the pixel
stage off (``--burned-in allow``) and on (``--burned-in ocr --ocr-engine ENGINE``), alternating
off/on ``repeats`` times, each run into a fresh output and a fresh SQLite store. Reports the
median wall time of each and their ratio. ``--record`` appends the rows to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.synthetic import canvases
from anonlib.synthetic.phi import UID_ROOT

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def write_series(folder: Path, slices: int, seed: int = 0) -> None:
    """``slices`` CT slices of one synthetic patient's series, without any text."""
    g = np.random.default_rng(seed)
    base = canvases.build("ct", g)
    study, series = f"{UID_ROOT}.88.{seed}.1", f"{UID_ROOT}.88.{seed}.1.1"
    folder.mkdir(parents=True, exist_ok=True)
    pixels = base.pixels[0]
    body = pixels > -1500
    for index in range(slices):
        ds = copy.deepcopy(base.header)
        noisy = np.where(body, pixels + g.integers(-20, 21, pixels.shape), pixels).astype(np.int16)
        canvases.set_pixels(ds, noisy)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "OVERHEAD^BENCH", "OVH0001", "19600101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = f"{series}.{index + 1}"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
        ds.StudyTime = ds.SeriesTime = "101010"
        ds.AccessionNumber, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "OVH1", "1", 1, index + 1
        ds.FrameOfReferenceUID = f"{study}.9"
        ds.ImagePositionPatient = [-250.0, -250.0, -2.5 * index]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceLocation = [0.98, 0.98], -2.5 * index
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(folder / f"{index:04d}.dcm", enforce_file_format=True)


def timed_run(src: Path, work: Path, flags: Sequence[str]) -> float:
    """Seconds of one ``anonlib deidentify`` into a fresh output and store."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = dict(os.environ, ANONLIB_HOME=str(work / "home"))
    command = [str(ROOT / ".venv" / "bin" / "anonlib"), "deidentify", str(src), str(work / "out"),
               "--db", f"sqlite:///{work}/lookup.sqlite3", "--no-progress", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"anonlib deidentify {' '.join(flags)} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", default="rapidocr")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "series"
        write_series(src, args.slices)
        runs: dict[str, list[float]] = {"off": [], "on": []}
        flags = {"off": ["--burned-in", "allow"], "on": ["--burned-in", "ocr", "--ocr-engine", args.engine]}
        for repeat in range(args.repeats):
            for state in ("off", "on"):
                seconds = timed_run(src, Path(tmp) / f"{state}-{repeat}", flags[state])
                runs[state].append(seconds)
                print(f"run {repeat + 1} pixel stage {state}: {seconds:.1f} s", flush=True)
    off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
    row = (f"| {args.slices} CT slices 512x512, no text | {args.engine} | {off:.1f} s ({args.slices / off:.0f} files/s) "
           f"| {on:.1f} s ({args.slices / on:.0f} files/s) | {on / off:.2f} | {args.repeats} alternating |")
    head = "| series | engine | pixel stage off (median) | on (median) | on / off | runs |\n|---|---|---|---|---|---|"
    print(head + "\n" + row)
    if args.record:
        text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
        text += (f"\n### Pixel stage overhead, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                 f"`bench/pixel_overhead.py` (folder pipeline, 1 worker; target: on / off <= 1.25).\n\n{head}\n{row}\n")
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
