"""What a source holds, per patient, and its studies in the order a reader looks for them.

Pure functions of a source's studies table (:data:`~anonlib.sources.base.STUDY_COLUMNS`), so
folders and Orthanc nodes are summarised alike and the functions are tested without a source:

- :func:`patient_summary`: one row per patient — studies, series, instances, the first and
  last study date, the modalities.
- :func:`newest_first`: studies by date, newest first, undated last.
- :func:`mark_missing_ids`: an empty PatientID shown as :data:`NO_PATIENT_ID`, never blank.

These tables hold identified data (names, PatientIDs): they are shown, never logged.
"""

from __future__ import annotations

import pandas as pd

from anonlib.sources.base import MODALITY_SEPARATOR
from anonlib.sources.tables import join_modalities

__all__ = ["SUMMARY_COLUMNS", "NO_PATIENT_ID", "patient_summary", "newest_first", "mark_missing_ids"]

SUMMARY_COLUMNS = ["patient", "patient_id", "patient_name", "studies", "series", "instances", "first_date",
                   "last_date", "modalities"]
#: What an empty PatientID reads as in the panels.
NO_PATIENT_ID = "(no PatientID)"
_COUNTS = ["studies", "series", "instances"]


def _dates(values: pd.Series) -> list[str]:
    return sorted(v for v in values if isinstance(v, str) and v.strip())


def patient_summary(studies: pd.DataFrame) -> pd.DataFrame:
    """One row per patient of a studies table: how many studies, series and instances, the
    first and last StudyDate (blank when no study is dated), the distinct modalities.
    Sorted by PatientID (patients without one last), then name, then key."""
    rows = []
    for patient, group in studies.groupby("patient", sort=False, dropna=False):
        dates = _dates(group["study_date"])
        modalities = (m for text in group["modalities"] for m in str(text).split(MODALITY_SEPARATOR))
        rows.append({
            "patient": str(patient), "patient_id": str(group["patient_id"].iloc[0] or ""),
            "patient_name": str(group["patient_name"].iloc[0] or ""), "studies": len(group),
            "series": int(group["series"].sum()), "instances": int(group["instances"].sum()),
            "first_date": dates[0] if dates else "", "last_date": dates[-1] if dates else "",
            "modalities": join_modalities(modalities)})
    rows.sort(key=lambda r: (not r["patient_id"], r["patient_id"], r["patient_name"], r["patient"]))
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.astype(dict.fromkeys(_COUNTS, "int64"))


def newest_first(studies: pd.DataFrame) -> pd.DataFrame:
    """``studies`` by StudyDate, newest first; undated studies last, in their given order."""
    dated = studies["study_date"].fillna("").astype(str).str.strip() != ""
    ordered = pd.concat([studies[dated].sort_values("study_date", ascending=False, kind="stable"), studies[~dated]])
    return ordered.reset_index(drop=True)


def mark_missing_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose empty ``patient_id`` cells read :data:`NO_PATIENT_ID`."""
    out = frame.copy()
    if "patient_id" in out.columns:
        blank = out["patient_id"].fillna("").astype(str).str.strip() == ""
        out.loc[blank, "patient_id"] = NO_PATIENT_ID
    return out
