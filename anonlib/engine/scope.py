"""Identifying values known beyond one instance: those of its study and of its patient.

An operator's name may be in the header of one instance and typed into the comments of
another; a station name may be carried only by the first series. So before de-identifying, a
caller that sees several instances collects the identifiers of all of them from their headers
and hands each instance the values of its study and of its patient (``deidentify(...,
known=...)``). This module is the pure part of that: :class:`IdentifierIndex` gathers the
values by study and by patient, and gives each instance the union of its study's and its
patient's. It reads nothing and keeps only what it is given.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from anonlib.engine.identifiers import collect_identifiers
from anonlib.engine.subject import patient_key
from anonlib.engine.text import Identifiers
from anonlib.engine.values import text_of
from anonlib.errors import DeidentificationError
from anonlib.profile.plan import Plan
from anonlib.store.base import PatientKey

__all__ = ["IdentifierIndex", "ScopeKey", "study_key", "scope_key"]

#: (study, patient) of an instance: its StudyInstanceUID ("" when it has none) and its patient
#: key (None when it cannot be keyed; such an instance is rejected by the engine anyway).
ScopeKey = tuple[str, PatientKey | None]


def study_key(ds: Dataset) -> str:
    """The study an instance belongs to: its StudyInstanceUID ("" when it has none)."""
    return text_of(ds, "StudyInstanceUID")


def scope_key(ds: Dataset) -> ScopeKey:
    """The study and the patient of ``ds``, as :class:`IdentifierIndex` groups them (the
    patient as the lookup store keys it: instances without a PatientID by their study)."""
    try:
        patient: PatientKey | None = patient_key(ds)
    except DeidentificationError:
        patient = None
    return study_key(ds), patient


class IdentifierIndex:
    """The identifying values of every study and patient seen, from their instances' headers.

    Add every instance first (:meth:`add`, header-only datasets are enough), then ask for each
    instance's values (:meth:`known`): the same object for every instance of one study and
    patient, so that the engine compiles its matcher once for them.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._studies: dict[str, Identifiers] = {}
        self._patients: dict[PatientKey, Identifiers] = {}
        self._known: dict[ScopeKey, Identifiers] = {}

    def add(self, ds: Dataset) -> ScopeKey:
        """Collect the identifiers of one instance; its scope key (keep it to ask :meth:`known`
        without reading the instance again)."""
        scope = scope_key(ds)
        self.add_identifiers(scope, collect_identifiers(ds, self.plan))
        return scope

    def add_identifiers(self, scope: ScopeKey, found: Identifiers) -> None:
        """Add identifiers already collected (for example by worker processes)."""
        study, patient = scope
        if study:
            self._studies.setdefault(study, Identifiers()).merge(found)
        if patient is not None:
            self._patients.setdefault(patient, Identifiers()).merge(found)
        self._known.clear()

    def known(self, scope: ScopeKey) -> Identifiers:
        """The values of the study and the patient of ``scope`` (empty when neither was added)."""
        found = self._known.get(scope)
        if found is None:
            study, patient = scope
            found = self._known[scope] = Identifiers()
            for part in (self._studies.get(study),
                         self._patients.get(patient) if patient is not None else None):
                if part is not None:
                    found.merge(part)
        return found

    def __len__(self) -> int:
        """How many studies were seen."""
        return len(self._studies)

