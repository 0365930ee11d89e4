"""A deliberately naive de-identifier, for proving the audit catches what it leaves behind:
it blanks PatientName and PatientID and keeps everything else, including input file names."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError


def naive_deidentify(source: Path, output: Path) -> list[Path]:
    written = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError):
            continue
        if "SOPInstanceUID" not in ds:
            continue
        ds.PatientName = ""
        ds.PatientID = ""
        target = output / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
        written.append(target)
    return written
