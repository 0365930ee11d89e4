"""What dciodvfy (dicom3tools 1.00~20220618) still reports on the synthetic originals, and why.

The builders fix what is cheap to fix: Type 1/2 attributes of the RT objects (Frame of
Reference in the structure set, approval in the plan, a 16-bit dose grid, since dciodvfy
aborts on the 32-bit Implicit VR grid of pydicom's ``rtdose.dcm``), the Referenced Request
items of the SR (order numbers, empty code and study sequences), evidence sequences listing
every referenced instance (highdicom builds them from the content tree), BodyPartExamined
where dciodvfy otherwise asks for Laterality, no empty Laterality on CT/MR, a non-zero weight.

What remains is deliberate:

- **patient-3** carries legacy and invalid values on purpose, as old archives do:
  PatientBirthDate in the ACR-NEMA form ``YYYY.MM.DD`` and StudyTime as ``HH:MM:SS`` (each
  reported twice, by the VR check and the module check), SeriesDate and AcquisitionDate
  ``YYYY1345`` (month 13, day 45), plus the summary line for invalid VR values.
- **patient-4** has no PatientID at all (Type 2 in the Patient module): an unidentified
  admission.
- Every object carries attributes its IOD does not define (PatientAddress, telephone and
  telecom, birth names, RetrieveURL, PerformingPhysicianName in RT/SR) and the
  ``ACME_PRIVATE 1.0`` block: warnings only ("not present in standard IOD", "Unrecognized tag").
- The bad files are not DICOM objects; dciodvfy's findings on them are not listed.

The messages below are normalized by :func:`anonlib.audit.dciodvfy.normalize`.
"""

from __future__ import annotations

__all__ = ["EXPECTED_ERRORS", "expected_dciodvfy_errors"]

_INVALID = "Value invalid for this VR - "
_BAD_CHARACTER = "[#] = <*> - Character invalid for this VR = '*' (#)"

EXPECTED_ERRORS: dict[str, tuple[str, ...]] = {
    "patient-3": (
        "Dicom dataset contains invalid data values for Value Representations",
        f"{_INVALID}(0x0008,0x0021) DA Series Date DA {_BAD_CHARACTER}",
        f"{_INVALID}(0x0008,0x0022) DA Acquisition Date DA {_BAD_CHARACTER}",
        f"{_INVALID}(0x0008,0x0030) TM Study Time TM {_BAD_CHARACTER}",
        f"{_INVALID}(0x0008,0x0030) TM Study Time TM {_BAD_CHARACTER}",
        f"{_INVALID}(0x0010,0x0030) DA Patient's Birth Date DA {_BAD_CHARACTER}",
        f"{_INVALID}(0x0010,0x0030) DA Patient's Birth Date DA {_BAD_CHARACTER}",
    ),
    "patient-4": (
        "Missing attribute Type 2 Required Element=<PatientID> Module=<Patient>",
    ),
}
"""Normalized dciodvfy errors each original of a patient has (a multiset); none for others."""


def expected_dciodvfy_errors(patient: str, kind: str) -> list[str]:
    """The errors dciodvfy reports on an original of ``patient`` of this ``kind``, sorted.

    Raises ``ValueError`` for the bad files, which are not DICOM objects.
    """
    if kind == "bad":
        raise ValueError("bad files are not DICOM objects; dciodvfy's findings are not listed")
    return sorted(EXPECTED_ERRORS.get(patient, ()))
