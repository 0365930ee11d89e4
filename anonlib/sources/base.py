"""Where identified studies come from, for browsing, previewing and anonymizing.

A source is a folder of DICOM files or an Orthanc node (by constellation name or URL). Every
source answers the same questions as pandas tables, so notebooks and widgets never care which
one they have. Keys are opaque strings: a study key is its StudyInstanceUID for folders and its
Orthanc ID for nodes; an instance key is a file path or an Orthanc instance ID.

Every table has exactly the documented columns: strings, except the counts (``studies``,
``series``, ``instances``), which are ints. Patients are sorted by PatientID, studies by
StudyDate (undated last), series by SeriesNumber. ``modalities`` lists a study's distinct
modalities, sorted, joined by :data:`MODALITY_SEPARATOR` (``CT/MR/SEG``). A key a source does
not hold raises :class:`UnknownKey`.

These tables show identified data: they belong in the identified zone (the notebooks that show
them are never committed with outputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from anonlib.errors import AnonlibError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Source", "UnknownKey", "PATIENT_COLUMNS", "STUDY_COLUMNS", "SERIES_COLUMNS",
           "MODALITY_SEPARATOR"]

MODALITY_SEPARATOR = "/"

PATIENT_COLUMNS = ["patient", "patient_id", "patient_name", "birth_date", "sex", "studies"]
STUDY_COLUMNS = ["study", "patient", "patient_id", "patient_name", "study_date", "description",
                 "accession", "modalities", "series", "instances"]
SERIES_COLUMNS = ["series", "study", "number", "modality", "description", "instances"]


class UnknownKey(AnonlibError):
    """The source holds no study, series or instance with this key (the message names the
    kind of key, never the key: a folder path may carry a patient's name)."""


class Source(Protocol):
    """What a source of identified studies answers."""

    name: str  # a PHI-free label (folder name or node name)
    kind: str  # "folder" | "orthanc"

    def patients(self) -> pd.DataFrame:
        """One row per patient (:data:`PATIENT_COLUMNS`)."""

    def studies(self, *, patient: str | None = None, date_from: str | None = None,
                date_to: str | None = None, modality: str | None = None) -> pd.DataFrame:
        """One row per study (:data:`STUDY_COLUMNS`), filtered by patient key or PatientID,
        StudyDate range (YYYYMMDD, inclusive) and modality."""

    def series(self, study: str) -> pd.DataFrame:
        """One row per series of a study (:data:`SERIES_COLUMNS`)."""

    def instances(self, study: str, series: str | None = None) -> list[str]:
        """Instance keys of a study (or of one of its series), in series/instance order."""

    def read(self, instance: str) -> bytes:
        """The DICOM file of one instance."""
