"""A folder of DICOM files as a :class:`~anonlib.sources.base.Source`.

Every file under the folder is read once, header only (``stop_before_pixels``, through
:func:`anonlib.dicomio.read_instance`, which also checks that the file is complete), on the
first question asked; :meth:`FolderSource.refresh` forgets the index. Files the de-identifier
would reject (not DICOM, empty, truncated, no Study/Series Instance UID) are skipped and
counted in :attr:`FolderSource.skipped`; a second file with an already indexed SOP Instance UID
is counted in :attr:`FolderSource.duplicates` and ignored.

Keys: a study is its StudyInstanceUID, a series its SeriesInstanceUID, an instance the absolute
path of its file, a patient its PatientID (``PatientID|IssuerOfPatientID`` when an issuer is
given; for an instance without PatientID, the engine's substitute key ``~study:<uid>``) — the
same patient key the lookup store uses, so a folder lists two hospitals' patients who share a
PatientID as two patients. (An Orthanc node merges them: it keys patients on PatientID alone.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydicom.dataset import Dataset

from anonlib.dicomio import quiet_pydicom, read_instance
from anonlib.engine.subject import patient_key
from anonlib.engine.values import text_of
from anonlib.errors import ConfigError
from anonlib.folder_run import discover_files
from anonlib.sources.base import UnknownKey
from anonlib.sources.tables import (
    filter_studies,
    join_modalities,
    number_key,
    patients_frame,
    series_frame,
    studies_frame,
)

__all__ = ["FolderSource"]

_FIELDS = {
    "patient_id": "PatientID", "patient_name": "PatientName", "birth_date": "PatientBirthDate",
    "sex": "PatientSex", "study_date": "StudyDate", "description": "StudyDescription",
    "accession": "AccessionNumber", "number": "SeriesNumber", "modality": "Modality",
    "series_description": "SeriesDescription", "instance_number": "InstanceNumber",
}




def _patient(ds: Dataset) -> str:
    key = patient_key(ds)
    return f"{key.patient_id}|{key.issuer}" if key.issuer else key.patient_id


@dataclass(frozen=True)
class _Entry:
    path: str
    sop: str
    study: str
    series: str
    patient: str
    values: dict[str, str]


@dataclass
class _Index:
    entries: list[_Entry] = field(default_factory=list)  # in path order
    skipped: int = 0
    duplicates: int = 0
    by_study: dict[str, list[_Entry]] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        self.by_study.setdefault(entry.study, []).append(entry)
        self.paths.add(entry.path)

    def study(self, study: str) -> list[_Entry]:
        found = self.by_study.get(study)
        if not found:
            raise UnknownKey("the folder holds no study with this key")
        return found


def _series_key(entry: _Entry) -> tuple[tuple[int, float], str]:
    return number_key(entry.values["number"]), entry.series


class FolderSource:
    """The DICOM files under ``path`` (searched recursively)."""

    kind = "folder"

    def __init__(self, path: str | Path) -> None:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{path}: not a folder")
        self.root = root.resolve()
        self.name = self.root.name or str(self.root)
        self._index: _Index | None = None

    # -- the index ---------------------------------------------------------------------------
    def _build(self) -> _Index:
        quiet_pydicom()
        index = _Index()
        seen: set[str] = set()
        for path in discover_files(self.root):
            try:
                ds = read_instance(path, label="file").dataset
                entry = _Entry(str(path), text_of(ds, "SOPInstanceUID"), text_of(ds, "StudyInstanceUID"),
                               text_of(ds, "SeriesInstanceUID"), _patient(ds),
                               {name: text_of(ds, keyword) for name, keyword in _FIELDS.items()})
            except Exception:  # noqa: BLE001 - any unreadable file is skipped and counted
                index.skipped += 1
                continue
            if not entry.study or not entry.series:
                index.skipped += 1
            elif entry.sop in seen:
                index.duplicates += 1
            else:
                seen.add(entry.sop)
                index.add(entry)
        return index

    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = self._build()
        return self._index

    def refresh(self) -> None:
        """Forget the index; the next question reads the folder again."""
        self._index = None

    @property
    def skipped(self) -> int:
        """Files that are not usable DICOM instances."""
        return self.index.skipped

    @property
    def duplicates(self) -> int:
        """Files holding a SOP Instance UID already indexed from another file."""
        return self.index.duplicates

    # -- the Source protocol -----------------------------------------------------------------
    def patients(self) -> pd.DataFrame:
        """One row per patient."""
        rows: dict[str, dict[str, object]] = {}
        studies: dict[str, set[str]] = {}
        for e in self.index.entries:
            rows.setdefault(e.patient, {"patient": e.patient, **{k: e.values[k] for k in
                                        ("patient_id", "patient_name", "birth_date", "sex")}})
            studies.setdefault(e.patient, set()).add(e.study)
        for key, row in rows.items():
            row["studies"] = len(studies[key])
        return patients_frame(list(rows.values()))

    def _all_studies(self) -> pd.DataFrame:
        rows = []
        for uid, entries in self.index.by_study.items():
            first = entries[0]
            rows.append({
                "study": uid, "patient": first.patient, "_uid": uid,
                **{k: first.values[k] for k in ("patient_id", "patient_name", "study_date",
                                                "description", "accession")},
                "modalities": join_modalities(e.values["modality"] for e in entries),
                "series": len({e.series for e in entries}), "instances": len(entries),
            })
        return studies_frame(rows)

    def studies(self, *, patient: str | None = None, date_from: str | None = None,
                date_to: str | None = None, modality: str | None = None) -> pd.DataFrame:
        """One row per study, filtered (see :func:`~anonlib.sources.tables.filter_studies`)."""
        return filter_studies(self._all_studies(), patient=patient, date_from=date_from,
                              date_to=date_to, modality=modality)

    def series(self, study: str) -> pd.DataFrame:
        """One row per series of ``study``."""
        groups: dict[str, list[_Entry]] = {}
        for e in self.index.study(study):
            groups.setdefault(e.series, []).append(e)
        rows = [{"series": uid, "study": study, "_uid": uid, "number": entries[0].values["number"],
                 "modality": entries[0].values["modality"],
                 "description": entries[0].values["series_description"], "instances": len(entries)}
                for uid, entries in groups.items()]
        return series_frame(rows)

    def instances(self, study: str, series: str | None = None) -> list[str]:
        """File paths of ``study`` (or of one series), in series then instance order."""
        entries = self.index.study(study)
        if series is not None:
            entries = [e for e in entries if e.series == series]
            if not entries:
                raise UnknownKey("the study has no series with this key")
        entries = sorted(entries, key=lambda e: (_series_key(e), number_key(e.values["instance_number"]), e.sop))
        return [e.path for e in entries]

    def read(self, instance: str) -> bytes:
        """The bytes of one indexed file."""
        if instance not in self.index.paths:
            raise UnknownKey("the folder holds no instance with this key")
        return Path(instance).read_bytes()
