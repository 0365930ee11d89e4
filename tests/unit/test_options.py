"""Every PS3.15 option changes what the engine does, as Table E.1-1 says."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.helpers import CT, minimal, plan_of, run, sample

DEFAULTS = ["retain_longitudinal_modified_dates", "clean_descriptors", "clean_structured_content",
            "clean_graphics"]


def with_options(*extra: str, without: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return plan_of(options=[o for o in DEFAULTS if o not in without] + list(extra))


def test_retain_uids_keeps_original_uids() -> None:
    ds = minimal(CT)
    out = run(ds, with_options("retain_uids")).dataset
    assert out.SOPInstanceUID == ds.SOPInstanceUID
    assert run(minimal(CT)).dataset.SOPInstanceUID != ds.SOPInstanceUID


def test_retain_device_identity_keeps_station_and_serial() -> None:
    ds = minimal(CT, StationName="CT-ROOM-3", DeviceSerialNumber="SN-55")
    kept = run(ds, with_options("retain_device_identity")).dataset
    assert kept.StationName == "CT-ROOM-3" and kept.DeviceSerialNumber == "SN-55"
    removed = run(ds).dataset
    assert "StationName" not in removed and "DeviceSerialNumber" not in removed


def test_retain_institution_identity_keeps_institution() -> None:
    ds = minimal(CT, InstitutionName="Saint Elsewhere Hospital")
    assert run(ds, with_options("retain_institution_identity")).dataset.InstitutionName == "Saint Elsewhere Hospital"
    assert "InstitutionName" not in run(ds).dataset


def test_retain_patient_characteristics_keeps_sex_weight_age() -> None:
    ds = minimal(CT, PatientSex="F", PatientWeight="61", PatientAge="045Y")
    kept = run(ds, with_options("retain_patient_characteristics")).dataset
    assert (kept.PatientSex, str(kept.PatientWeight), kept.PatientAge) == ("F", "61", "045Y")
    plain = run(ds).dataset
    assert plain.PatientSex == "" and "PatientWeight" not in plain and "PatientAge" not in plain


def test_full_dates_keep_dates_and_say_unmodified() -> None:
    ds = minimal(CT, StudyDate="20230415")
    plan = plan_of(options=["retain_longitudinal_full_dates", "clean_descriptors"])
    out = run(ds, plan).dataset
    assert out.StudyDate == "20230415" and out.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_remove_dates_mode_empties_or_removes_and_says_removed() -> None:
    ds = minimal(CT, StudyDate="20230415", SeriesDate="20230415", CalibrationDate="20230101")
    out = run(ds, plan_of(dates="remove")).dataset
    assert out.StudyDate == ""  # Type 2
    assert "SeriesDate" not in out and "CalibrationDate" not in out  # Type 3
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert "113107" not in codes and "113106" not in codes


def test_clean_descriptors_off_removes_descriptions() -> None:
    ds = minimal(CT, StudyDescription="CT CHEST", SeriesDescription="AXIAL 5mm")
    out = run(ds, with_options(without=("clean_descriptors",))).dataset
    assert "StudyDescription" not in out and "SeriesDescription" not in out
    kept = run(ds).dataset
    assert kept.StudyDescription == "CT CHEST" and kept.SeriesDescription == "AXIAL 5mm"


def _sr_with_text(text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = Sequence([concept])
    item.TextValue = text
    return minimal("1.2.840.10008.5.1.4.1.1.88.33", Modality="SR", ValueType="CONTAINER",
                   ContentSequence=Sequence([item]))


def test_clean_structured_content_keeps_tree_and_scrubs_text() -> None:
    out = run(_sr_with_text("Mass in John Doe's left lung, call 555-867-5309")).dataset
    item = out.ContentSequence[0]
    assert item.ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    assert "John" not in item.TextValue and "5309" not in item.TextValue and "left lung" in item.TextValue


def test_without_clean_structured_content_sr_text_is_dummied() -> None:
    out = run(_sr_with_text("Mass in left lung"), with_options(without=("clean_structured_content",))).dataset
    item = out.ContentSequence[0]
    assert item.TextValue == "ANONYMIZED" and item.ValueType == "TEXT"


def test_clean_graphics_keeps_annotation_graphics_and_scrubs_text() -> None:
    text = Dataset()
    text.UnformattedTextValue = "JOHN DOE 1234567"
    text.AnchorPointAnnotationUnits = "PIXEL"
    graphic = Dataset()
    graphic.GraphicType = "POLYLINE"
    graphic.NumberOfGraphicPoints = 2
    graphic.GraphicData = [1.0, 2.0, 3.0, 4.0]
    layer = Dataset()
    layer.GraphicLayer = "L1"
    layer.TextObjectSequence = Sequence([text])
    layer.GraphicObjectSequence = Sequence([graphic])
    ds = minimal("1.2.840.10008.5.1.4.1.1.11.1", Modality="PR", GraphicAnnotationSequence=Sequence([layer]))
    out = run(ds).dataset.GraphicAnnotationSequence[0]
    assert list(out.GraphicObjectSequence[0].GraphicData) == [1.0, 2.0, 3.0, 4.0]
    assert "JOHN" not in out.TextObjectSequence[0].UnformattedTextValue
    dummied = run(ds, with_options(without=("clean_graphics",))).dataset.GraphicAnnotationSequence[0]
    assert dummied.TextObjectSequence[0].UnformattedTextValue == "ANONYMIZED"


def test_retain_safe_private_keeps_only_safe_private_attributes() -> None:
    ds = sample()
    block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
    block.add_new(0x00, "DS", "1.5")  # (7053,xx00) SUV Factor: in Table E.3.10-1
    block.add_new(0x77, "LO", "DOE^JOHN")  # not listed: unsafe
    out = run(ds, with_options("retain_safe_private")).dataset
    kept = out.private_block(0x7053, "Philips PET Private Group")
    assert str(kept[0x00].value) == "1.5"
    assert kept.get_tag(0x77) not in out
    assert not any(t.group == 0x7053 for t in run(ds).dataset.keys())


def test_declared_safe_private_block_is_kept() -> None:
    ds = minimal(CT)
    block = ds.private_block(0x0019, "VENDOR X", create=True)
    block.add_new(0x10, "DS", "42")
    decl = Dataset()
    decl.PrivateGroupReference = 0x0019
    decl.PrivateCreatorReference = "VENDOR X"
    decl.BlockIdentifyingInformationStatus = "SAFE"
    ds.PrivateDataElementCharacteristicsSequence = Sequence([decl])
    out = run(ds, with_options("retain_safe_private")).dataset
    assert str(out.private_block(0x0019, "VENDOR X")[0x10].value) == "42"


def test_site_profile_overrides_and_keep_list() -> None:
    ds = minimal(CT, ProtocolName="LUNG SCREEN", BodyPartExamined="CHEST", StudyDescription="CT")
    out = run(ds, plan_of(keep=["ProtocolName"], remove=["BodyPartExamined", "StudyDescription"])).dataset
    assert out.ProtocolName == "LUNG SCREEN"
    assert "BodyPartExamined" not in out and "StudyDescription" not in out
