"""A deliberately naive de-identifier, for proving the audit catches what it leaves behind:
it blanks PatientName and PatientID and keeps everything else, including input file names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

if TYPE_CHECKING:
    from anonlib.synthetic import Corpus


def blank_name_and_id(ds: Dataset) -> Dataset:
    """All the naive de-identifier does: PatientName and PatientID emptied."""
    ds.PatientName = ""
    ds.PatientID = ""
    return ds


def naive_copies(corpus: Corpus) -> Iterator[Dataset]:
    """Every de-identifiable corpus file, naively de-identified, in memory."""
    for file in corpus.files:
        if file.expect != "reject":
            yield blank_name_and_id(pydicom.dcmread(file.path))


def naive_deidentify(source: Path, output: Path) -> list[Path]:
    written = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError):
            continue
        if "SOPInstanceUID" not in ds:
            continue
        blank_name_and_id(ds)
        target = output / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
        written.append(target)
    return written
