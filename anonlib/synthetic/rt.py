"""Radiotherapy objects: a structure set on the CT, a plan on the structure set, a dose on
the plan, all in the CT's Frame of Reference."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, RTDoseStorage, RTPlanStorage, RTStructureSetStorage

from anonlib.synthetic.objects import Series, Study, template
from anonlib.synthetic.phi import Person
from anonlib.synthetic.stamp import stamp_levels

__all__ = ["rtstruct", "rtplan", "rtdose"]

_STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"  # retired; what TPSs still write


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _start(p: Person, s: Study, series: Series, sop_class: str) -> Dataset:
    """A new RT instance with every planted level, created on the report date."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = p.uids.new()
    stamp_levels(ds, p, s, series, dated=False)
    ds.Manufacturer = "ACME Oncology"
    ds.ManufacturerModelName = "PlanIt"
    ds.SoftwareVersions = "4.2"
    ds.InstanceNumber = 1
    ds.InstanceCreationDate = p.recorder.date_text(s.report_date, 0)
    ds.InstanceCreationTime = "093000"
    return ds


def _centre(ct: Dataset) -> tuple[float, float]:
    x0, y0, _ = (float(v) for v in ct.ImagePositionPatient)
    row_spacing, column_spacing = (float(v) for v in ct.PixelSpacing)
    return x0 + column_spacing * ct.Columns / 2, y0 + row_spacing * ct.Rows / 2


def _square(cx: float, cy: float, z: float, half: float) -> list[str]:
    corners = [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
               (cx - half, cy + half)]
    return [f"{v:.2f}" for x, y in corners for v in (x, y, z)]


def rtstruct(p: Person, s: Study, series: Series, cts: list[Dataset]) -> Dataset:
    """Two ROIs (GTV, External) contoured on every CT slice, each contour referencing its
    slice; the referenced study/series/images listed in ReferencedFrameOfReferenceSequence."""
    ds = _start(p, s, series, RTStructureSetStorage)
    ds.StructureSetLabel = "CHEST RT"
    ds.StructureSetName = "Chest plan structures"
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = "093000"
    images = [_ref(CTImageStorage, ct.SOPInstanceUID) for ct in cts]
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = cts[0].SeriesInstanceUID
    ref_series.ContourImageSequence = images
    ref_study = _ref(_STUDY_COMPONENT_MANAGEMENT, cts[0].StudyInstanceUID)
    ref_study.RTReferencedSeriesSequence = [ref_series]
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = cts[0].FrameOfReferenceUID
    ref_frame.RTReferencedStudySequence = [ref_study]
    ds.ReferencedFrameOfReferenceSequence = [ref_frame]
    cx, cy = _centre(cts[0])
    rois, contours, observations = [], [], []
    for number, (name, kind, half, colour) in enumerate(
        [("GTV", "GTV", 10.0, [255, 0, 0]), ("External", "EXTERNAL", 35.0, [0, 255, 0])], 1
    ):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = cts[0].FrameOfReferenceUID
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        contour = Dataset()
        contour.ROIDisplayColor = colour
        contour.ReferencedROINumber = number
        contour.ContourSequence = []
        for index, ct in enumerate(cts, 1):
            item = Dataset()
            item.ContourImageSequence = [_ref(CTImageStorage, ct.SOPInstanceUID)]
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = 4
            item.ContourNumber = index
            item.ContourData = _square(cx, cy, float(ct.ImagePositionPatient[2]), half)
            contour.ContourSequence.append(item)
        contours.append(contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = kind
        observation.ROIInterpreter = p.site.performing
        observations.append(observation)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    return ds


def rtplan(p: Person, s: Study, series: Series, structure_set: Dataset) -> Dataset:
    """pydicom's one-beam plan, re-identified as this patient's, on ``structure_set``."""
    source = template("rtplan.dcm")
    ds = _start(p, s, series, RTPlanStorage)
    for keyword in ("DoseReferenceSequence", "FractionGroupSequence", "BeamSequence",
                    "PatientSetupSequence"):
        setattr(ds, keyword, source[keyword].value)
    rec = p.recorder
    ds.FrameOfReferenceUID = structure_set.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    ds.RTPlanLabel = "CHEST 60GY"
    ds.RTPlanName = "Chest 30 fractions"
    ds.RTPlanDate = ds.InstanceCreationDate
    ds.RTPlanTime = "094500"
    ds.RTPlanGeometry = "PATIENT"
    ds.ReferencedStructureSetSequence = [
        _ref(RTStructureSetStorage, structure_set.SOPInstanceUID)
    ]
    for group in ds.FractionGroupSequence:
        for beam in group.ReferencedBeamSequence:
            if "BeamDoseSpecificationPoint" in beam:  # retired
                del beam.BeamDoseSpecificationPoint
    for beam in ds.BeamSequence:
        rec.put(beam, "InstitutionName", p.site.institution, "institution")
        rec.put(beam, "DeviceSerialNumber", f"{p.site.serial}L", "device")
        rec.put(beam, "TreatmentMachineName", f"{p.site.station.split('-')[0]}-LINAC", "device")
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate = ds.InstanceCreationDate
    ds.ReviewTime = "120000"
    ds.ReviewerName = p.site.reading
    return ds


def rtdose(p: Person, s: Study, series: Series, plan: Dataset, cts: list[Dataset]) -> Dataset:
    """A 16-bit dose grid over the CT slices, in the CT's Frame of Reference, for ``plan``."""
    ds = _start(p, s, series, RTDoseStorage)
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = "094600"
    frames, size, spacing = len(cts), 16, 8.0
    cx, cy = _centre(cts[0])
    origin = (cx - spacing * size / 2, cy - spacing * size / 2)
    z0 = float(cts[0].ImagePositionPatient[2])
    ds.ImagePositionPatient = [f"{origin[0]:.2f}", f"{origin[1]:.2f}", f"{z0:.2f}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]
    ds.SliceThickness = ""
    offsets = [float(ct.ImagePositionPatient[2]) - z0 for ct in cts]
    ds.GridFrameOffsetVector = [f"{v:.1f}" for v in offsets]
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x3004000C
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    zz, yy, xx = np.mgrid[0:frames, 0:size, 0:size]
    radius2 = (xx - size / 2) ** 2 + (yy - size / 2) ** 2
    dose = np.exp(-radius2 / 18.0 - (zz - frames / 2) ** 2 / 8)
    ds.PixelData = (dose * 60000).astype("<u2").tobytes()
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = "0.001"
    ref_plan = _ref(RTPlanStorage, plan.SOPInstanceUID)
    ds.ReferencedRTPlanSequence = [ref_plan]
    return ds
