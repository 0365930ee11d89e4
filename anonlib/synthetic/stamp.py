"""Stamping planted PHI into datasets.

Each ``stamp_*`` function writes one level of identity (patient, study, series, equipment,
private block) the way a busy archive carries it, and records every value it writes in the
patient's :class:`~anonlib.synthetic.phi.Recorder`.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from anonlib.engine.dates import years_between
from anonlib.synthetic.objects import Series, Study
from anonlib.synthetic.phi import Person, Recorder

__all__ = [
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "stamp_patient",
    "stamp_study",
    "stamp_series",
    "stamp_equipment",
    "stamp_private",
    "stamp_levels",
    "stamp_referenced_patient",
    "request_item",
    "referenced_request",
]

PRIVATE_CREATOR = "ACME_PRIVATE 1.0"
PRIVATE_GROUP = 0x0011
_PATIENT_MANAGEMENT = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Management (retired)


def _pn_parts(rec: Recorder, category: str, pn: str) -> None:
    """Record a PN value and its family name."""
    rec.add(category, pn, pn.split("^")[0])


def _remove(ds: Dataset, *keywords: str) -> None:
    for keyword in keywords:
        if keyword in ds:
            delattr(ds, keyword)


def stamp_patient(ds: Dataset, p: Person, s: Study) -> None:
    """Patient module, patient demographics and patient free text."""
    rec = p.recorder
    rec.put(ds, "PatientName", p.pn, "A_names")
    rec.add("A_names", p.family, p.given, p.middle)
    if p.mrn:
        rec.put(ds, "PatientID", p.mrn, "H_mrn")
        rec.put(ds, "IssuerOfPatientID", p.site.issuer, "institution")
    else:
        _remove(ds, "PatientID", "IssuerOfPatientID")
    if p.birth is None:
        ds.PatientBirthDate = ""
    elif p.legacy_birth_date:  # ACR-NEMA style YYYY.MM.DD, as some old archives hold
        rec.put(ds, "PatientBirthDate", p.birth.strftime("%Y.%m.%d"), "C_dates")
    else:
        ds.PatientBirthDate = rec.date_text(p.birth, 0)
    ds.PatientSex = p.sex
    _remove(ds, "OtherPatientIDsSequence", "PatientAge")
    if p.family:
        _stamp_demographics(ds, p)
    else:
        ds.PatientComments = f"Unidentified trauma patient, admitted {rec.date_text(s.date, 2)}."


def _stamp_demographics(ds: Dataset, p: Person) -> None:
    """Other names and IDs, address, phone, e-mail and comments of a named patient."""
    rec = p.recorder
    for keyword, value in (("OtherPatientNames", p.other_name),
                           ("PatientBirthName", p.birth_name),
                           ("PatientMotherBirthName", p.mother_birth_name)):
        setattr(ds, keyword, value)
        _pn_parts(rec, "A_names", value)
    items = []
    for other in p.other_ids:
        item = Dataset()
        item.PatientID = other
        item.TypeOfPatientID = "TEXT"
        item.IssuerOfPatientID = p.site.issuer
        items.append(item)
        rec.add("H_mrn", other)
    ds.OtherPatientIDsSequence = items
    rec.put(ds, "PatientAddress", f"{p.street}, {p.city}, {p.state} {p.zip_code}", "B_address")
    rec.add("B_address", p.street, p.city, p.zip_code)
    rec.put(ds, "PatientTelephoneNumbers", p.phone, "D_phone")
    rec.put(ds, "PatientTelecomInformation", p.email, "F_email")
    born = rec.date_text(p.birth, 2) if p.birth else "unknown"
    ds.PatientComments = f"{p.display} (MRN {p.mrn}), DOB {born}. Prefers phone {p.phone}."


def stamp_study(ds: Dataset, p: Person, s: Study) -> None:
    """General Study and Patient Study modules, plus study-level free text and RetrieveURL."""
    rec, site = p.recorder, p.site
    ds.StudyInstanceUID = s.uid
    ds.StudyDate = rec.date_text(s.date, 0)
    if s.study_time_text:  # a legacy value, distinctive enough to scan for
        rec.put(ds, "StudyTime", s.study_time_text, "C_times")
    else:
        ds.StudyTime = s.time
    rec.put(ds, "AccessionNumber", s.accession, "J_accession")
    rec.put(ds, "StudyID", s.study_id, "R_ids")
    ds.ReferringPhysicianName = site.referring
    ds.NameOfPhysiciansReadingStudy = site.reading
    _pn_parts(rec, "physicians", site.referring)
    _pn_parts(rec, "physicians", site.reading)
    if p.family:
        description = f"{s.description} {p.family}^{p.given} {p.mrn}".strip()
        rec.add("A_names", f"{p.family}^{p.given}")
    else:
        description = s.description
    ds.StudyDescription = description
    history = f"Referred {rec.date_text(s.date, 2)} ({rec.date_text(s.date, 3)}); seen " \
              f"{rec.date_text(s.date, 1)}, report due after {rec.date_text(s.date, 4)}."
    if p.birth is not None:
        history += f" DOB {rec.date_text(p.birth, 1)} / {rec.date_text(p.birth, 3)} / " \
                   f"{rec.date_text(p.birth, 4)}."
        years = years_between(p.birth, s.date)
        ds.PatientAge = f"{years:03d}Y"
        if years > 89:
            rec.add("C_age", ds.PatientAge)
    ds.AdditionalPatientHistory = history
    ds.PatientWeight = "72.5"
    url = f"https://{site.hostname}/dicomweb/studies/{s.uid}"
    rec.put(ds, "RetrieveURL", url, "N_url")
    rec.add("N_url", site.hostname)


def stamp_series(ds: Dataset, p: Person, s: Study, series: Series, *,
                 dated: bool = True) -> None:
    """Series identity, staff and (``dated``) SeriesDate/Time as written by the modality."""
    rec, site = p.recorder, p.site
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.Modality = series.modality
    ds.SeriesDescription = series.description
    if dated:
        rec.put(ds, "SeriesDate", s.series_date, "C_dates")
        ds.SeriesTime = s.time
    ds.OperatorsName = site.operator
    ds.PerformingPhysicianName = site.performing
    _pn_parts(rec, "physicians", site.operator)
    _pn_parts(rec, "physicians", site.performing)
    if series.frame_of_reference:
        ds.FrameOfReferenceUID = series.frame_of_reference
        ds.PositionReferenceIndicator = ds.get("PositionReferenceIndicator", "")


def stamp_equipment(ds: Dataset, p: Person) -> None:
    """General Equipment: institution, station and device serial number."""
    rec, site = p.recorder, p.site
    rec.put(ds, "InstitutionName", site.institution, "institution")
    rec.put(ds, "InstitutionAddress", site.address, "institution")
    ds.InstitutionalDepartmentName = site.department
    rec.put(ds, "StationName", site.station, "device")
    rec.put(ds, "DeviceSerialNumber", site.serial, "device")


def request_item(p: Person, s: Study) -> Dataset:
    """One item of the Request Attributes Sequence (also used as an SR Referenced Request)."""
    rec = p.recorder
    item = Dataset()
    rec.put(item, "AccessionNumber", s.accession, "J_accession")
    item.StudyInstanceUID = s.uid
    rec.put(item, "RequestedProcedureID", s.request_id, "R_ids")
    who = f" for {p.display}" if p.family else ""
    item.RequestedProcedureDescription = f"{s.description}{who}"
    rec.put(item, "ScheduledProcedureStepID", s.step_id, "R_ids")
    item.ScheduledProcedureStepDescription = s.description
    return item


def referenced_request(p: Person, s: Study) -> Dataset:
    """One item of an SR's Referenced Request Sequence, with the order numbers."""
    rec = p.recorder
    item = request_item(p, s)
    del item.ScheduledProcedureStepID, item.ScheduledProcedureStepDescription
    item.ReferencedStudySequence = []
    item.RequestedProcedureCodeSequence = []
    rec.put(item, "PlacerOrderNumberImagingServiceRequest", f"PO{s.request_id[2:]}", "J_accession")
    rec.put(item, "FillerOrderNumberImagingServiceRequest", f"FO{s.step_id[3:]}", "J_accession")
    return item


def stamp_private(ds: Dataset, p: Person, s: Study) -> None:
    """An ``ACME_PRIVATE 1.0`` block: name and MRN as LO, and a private sequence holding the
    patient name (PN) and the original Study Instance UID (UI)."""
    rec = p.recorder
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    if p.family:
        name = f"{p.family}, {p.given}"
        block.add_new(0x01, "LO", name)
        rec.add("A_names", name)
    if p.mrn:
        block.add_new(0x02, "LO", p.mrn)
    item = Dataset()
    nested = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    nested.add_new(0x10, "PN", p.pn or p.site.referring)
    nested.add_new(0x11, "UI", s.uid)
    block.add_new(0x03, "SQ", [item])


def stamp_levels(ds: Dataset, p: Person, s: Study, series: Series, *, dated: bool = True) -> None:
    """Every planted level, in order: patient, study, series (``dated``: with its date and
    time), equipment and the private block."""
    stamp_patient(ds, p, s)
    stamp_study(ds, p, s)
    stamp_series(ds, p, s, series, dated=dated)
    stamp_equipment(ds, p)
    stamp_private(ds, p, s)


def stamp_referenced_patient(ds: Dataset, p: Person) -> None:
    """Referenced Patient Sequence, pointing at a patient record UID (planted in images)."""
    if not p.patient_uid:
        p.patient_uid = p.uids.new()
    item = Dataset()
    item.ReferencedSOPClassUID = _PATIENT_MANAGEMENT
    item.ReferencedSOPInstanceUID = p.patient_uid
    ds.ReferencedPatientSequence = [item]


