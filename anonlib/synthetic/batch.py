"""Many small studies for many patients, fast: load tests, collision tests, benchmarks.

Each study is a CT series of ``instances`` slices derived from pydicom's CT_small, for a patient
drawn round-robin from ``patients`` fake patients (so studies of one patient are spread over
the batch). Deterministic for a seed; each study gets its own folder.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path

from anonlib.synthetic.objects import template

__all__ = ["BatchStudy", "write_batch"]

_ROOT = "1.2.826.0.1.3680043.10.543.9"


@dataclass(frozen=True)
class BatchStudy:
    folder: Path
    patient_id: str
    study_uid: str
    instances: int


def write_batch(root: Path, *, studies: int, patients: int, instances: int = 3, seed: int = 0,
                first: int = 0) -> list[BatchStudy]:
    """Write ``studies`` studies (numbered from ``first``) under ``root``; returns them."""
    base = template("CT_small.dcm")
    rng = random.Random(seed)
    made = []
    for number in range(first, first + studies):
        patient = number % patients
        patient_id = f"BATCH{seed:02d}{patient:05d}"
        study_uid = f"{_ROOT}.{seed}.{number + 1}"
        folder = root / f"study-{number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        series_uid = f"{study_uid}.1"
        day = 1 + rng.randrange(27)
        for index in range(instances):
            ds = copy.deepcopy(base)
            ds.PatientID = patient_id
            ds.PatientName = f"BATCH^PATIENT{patient:05d}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SOPInstanceUID = f"{series_uid}.{index + 1}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"2024{1 + number % 12:02d}{day:02d}"
            ds.AccessionNumber = f"ACC{seed:02d}{number:06d}"
            ds.InstanceNumber = index + 1
            ds.ImagePositionPatient = [0.0, 0.0, float(index)]
            ds.save_as(folder / f"{index:03d}.dcm", enforce_file_format=True)
        made.append(BatchStudy(folder, patient_id, study_uid, instances))
    return made
