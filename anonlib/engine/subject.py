"""Whose instance is this? The patient key the lookup store is asked about.

The key is PatientID + IssuerOfPatientID. **Rule for a missing or empty PatientID**: such an
instance cannot be linked to other studies of its patient, so it gets a pseudonym of its own
study — key ``~study:<StudyInstanceUID>`` (or, lacking that, ``~series:``/``~instance:``). All
instances of one such study share one pseudonym and date shift; different studies never share
one; nothing of the missing ID is guessed, and nothing crashes. An instance with no PatientID and
no UID at all cannot be keyed and is rejected.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from anonlib.engine.values import text_of
from anonlib.errors import DeidentificationError
from anonlib.store.base import PatientKey

__all__ = ["patient_key"]




def patient_key(ds: Dataset) -> PatientKey:
    """The lookup key for the patient of ``ds`` (see the module docstring for the rule)."""
    issuer = text_of(ds, "IssuerOfPatientID")
    patient_id = text_of(ds, "PatientID")
    if patient_id:
        return PatientKey(patient_id, issuer)
    for prefix, keyword in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"),
                            ("instance", "SOPInstanceUID")):
        uid = text_of(ds, keyword)
        if uid:
            return PatientKey(f"~{prefix}:{uid}", issuer)
    raise DeidentificationError("no PatientID and no Study/Series/SOP Instance UID to key a pseudonym on")
