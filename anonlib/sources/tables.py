"""The tables every source answers, built the same way for folders and Orthanc nodes.

Sources collect plain rows (dicts with the documented columns plus private ``_``-prefixed sort
keys); these helpers sort them, keep exactly the documented columns (strings, counts as ints)
and apply the study filters, so both sources give identical tables for identical data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from anonlib.errors import ConfigError
from anonlib.sources.base import (
    MODALITY_SEPARATOR,
    PATIENT_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
)

__all__ = ["patients_frame", "studies_frame", "series_frame", "filter_studies", "match_patient", "check_date",
           "number_key", "join_modalities"]

_DATE = re.compile(r"^\d{8}$")
Row = Mapping[str, Any]


def number_key(text: str) -> tuple[int, float]:
    """Sort key of an IS value such as SeriesNumber: numbers in order, blanks and junk last."""
    try:
        return 0, float(text)
    except (TypeError, ValueError):
        return 1, 0.0


def join_modalities(modalities: Iterable[str]) -> str:
    """Distinct, sorted, non-empty modalities joined by :data:`MODALITY_SEPARATOR`."""
    return MODALITY_SEPARATOR.join(sorted({m.strip().upper() for m in modalities if m.strip()}))


def _frame(rows: Sequence[Row], columns: list[str], counts: set[str], sort: list[str]) -> pd.DataFrame:
    """Exactly ``columns``: the ``counts`` as int64, every other one as strings."""
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in sort))
    data = {c: pd.Series([int(r[c]) for r in ordered], dtype="int64") if c in counts
            else pd.Series([str(r[c] or "") for r in ordered], dtype=object) for c in columns}
    return pd.DataFrame(data, columns=columns)


def patients_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """Patients sorted by PatientID, then name, then key."""
    return _frame(rows, PATIENT_COLUMNS, {"studies"}, ["patient_id", "patient_name", "patient"])


def studies_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """Studies sorted by date (undated last), then PatientID, then ``_uid`` (StudyInstanceUID)."""
    keyed = [{**r, "_undated": not r["study_date"]} for r in rows]
    return _frame(keyed, STUDY_COLUMNS, {"series", "instances"}, ["_undated", "study_date", "patient_id", "_uid"])


def series_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """Series sorted by number, then ``_uid`` (SeriesInstanceUID)."""
    keyed = [{**r, "_number": number_key(str(r["number"]))} for r in rows]
    return _frame(keyed, SERIES_COLUMNS, {"instances"}, ["_number", "_uid"])


def check_date(value: str | None, what: str) -> str | None:
    """``YYYYMMDD`` (``YYYY-MM-DD`` accepted) or None; :class:`ConfigError` otherwise."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace("-", "")
    if not _DATE.match(text):
        raise ConfigError(f"{what} must be a date YYYYMMDD, not {value!r}")
    return text


def match_patient(frame: pd.DataFrame, patient: str) -> pd.Series:
    """Which rows of a patients or studies table belong to ``patient``: it equals the patient
    key or the PatientID."""
    return (frame["patient"] == patient) | (frame["patient_id"] == patient)


def filter_studies(frame: pd.DataFrame, *, patient: str | None = None, date_from: str | None = None,
                   date_to: str | None = None, modality: str | None = None) -> pd.DataFrame:
    """The studies of ``frame`` that match every given filter: ``patient`` equals the patient
    key or the PatientID; StudyDate within [date_from, date_to] (inclusive; undated studies
    never match a date filter); ``modality`` one of the study's modalities (any case)."""
    start, end = check_date(date_from, "date_from"), check_date(date_to, "date_to")
    keep = pd.Series(True, index=frame.index)
    if patient:
        keep &= match_patient(frame, patient)
    if start or end:
        dates = frame["study_date"]
        keep &= dates.str.fullmatch(r"\d{8}").fillna(False).astype(bool)
        if start:
            keep &= dates >= start
        if end:
            keep &= dates <= end
    if modality and modality.strip():
        wanted = modality.strip().upper()
        keep &= frame["modalities"].map(lambda text: wanted in str(text).split(MODALITY_SEPARATOR)).astype(bool)
    return frame[keep].reset_index(drop=True)
