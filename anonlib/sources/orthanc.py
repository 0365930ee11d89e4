"""An Orthanc node as a :class:`~anonlib.sources.base.Source`, over its REST API.

Keys are Orthanc IDs (patients, studies, series, instances). Tables come from
``/patients?expand``, ``/studies?expand`` (or ``/tools/find`` with the date, modality and
PatientID filters, so a large node does the filtering) and the series of each listed study; the
rows then pass through the same filter and sort as a folder's. Orthanc keys patients on
PatientID alone (it ignores IssuerOfPatientID), so two hospitals' patients sharing a PatientID
are one patient here.

Failures are translated by :func:`anonlib.orthanc.client.call` (node down: ``TransientError``);
an unknown key raises :class:`~anonlib.sources.base.UnknownKey`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any, cast

import pandas as pd
import pyorthanc

from anonlib.constellation.info import NodeInfo
from anonlib.orthanc.client import NotFound, call, connect
from anonlib.sources.base import UnknownKey
from anonlib.sources.tables import (
    check_date,
    filter_studies,
    join_modalities,
    number_key,
    patients_frame,
    series_frame,
    studies_frame,
)

__all__ = ["OrthancSource"]

Json = dict[str, Any]
_ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def _tag(item: Json, name: str, group: str = "MainDicomTags") -> str:
    value = item.get(group, {}).get(name, "")
    return str(value).strip(" \x00") if value is not None else ""


def _instance_order(item: Json) -> tuple[tuple[int, float], str]:
    return number_key(_tag(item, "InstanceNumber")), _tag(item, "SOPInstanceUID")


class OrthancSource:
    """The studies held by one Orthanc node."""

    kind = "orthanc"
    #: Above this many listed studies, all series are fetched in one request (``/series?expand``)
    #: instead of one request per study.
    BULK_SERIES = 40

    def __init__(self, node: NodeInfo, *, timeout: float = 120.0) -> None:
        self.node = node
        self.name = node.name
        self._timeout = timeout
        self._client: pyorthanc.Orthanc | None = None

    @property
    def client(self) -> pyorthanc.Orthanc:
        if self._client is None:
            self._client = connect(self.node, self._timeout)
        return self._client

    def close(self) -> None:
        """Close the HTTP connection (a later question opens another)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, missing: str = "", **kwargs: Any) -> Any:
        try:
            return call(self.node.name, what, fn, *args, **kwargs)
        except NotFound:
            if missing:
                raise UnknownKey(f"{self.node.name}: no {missing} with this key") from None
            raise

    # -- the Source protocol -----------------------------------------------------------------
    def patients(self) -> pd.DataFrame:
        """One row per Orthanc patient (``/patients?expand``)."""
        found = cast(list[Json], self._call("list patients", self.client.get_patients, params={"expand": ""}))
        rows = [{"patient": p["ID"], "patient_id": _tag(p, "PatientID"), "patient_name": _tag(p, "PatientName"),
                 "birth_date": _tag(p, "PatientBirthDate"), "sex": _tag(p, "PatientSex"),
                 "studies": len(p.get("Studies", []))} for p in found]
        return patients_frame(rows)

    def _find_studies(self, patient: str | None, date_from: str | None, date_to: str | None,
                      modality: str | None) -> list[Json]:
        if patient and _ORTHANC_ID.match(patient):
            try:
                return cast(list[Json], call(self.node.name, "list studies of a patient",
                                             self.client.get_patients_id_studies, patient, params={"expand": ""}))
            except NotFound:
                pass  # not an Orthanc patient ID: perhaps a PatientID
        query: dict[str, str] = {}
        start, end = check_date(date_from, "date_from"), check_date(date_to, "date_to")
        if start or end:
            query["StudyDate"] = f"{start or ''}-{end or ''}"
        if modality and modality.strip():
            query["ModalitiesInStudy"] = modality.strip().upper()
        if patient and not set(patient) & set("*?\\"):
            query["PatientID"] = patient
        if not query:
            return cast(list[Json], self._call("list studies", self.client.get_studies, params={"expand": ""}))
        body = {"Level": "Study", "Expand": True, "Query": query}
        return cast(list[Json], self._call("find studies", self.client.post_tools_find, json=body))

    def _series_of(self, studies: list[Json]) -> dict[str, list[Json]]:
        """Expanded series of each study, by study ID."""
        if len(studies) > self.BULK_SERIES:
            every = cast(list[Json], self._call("list series", self.client.get_series, params={"expand": ""}))
            wanted: dict[str, list[Json]] = {s["ID"]: [] for s in studies}
            for item in every:
                if item.get("ParentStudy") in wanted:
                    wanted[item["ParentStudy"]].append(item)
            return wanted
        return {s["ID"]: self._study_series(s["ID"]) for s in studies}

    def _study_series(self, study: str) -> list[Json]:
        return cast(list[Json], self._call("list series", self.client.get_studies_id_series, study,
                                           params={"expand": ""}, missing="study"))

    def studies(self, *, patient: str | None = None, date_from: str | None = None,
                date_to: str | None = None, modality: str | None = None) -> pd.DataFrame:
        """One row per study, filtered on the node, then exactly as a folder's."""
        found = self._find_studies(patient, date_from, date_to, modality)
        series = self._series_of(found)
        rows = []
        for s in found:
            items = series.get(s["ID"], [])
            rows.append({
                "study": s["ID"], "patient": s.get("ParentPatient", ""), "_uid": _tag(s, "StudyInstanceUID"),
                "patient_id": _tag(s, "PatientID", "PatientMainDicomTags"),
                "patient_name": _tag(s, "PatientName", "PatientMainDicomTags"),
                "study_date": _tag(s, "StudyDate"), "description": _tag(s, "StudyDescription"),
                "accession": _tag(s, "AccessionNumber"),
                "modalities": join_modalities(_tag(i, "Modality") for i in items),
                "series": len(items), "instances": sum(len(i.get("Instances", [])) for i in items),
            })
        return filter_studies(studies_frame(rows), patient=patient, date_from=date_from,
                              date_to=date_to, modality=modality)

    def series(self, study: str) -> pd.DataFrame:
        """One row per series of ``study`` (``/studies/{id}/series?expand``)."""
        rows = [{"series": i["ID"], "study": study, "_uid": _tag(i, "SeriesInstanceUID"),
                 "number": _tag(i, "SeriesNumber"), "modality": _tag(i, "Modality"),
                 "description": _tag(i, "SeriesDescription"), "instances": len(i.get("Instances", []))}
                for i in self._study_series(study)]
        return series_frame(rows)

    def instances(self, study: str, series: str | None = None) -> list[str]:
        """Instance IDs of ``study`` (or of one series), in series then instance order."""
        if series is not None:
            return self._series_instances(study, series)
        order = {i["ID"]: (number_key(_tag(i, "SeriesNumber")), _tag(i, "SeriesInstanceUID"))
                 for i in self._study_series(study)}
        found = cast(list[Json], self._call("list instances", self.client.get_studies_id_instances, study,
                                            params={"expand": ""}, missing="study"))
        found.sort(key=lambda i: (order.get(i.get("ParentSeries", ""), ((1, 0.0), "")), _instance_order(i)))
        return [str(i["ID"]) for i in found]

    def _series_instances(self, study: str, series: str) -> list[str]:
        """Instance IDs of one series of ``study`` in instance order; only that series is read."""
        item: Any = None
        if _ORTHANC_ID.match(series):  # anything else is no Orthanc key
            with contextlib.suppress(NotFound):
                item = call(self.node.name, "read a series", self.client.get_series_id, series)
        if not isinstance(item, dict) or item.get("ParentStudy") != study:
            self._study_series(study)  # UnknownKey if the study itself is unknown
            raise UnknownKey(f"{self.node.name}: the study has no series with this key")
        found = cast(list[Json], self._call("list instances", self.client.get_series_id_instances, series,
                                            params={"expand": ""}, missing="series"))
        found.sort(key=_instance_order)
        return [str(i["ID"]) for i in found]

    def read(self, instance: str) -> bytes:
        """The DICOM file of one instance (``/instances/{id}/file``)."""
        return cast(bytes, self._call("fetch instance", self.client.get_instances_id_file, instance,
                                      missing="instance"))
