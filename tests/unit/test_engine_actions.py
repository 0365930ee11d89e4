"""Each action code, resolved by Type in the instance's IOD, does what PS3.15 says."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anonlib.engine.markers import IMPLEMENTATION_CLASS_UID
from tests.helpers import COMPREHENSIVE_SR, CT, PSEUDONYM, RTSTRUCT, SEG, minimal, plan_of, run, sample


def _change(outcome, keyword):  # type: ignore[no-untyped-def]
    return next(c for c in outcome.changes if c.keyword == keyword)


def test_x_removes_a_type3_attribute() -> None:
    out = run(minimal(CT, PatientAge="045Y", OtherPatientIDs="XYZ-9"))
    assert "PatientAge" not in out.dataset and "OtherPatientIDs" not in out.dataset
    assert _change(out, "PatientAge").outcome == "removed"


def test_z_empties_a_type2_attribute_and_keeps_it_present() -> None:
    out = run(minimal(CT, AccessionNumber="A-99887766", ReferringPhysicianName="WHO^DR"))
    assert out.dataset.AccessionNumber == "" and out.dataset.ReferringPhysicianName == ""
    assert _change(out, "AccessionNumber").action == "Z"


def test_operators_name_follows_its_type_per_iod() -> None:
    """X/Z/D: Type 3 in General Series (CT) → removed; Type 2 in RT Series → emptied."""
    ct = run(minimal(CT, OperatorsName="SMITH^OP"))
    rt = run(minimal(RTSTRUCT, OperatorsName="SMITH^OP", Modality="RTSTRUCT"))
    assert "OperatorsName" not in ct.dataset
    assert "OperatorsName" in rt.dataset and rt.dataset.OperatorsName == ""
    change = _change(rt, "OperatorsName")
    assert (change.code, change.action, change.iod_type) == ("X/Z/D", "Z", "2")


def test_device_serial_number_is_dummied_where_type1() -> None:
    """X/Z/D on DeviceSerialNumber: Type 1 in Enhanced General Equipment (SEG) → D."""
    seg = run(minimal(SEG, DeviceSerialNumber="SN-7781", Modality="SEG"))
    assert seg.dataset.DeviceSerialNumber not in ("", "SN-7781")
    assert _change(seg, "DeviceSerialNumber").action == "D"


def test_plain_x_on_a_required_attribute_is_kept_conformant() -> None:
    """A plain X on an attribute the IOD requires (Type 1/2 under a kept parent) becomes D/Z
    (required_type12.md B): RequestedProcedureID inside SR's ReferencedRequestSequence."""
    item = Dataset()
    item.RequestedProcedureID = "RP-1234567"
    item.StudyInstanceUID = "1.2.826.0.1.3680043.10.543.1234567.2"
    ds = minimal("1.2.840.10008.5.1.4.1.1.88.33", Modality="SR",
                 ReferencedRequestSequence=Sequence([item]))
    out = run(ds)
    kept = out.dataset.ReferencedRequestSequence[0]
    assert "RequestedProcedureID" in kept and kept.RequestedProcedureID == ""
    assert "kept: Type 2" in _change(out, "RequestedProcedureID").note


def test_u_remaps_uids_everywhere_consistently() -> None:
    ds = minimal(CT)
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([ref])
    out = run(ds).dataset
    new = out.SOPInstanceUID
    assert new.startswith("2.25.") and new != "1.2.826.0.1.3680043.10.543.1234567.1.1"
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == CT  # class UIDs kept


def test_p_gives_the_patient_pseudonym() -> None:
    out = run(minimal(CT)).dataset
    assert out.PatientID == PSEUDONYM and str(out.PatientName) == PSEUDONYM


def test_c_cleans_descriptors_of_known_identifiers() -> None:
    out = run(minimal(CT, StudyDescription="CT chest for John Doe 1234567")).dataset
    assert "John" not in out.StudyDescription and "1234567" not in out.StudyDescription
    assert out.StudyDescription.startswith("CT chest for")


def test_k_keeps_unlisted_attributes_but_scrubs_known_values() -> None:
    ds = minimal(CT, Manufacturer="ACME", SliceThickness="2.5", ManufacturerModelName="JOHN DOE scanner")
    out = run(ds).dataset
    assert out.Manufacturer == "ACME" and float(out.SliceThickness) == 2.5
    assert "JOHN" not in out.ManufacturerModelName and "scanner" in out.ManufacturerModelName


def test_dates_are_shifted_at_every_depth_and_invalid_ones_replaced() -> None:
    item = Dataset()
    item.ScheduledProcedureStepStartDate = "20230110"
    ds = minimal(CT, StudyDate="20230415", AcquisitionDateTime="20230415101530.25+0100",
                 SeriesDate="20231345", RequestAttributesSequence=Sequence([item]))
    out = run(ds).dataset
    assert out.StudyDate == "20220311"  # -400 days
    assert out.AcquisitionDateTime == "20220311101530.25+0100"
    assert out.SeriesDate == ""  # invalid date, Type 3 here: emptied, never passed through
    assert out.RequestAttributesSequence[0].ScheduledProcedureStepStartDate == "20211206"


def test_ages_over_89_are_capped_and_birth_date_emptied() -> None:
    plan_keep_age = {"options": ["retain_patient_characteristics", "retain_longitudinal_modified_dates",
                                 "clean_descriptors"],
                     "actions": {"PatientBirthDate": "C"}}
    out = run(minimal(CT, PatientAge="093Y", PatientBirthDate="19300101", StudyDate="20230101"),
              plan_of(**plan_keep_age)).dataset
    assert out.PatientAge == "090Y"
    assert out.PatientBirthDate == ""


def test_private_attributes_are_removed_by_default() -> None:
    ds = minimal(CT)
    block = ds.private_block(0x0009, "ACME_PRIVATE 1.0", create=True)
    block.add_new(0x10, "LO", "DOE^JOHN")
    out = run(ds).dataset
    assert not any(tag.group == 0x0009 for tag in out.keys())


def test_overlay_groups_are_removed_whole() -> None:
    out = run(sample("examples_overlay.dcm")).dataset
    assert not any(0x6000 <= tag.group <= 0x601E for tag in out.keys())


def test_structural_and_retired_elements_are_dropped() -> None:
    ds = minimal(CT)
    ds.add_new(0x00080000, "UL", 100)  # a group length
    out = run(ds).dataset
    assert 0x00080000 not in out


def test_markers_and_file_meta_are_written() -> None:
    out = run(sample()).dataset
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113107", "113105", "113104", "113103"} <= codes
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert out.preamble == b"\x00" * 128
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_engine_is_pure_and_repeatable() -> None:
    original = sample()
    first = run(original).dataset
    second = run(original).dataset
    assert original.PatientName != first.PatientName  # the input was not modified (copy=True)
    assert list(first.keys()) == list(second.keys())
    assert all(first[t].value == second[t].value for t in first.keys() if first[t].VR != "SQ")


def test_change_record_names_paths_not_values_unless_asked() -> None:
    from anonlib.engine import deidentify
    from tests.helpers import LOOKUP, plan_of

    out = deidentify(sample(), plan_of(), LOOKUP)
    assert out.changes and all(c.before is None and c.after is None for c in out.changes)
    assert all(c.path.startswith("(") for c in out.changes)


def test_public_sequence_encoded_as_un_is_still_cleaned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """rtdose_rle.dcm stores ReferencedRTPlanSequence with explicit VR UN: its UIDs must still be
    remapped (pydicom decodes it as the sequence it is)."""
    import shutil

    from pydicom.data import get_testdata_file

    from anonlib.dicomio import encode_instance, read_instance
    from anonlib.engine import deidentify
    from tests.helpers import LOOKUP, plan_of

    path = tmp_path / "dose.dcm"
    shutil.copy(get_testdata_file("rtdose_rle.dcm"), path)
    parsed = read_instance(path)
    original = "1.2.123.456.78.9.0123.4567.89012345678901"
    assert getattr(parsed.dataset.get_item(0x300C0002), "VR", None) == "UN"
    out = deidentify(parsed.dataset, plan_of(), LOOKUP, copy=False)
    assert original.encode() not in encode_instance(out.dataset, parsed.pixel_bytes)


def test_person_names_the_table_does_not_list_are_removed_by_vr() -> None:
    out = run(minimal(CT, EvaluatorName="ROE^JANE", SecondaryReviewerName="ROE^JIM"))
    assert "EvaluatorName" not in out.dataset and "SecondaryReviewerName" not in out.dataset
    assert _change(out, "EvaluatorName").source.startswith("anonlib: by VR")


def test_issuer_and_identification_sequences_outside_the_table_are_removed() -> None:
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "SAINT-ELSEWHERE-RIS"
    out = run(minimal(CT, IssuerOfAccessionNumberSequence=Sequence([issuer]),
                      StorageMediaFileSetID="DOE_JOHN_CD")).dataset
    assert "IssuerOfAccessionNumberSequence" not in out and "StorageMediaFileSetID" not in out


def _verified_sr() -> Dataset:
    observer = Dataset()
    observer.VerifyingObserverName = "Kowalczyk^Bartholomew"
    observer.VerifyingOrganization = "Saint Elsewhere"
    observer.VerificationDateTime = "20230415101500"
    observer.InstanceCreationDate = "20230416"  # nested where it does not belong, as found
    observer.InstanceCreationTime = "101500"
    return minimal(COMPREHENSIVE_SR, Modality="SR", VerifyingObserverSequence=Sequence([observer]))


def test_dates_in_a_dummied_sequence_are_shifted_and_its_text_dummied() -> None:
    """D on Verifying Observer Sequence: its text is dummied, its dates are shifted under
    Modified Dates like every other date (not replaced by 19000101)."""
    out = run(_verified_sr())
    item = out.dataset.VerifyingObserverSequence[0]
    assert item.VerificationDateTime == "20220311101500"  # -400 days, time kept
    assert item.InstanceCreationDate == "20220312" and item.InstanceCreationTime == "101500"
    assert item.VerifyingObserverName == "ANONYMIZED" and item.VerifyingOrganization == "ANONYMIZED"
    assert _change(out, "VerificationDateTime").outcome == "shifted"


def test_dates_in_a_dummied_sequence_follow_the_full_and_remove_date_options() -> None:
    kept = run(_verified_sr(), plan_of(dates="keep")).dataset.VerifyingObserverSequence[0]
    assert kept.VerificationDateTime == "20230415101500" and kept.InstanceCreationDate == "20230416"
    assert kept.VerifyingObserverName == "ANONYMIZED"
    removed = run(_verified_sr(), plan_of(dates="remove")).dataset.VerifyingObserverSequence[0]
    assert removed.VerificationDateTime not in ("", "20230415101500")  # Type 1: dummied, not emptied
    assert removed.get("InstanceCreationDate") in (None, "", "19000101")
