"""Acquired images: CT and MR series cut from pydicom's test files, a burned-in Secondary
Capture and an ultrasound-like image."""

from __future__ import annotations

import numpy as np
from highdicom.sc import SCImage
from pydicom.dataset import Dataset
from pydicom.uid import UltrasoundImageStorage

from anonlib.synthetic.objects import Series, Study, pin_dates, template
from anonlib.synthetic.phi import Person
from anonlib.synthetic.stamp import request_item, stamp_levels, stamp_referenced_patient

__all__ = ["image_series", "secondary_capture", "ultrasound", "stamp_all"]

_TEMPLATES = {"CT": "CT_small.dcm", "MR": "MR_small.dcm"}
_SPACING = {"CT": 5.0, "MR": 0.8}


def stamp_all(ds: Dataset, p: Person, s: Study, series: Series, *, dated: bool = True) -> None:
    """Every planted level an acquired image carries."""
    stamp_levels(ds, p, s, series, dated=dated)
    ds.RequestAttributesSequence = [request_item(p, s)]


def _image_comments(p: Person, s: Study) -> str:
    day = p.recorder.date_text(s.date, 3)
    if p.family:
        return f"{p.family}, {p.given} MRN {p.mrn} - acquired {day}"
    return f"Unknown trauma patient - acquired {day}"


def image_series(p: Person, s: Study, series: Series, count: int) -> list[Dataset]:
    """``count`` slices of one CT or MR series: new UIDs, one Frame of Reference, positions
    and instance numbers incremented."""
    slices: list[Dataset] = []
    for index in range(count):
        ds = template(_TEMPLATES[series.modality])
        ds.SpecificCharacterSet = "ISO_IR 100"
        if "Laterality" in ds:  # unpaired body part: absent, not empty
            del ds.Laterality
        stamp_all(ds, p, s, series)
        stamp_referenced_patient(ds, p)
        ds.SOPInstanceUID = p.uids.new()
        ds.InstanceCreatorUID = p.uids.new() if index == 0 else slices[0].InstanceCreatorUID
        ds.InstanceCreationDate = ds.StudyDate
        ds.InstanceCreationTime = s.time
        ds.InstanceNumber = index + 1
        ds.AcquisitionNumber = 1
        p.recorder.put(ds, "AcquisitionDate", s.series_date, "C_dates")
        ds.AcquisitionTime = s.time
        ds.ContentDate = ds.StudyDate
        ds.ContentTime = s.time
        position = [float(v) for v in ds.ImagePositionPatient]
        position[2] += index * _SPACING[series.modality]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        ds.BodyPartExamined = "CHEST"
        ds.ImageComments = _image_comments(p, s)
        slices.append(ds)
    return slices


def secondary_capture(p: Person, s: Study, series: Series, ref: Dataset) -> Dataset:
    """A screen capture with the patient's name and ID burned into a banner (BurnedInAnnotation
    YES): the pixel stage masks them (``burned_in: quarantine`` quarantines it instead)."""
    from anonlib.synthetic.lettering import Font, available_fonts, composite, render

    pixels = np.zeros((96, 256, 3), dtype=np.uint8)
    pixels[48:90, 16:240, 1] = (np.arange(224, dtype=np.uint16)[None, :] // 2).astype(np.uint8)
    font = Font(next(f for f in available_fonts() if f.stem == "DejaVuSans-Bold"), 14)
    for row, text in ((6, f"{p.family}, {p.given}"), (26, f"ID {p.mrn}")):
        composite(pixels, render(text, font), 6, row, (255, 255, 255))
    ds = SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series.uid,
        series_number=series.number,
        sop_instance_uid=p.uids.new(),
        instance_number=1,
        manufacturer="ACME Viewer",
        patient_orientation=("L", "P"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    stamp_all(ds, p, s, series, dated=False)
    ds.BurnedInAnnotation = "YES"
    ds.BodyPartExamined = "CHEST"
    ds.ImageComments = _image_comments(p, s)
    day = p.recorder.date_text(s.report_date, 0)
    pin_dates(ds, day, "101500")
    return ds


def ultrasound(p: Person, s: Study, series: Series) -> Dataset:
    """A single-frame ultrasound image, a 3D obstetric rendering that shows a face
    (RecognizableVisualFeatures YES): quarantined whatever the pixel stage finds."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = p.uids.new()
    stamp_all(ds, p, s, series)
    ds.InstanceNumber = 1
    ds.Manufacturer = "ACME Sonics"
    ds.ManufacturerModelName = "EchoStar 5"
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = s.time
    ds.InstanceCreationDate = ds.StudyDate
    ds.InstanceCreationTime = s.time
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.BodyPartExamined = "ABDOMEN"
    ds.RecognizableVisualFeatures = "YES"
    rows, columns = 60, 80
    yy, xx = np.mgrid[0:rows, 0:columns]
    fan = ((xx - columns / 2) ** 2 + yy**2 < (rows - 2) ** 2) & (abs(xx - columns / 2) < yy + 4)
    pixels = np.where(fan, (yy * 3 + xx) % 200 + 30, 0).astype(np.uint8)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.PixelData = pixels.tobytes()
    return ds
