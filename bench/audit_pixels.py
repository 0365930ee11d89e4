"""What the audit's pixel check costs: instances/s of ``audit()`` with ``pixels`` off, sample and
all, on one CT series without burned-in text.

    .venv/bin/python bench/audit_pixels.py [--slices 300] [--matrix 512] [--engine rapidocr]
                                           [--modes off sample sample all]

It builds one study of ``--slices`` CT slices (``anonlib.synthetic.write_batch`` from pydicom's
CT_small, each given a ``--matrix``² 16-bit matrix of smooth noise), de-identifies it with the
folder pipeline (a fresh SQLite lookup store), then times ``audit()`` against the originals
without dciodvfy, once per mode, each in a fresh OCR cache (the cache is cleared between modes:
a mode never profits from the images another mode read; a mode given twice runs again with the
OCR engine loaded, which shows what loading it costs). It prints the verdict (the engine's
output must PASS: anything else is a false alarm or a check that could not run), how many
images the pixel check read, the wall and CPU seconds and the instances/s of each mode, and the
slowdown of each mode against ``off``.

The audit without pixels costs 5–10 ms per instance, so even three OCR'd images (about 0.2–0.35
s of CPU each at the pixel stage's default scale) and loading the OCR engine (about 0.5 s, once
per process) show: on 300 slices ``sample`` takes 1.4–1.8x the time of ``off``, a constant
that does not grow with the series (the pipeline's own target, at most 25 % slower with the
pixel stage than without, is for de-identification, which costs far more per instance). With
dciodvfy on (the gate's default) the OCR runs while dciodvfy works in its processes.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from anonlib.audit.pixel_check import clear_cache
from anonlib.audit.run import AuditOptions, audit
from anonlib.audit.sources import folder_inputs
from anonlib.engine.uids import UidMapper
from anonlib.folder_run import RunSettings, run_folder
from anonlib.store import open_store
from anonlib.synthetic.batch import write_batch


def make_series(folder: Path, slices: int, matrix: int) -> None:
    """One study of ``slices`` CT slices of ``matrix``² smooth noise (no text)."""
    write_batch(folder, studies=1, patients=1, instances=slices, seed=11)
    rng = np.random.default_rng(0)
    for number, path in enumerate(sorted(folder.rglob("*.dcm"))):
        ds = pydicom.dcmread(path)
        base = rng.normal(0, 1, (matrix // 16, matrix // 16))
        image = np.kron(base, np.ones((16, 16)))  # blobs, not characters
        ds.Rows = ds.Columns = matrix
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.clip(1000 + 200 * image, 0, 4095).astype(np.uint16).tobytes()
        ds.InstanceNumber = number + 1
        ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--engine", default="")
    parser.add_argument("--modes", nargs="+", default=["off", "sample", "sample"], choices=["off", "sample", "all"])
    args = parser.parse_args()
    from anonlib.dicomio import quiet_pydicom

    quiet_pydicom()
    with tempfile.TemporaryDirectory(prefix="anonlib-bench-") as tmp:
        root = Path(tmp)
        source, output, db = root / "in", root / "out", f"sqlite:///{root}/store.sqlite3"
        source.mkdir()
        make_series(source, args.slices, args.matrix)
        print(f"de-identified: {run_folder(RunSettings(source, output, db_url=db)).describe()}")
        store = open_store(db)
        try:
            inputs = folder_inputs(output, source, store)
            mapper = UidMapper(store.secret())
            seconds: dict[str, float] = {}
            for run, mode in enumerate(args.modes):
                label = mode + (" (OCR engine already loaded)" if mode in args.modes[:run] else "")
                clear_cache()
                options = AuditOptions(conformance=False, pixels=mode, pixel_engine=args.engine)  # type: ignore[arg-type]
                start, cpu = time.perf_counter(), time.process_time()
                result = audit(inputs, map_uid=mapper, options=options)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                seconds[label] = wall
                pixel = [f.detail for f in result.findings if f.check == "pixels" and f.verdict == "pass"]
                read = re.search(r"pixels of (\d+) instance", pixel[0]) if pixel else None
                verdict = result.status + (f" ({', '.join(result.failing_categories())})" if not result.passed else "")
                print(f"pixels={label}: {verdict}: {result.instances} instances, "
                      f"{read.group(1) if read else 0} read by OCR; {wall:.2f} s wall, {cpu:.2f} s CPU, "
                      f"{result.instances / wall:.0f} instances/s")
        finally:
            store.close()
    if "off" in seconds:
        for mode, wall in seconds.items():
            if mode != "off":
                print(f"pixels={mode} / off: {wall / seconds['off']:.2f}x the time")


if __name__ == "__main__":
    main()
