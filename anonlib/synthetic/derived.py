"""Objects derived from the CT by highdicom: a Segmentation, a Comprehensive SR report and a
Grayscale Softcopy Presentation State, each carrying PHI in the places such objects do
(SR TEXT/PNAME/DATE items, presentation text annotations)."""

from __future__ import annotations

import numpy as np
from highdicom.pr import (
    AnnotationUnitsValues,
    GraphicAnnotation,
    GraphicLayer,
    GraphicObject,
    GraphicTypeValues,
    GrayscaleSoftcopyPresentationState,
    TextObject,
)
from highdicom.seg import Segmentation, SegmentDescription
from highdicom.sr import (
    CodedConcept,
    ComprehensiveSR,
    ContainerContentItem,
    DateContentItem,
    DateTimeContentItem,
    ImageContentItem,
    NumContentItem,
    PnameContentItem,
    RelationshipTypeValues,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from anonlib.synthetic.objects import Series, Study, pin_dates
from anonlib.synthetic.phi import Person
from anonlib.synthetic.stamp import referenced_request, stamp_levels

__all__ = ["segmentation", "report", "presentation_state"]

_HAS_CONTEXT = RelationshipTypeValues.HAS_OBS_CONTEXT
_CONTAINS = RelationshipTypeValues.CONTAINS
_INFERRED = RelationshipTypeValues.INFERRED_FROM


def _restamp(ds: Dataset, p: Person, s: Study, series: Series, time: str,
             dimension_uid: str = "") -> None:
    """highdicom copied the patient and study from the source; add what archives add, and
    replace the wall-clock dates and generated UIDs so the corpus is reproducible."""
    stamp_levels(ds, p, s, series, dated=False)
    pin_dates(ds, p.recorder.date_text(s.report_date, 0), time)
    for sequence in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in ds.get(sequence, []):
            item.DimensionOrganizationUID = dimension_uid


def segmentation(p: Person, s: Study, series: Series, cts: list[Dataset]) -> Dataset:
    """A binary SEG of a square lesion on every CT slice."""
    mask = np.zeros((len(cts), cts[0].Rows, cts[0].Columns), dtype=bool)
    centre = cts[0].Rows // 2
    mask[:, centre - 12:centre + 12, centre - 10:centre + 14] = True
    description = SegmentDescription(
        segment_number=1,
        segment_label="Lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type="MANUAL",
    )
    ds = Segmentation(
        source_images=cts,
        pixel_array=mask,
        segmentation_type="BINARY",
        segment_descriptions=[description],
        series_instance_uid=series.uid,
        series_number=series.number,
        sop_instance_uid=p.uids.new(),
        instance_number=1,
        manufacturer="ACME AI",
        manufacturer_model_name="LesionSeg",
        software_versions="1.0",
        device_serial_number=p.site.serial,
        content_label="LESION",
        content_creator_name=p.site.reading,
        omit_empty_frames=False,
    )
    _restamp(ds, p, s, series, "101000", dimension_uid=p.uids.new())
    return ds


_SOURCE_OF_MEASUREMENT = CodedConcept("121112", "DCM", "Source of Measurement")


def _image(ct: Dataset) -> ImageContentItem:
    return ImageContentItem(
        name=_SOURCE_OF_MEASUREMENT,
        referenced_sop_class_uid=ct.SOPClassUID,
        referenced_sop_instance_uid=ct.SOPInstanceUID,
        relationship_type=_INFERRED,
    )


def report(p: Person, s: Study, series: Series, cts: list[Dataset], prior: Study,
           priors: list[Dataset]) -> Dataset:
    """A Comprehensive SR report: observer and subject context (PNAME, DATE, DATETIME), free
    text naming the patient, two measurements inferred from CT images of this study and of
    the prior one (which lands in PertinentOtherEvidenceSequence)."""
    rec = p.recorder
    reported = s.report_date
    when = f"{rec.date_text(s.date, 0)}{s.time}"
    rec.add("C_dates", when)
    items = [
        PnameContentItem(codes.DCM.PersonObserverName, p.site.reading, _HAS_CONTEXT),
        PnameContentItem(codes.DCM.SubjectName, p.pn or "UNKNOWN", _HAS_CONTEXT),
        DateTimeContentItem(codes.DCM.ProcedureDatetime, when, _HAS_CONTEXT),
    ]
    if p.birth is not None:
        items.append(DateContentItem(codes.DCM.SubjectBirthDate,
                                     rec.date_text(p.birth, 0), _HAS_CONTEXT))
    born = rec.date_text(p.birth, 2) if p.birth else "unknown"
    history = f"{p.display}, MRN {p.mrn}, phone {p.phone}, DOB {born}. " \
              f"Prior CT {rec.date_text(prior.date, 3)}."
    items.append(TextContentItem(codes.DCM.History, history, _CONTAINS))
    finding = TextContentItem(
        codes.DCM.Finding,
        f"Mass in the right lower lobe of {p.given} {p.family}, grown since "
        f"{rec.date_text(prior.date, 4)}.",
        _CONTAINS,
    )
    items.append(finding)
    for concept, value, unit, source in [
        (codes.SCT.Diameter, 24.0, codes.UCUM.Millimeter, cts[1]),
        (codes.SCT.Diameter, 17.5, codes.UCUM.Millimeter, priors[1]),
    ]:
        num = NumContentItem(concept, value, unit, relationship_type=_CONTAINS)
        num.ContentSequence = Sequence([_image(source)])
        items.append(num)
    items.append(TextContentItem(
        codes.DCM.Impression,
        f"Reported {rec.date_text(reported, 2)} ({rec.date_text(reported, 1)}, "
        f"{rec.date_text(reported, 3)}, {rec.date_text(reported, 4)}) by "
        f"{p.site.reading.split('^')[0]}. Call {p.phone} with results.",
        _CONTAINS,
    ))
    root = ContainerContentItem(codes.LN.DiagnosticImagingReport, template_id=None)
    root.ContentSequence = Sequence(items)
    ds = ComprehensiveSR(
        evidence=cts + priors,
        content=root,
        series_instance_uid=series.uid,
        series_number=series.number,
        sop_instance_uid=p.uids.new(),
        instance_number=1,
        manufacturer="ACME Reporting",
        is_complete=True,
        is_final=True,
        is_verified=True,
        institution_name=p.site.institution,
        verifying_observer_name=p.site.reading,
        verifying_organization=p.site.institution,
        requested_procedures=[referenced_request(p, s)],
        content_date=rec.date_text(reported, 0),
        content_time="110000",
    )
    _restamp(ds, p, s, series, "110000")
    return ds


def presentation_state(p: Person, s: Study, series: Series, cts: list[Dataset]) -> Dataset:
    """A GSPS on the CT with a polyline and a text annotation naming the patient."""
    layer = GraphicLayer(layer_name="ANNOTATIONS", order=1, description="Reader notes")
    polyline = GraphicObject(
        graphic_type=GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[40.0, 40.0], [80.0, 40.0], [80.0, 80.0], [40.0, 40.0]]),
        units=AnnotationUnitsValues.PIXEL,
    )
    label = TextObject(
        text_value=f"{p.pn or 'UNKNOWN'} {p.mrn} lesion 24 mm",
        units=AnnotationUnitsValues.PIXEL,
        bounding_box=(10.0, 10.0, 120.0, 30.0),
    )
    annotation = GraphicAnnotation(
        referenced_images=cts,
        graphic_layer=layer,
        graphic_objects=[polyline],
        text_objects=[label],
    )
    ds = GrayscaleSoftcopyPresentationState(
        referenced_images=cts,
        series_instance_uid=series.uid,
        series_number=series.number,
        sop_instance_uid=p.uids.new(),
        instance_number=1,
        manufacturer="ACME Viewer",
        manufacturer_model_name="ReadStation",
        software_versions="9.1",
        device_serial_number=p.site.serial,
        content_label="READER_NOTES",
        graphic_annotations=[annotation],
        graphic_layers=[layer],
        institution_name=p.site.institution,
        content_creator_name=p.site.reading,
    )
    if p.pn:
        p.recorder.add("A_names", label.UnformattedTextValue)
    _restamp(ds, p, s, series, "103000")
    ds.BodyPartExamined = "CHEST"  # lets dciodvfy see that Laterality is not needed
    return ds
