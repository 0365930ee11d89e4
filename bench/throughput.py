"""Files per second of ``anonlib deidentify`` on 0.5 MB CT images (one worker by default).

    .venv/bin/python bench/throughput.py [--files 500] [--workers 1] [--plain]

Builds N synthetic 512x512 16-bit CT instances (about 0.5 MB each) from pydicom's CT_small
header, then times a folder run into a fresh output with a fresh SQLite store. ``--plain``
also times a plain pydicom read + write of every file, the baseline the design must beat.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from anonlib.dicomio import quiet_pydicom
from anonlib.folder_run import RunSettings, run_folder


def make_files(folder: Path, count: int) -> None:
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base.Rows = base.Columns = 512
    base.PixelData = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    study = generate_uid()
    for patient in range(max(1, count // 100)):
        series = generate_uid()
        for index in range(min(100, count - patient * 100)):
            base.PatientID = f"BENCH{patient:05d}"
            base.StudyInstanceUID, base.SeriesInstanceUID = study + f".{patient}", series
            base.SOPInstanceUID = generate_uid()
            base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
            base.InstanceNumber = index + 1
            base.save_as(folder / f"{patient:03d}_{index:04d}.dcm", enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    quiet_pydicom()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_files(src, args.files)
        if args.plain:
            start = time.perf_counter()
            for path in sorted(src.iterdir()):
                pydicom.dcmread(path).save_as(Path(tmp) / "plain.dcm")
            print(f"plain pydicom read+write: {args.files / (time.perf_counter() - start):.0f} files/s")
        settings = RunSettings(src, Path(tmp) / "out", db_url=f"sqlite:///{tmp}/store.sqlite3",
                               workers=args.workers)
        start = time.perf_counter()
        summary = run_folder(settings)
        elapsed = time.perf_counter() - start
        print(summary.describe())
        print(f"anonlib deidentify, {args.workers} worker(s): {args.files / elapsed:.0f} files/s")


if __name__ == "__main__":
    main()
