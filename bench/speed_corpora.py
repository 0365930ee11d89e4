"""The corpora of ``bench/speed.py``, generated once and cached under the work folder.

Every corpus is one flat folder of ``NNNNN.dcm`` files (``dicom-anonymizer`` reads one folder
level only, and ``deid`` names outputs after the input's base name), written to
``<work>/corpora/<name>-<files>`` through a temporary folder renamed at the end, so an
interrupted generation is never mistaken for a cached corpus.

=========  ===================================================================================
ct         CT slices, 512x512 16-bit (about 0.5 MB each; 300 of them = 150 MB), from pydicom's
           CT_small through ``anonlib.synthetic.batch.write_batch``: 6 studies of 50 slices,
           3 patients (as ``bench/throughput.py``, 179 private elements per file).
mixed      ``anonlib.synthetic.corpus.build_corpus`` (CT, MR, RTSTRUCT, RTPLAN, RTDOSE, SEG,
           Comprehensive SR, GSPS, burned-in SC, US) for seeds 0..3, no broken files, without
           patient-3 (its invalid dates stop dcmanon and dicognito at the first file).
           Smoke: pydicom's MR_small, rtplan, rtdose, test-SR and SC_rgb_small_odd.
one        one CT slice of ``ct`` (start-up: the whole process for one file).
study      one study of N small CT_small slices (39 KB each): 500 and 5,000 for the memory
           target (peak RSS flat from 500 to 5,000 instances).
=========  ===================================================================================
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

__all__ = ["Corpus", "build", "plan"]


@dataclass(frozen=True)
class Corpus:
    """One generated corpus: a flat folder of DICOM files."""

    name: str
    kind: str
    folder: Path
    files: int
    megabytes: float


@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str
    files: int
    make: Callable[[Path, int], None]


def _flatten(source: Path, target: Path, start: int = 0) -> int:
    """Copy every file under ``source`` to ``target/NNNNN.dcm`` in sorted order."""
    count = start
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        shutil.copyfile(path, target / f"{count:05d}.dcm")
        count += 1
    return count


def _ct(target: Path, files: int) -> None:
    from anonlib.synthetic.batch import write_batch

    per_study = max(1, min(50, files // 6))
    studies = -(-files // per_study)
    pixels = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        write_batch(Path(tmp), studies=studies, patients=max(1, studies // 2), instances=per_study, seed=12)
        for index, path in enumerate(sorted(Path(tmp).rglob("*.dcm"))[:files]):
            ds = pydicom.dcmread(path)
            ds.Rows = ds.Columns = 512
            ds.PixelData = pixels
            ds.save_as(target / f"{index:05d}.dcm", enforce_file_format=True)


def _one(target: Path, files: int) -> None:
    _ct(target, 1)


def _mixed(target: Path, files: int) -> None:
    from anonlib.synthetic.corpus import build_corpus

    count = 0
    for seed in range(4):
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            corpus = build_corpus(Path(tmp), seed=seed, bad_files=False)
            for item in sorted(corpus.files, key=lambda f: f.path):
                if item.patient not in _INVALID_VALUES:
                    shutil.copyfile(item.path, target / f"{count:05d}.dcm")
                    count += 1


# patient-3 carries invalid and legacy dates and times on purpose (a robustness test, in
# tests/): dcmanon 0.3.1 and dicognito 0.19 stop at the first of them, which would leave
# nothing to time.
_INVALID_VALUES = {"patient-3"}


def _mixed_smoke(target: Path, files: int) -> None:
    from pydicom.data import get_testdata_file

    names = ["MR_small.dcm", "rtplan.dcm", "rtdose.dcm", "test-SR.dcm", "SC_rgb_small_odd.dcm"]
    for index, name in enumerate(names):
        shutil.copyfile(str(get_testdata_file(name)), target / f"{index:05d}.dcm")


def _study(target: Path, files: int) -> None:
    from anonlib.synthetic.batch import write_batch

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        write_batch(Path(tmp), studies=1, patients=1, instances=files, seed=13)
        _flatten(Path(tmp), target)


def plan(smoke: bool) -> list[_Spec]:
    """The corpora of a run, in the order they are measured."""
    if smoke:
        return [_Spec("ct", "ct", 4, _ct), _Spec("mixed", "mixed", 5, _mixed_smoke),
                _Spec("one", "one", 1, _one), _Spec("study", "study", 10, _study)]
    return [_Spec("ct", "ct", 300, _ct), _Spec("mixed", "mixed", 0, _mixed), _Spec("one", "one", 1, _one),
            _Spec("study", "study", 500, _study), _Spec("study", "study", 5000, _study)]


def build(work: Path, spec: _Spec, log: Callable[[str], None] = print) -> Corpus:
    """The cached corpus of ``spec`` under ``work/corpora``, generated first if missing."""
    root = work / "corpora"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / (f"{spec.name}-{spec.files}" if spec.files else f"{spec.name}-full")
    if not folder.is_dir():
        log(f"generating corpus {folder.name} ...")
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
        spec.make(partial, spec.files)
        partial.rename(folder)
    paths = [p for p in folder.iterdir() if p.is_file()]
    label = f"{spec.name}-{len(paths)}" if spec.kind == "study" else spec.name
    return Corpus(label, spec.kind, folder, len(paths), sum(p.stat().st_size for p in paths) / 1e6)
