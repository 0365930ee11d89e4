"""The pre-pass of a folder run: headers indexed, files sharing a SOP Instance UID resolved
(the first in sorted path order kept, identical copies duplicates, different ones conflicts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from anonlib.inputs import InputFile, index_inputs, read_header

RTDOSE = Path(str(get_testdata_file("rtdose.dcm")))
RTDOSE_1FRAME = Path(str(get_testdata_file("rtdose_1frame.dcm")))
CT = Path(str(get_testdata_file("CT_small.dcm")))


def _folder(tmp: Path, files: dict[str, Path | bytes]) -> Path:
    root = tmp / "src"
    for name, what in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, bytes):
            target.write_bytes(what)
        else:
            shutil.copy(what, target)
    return root


def test_a_header_gives_the_uids_and_the_patient_key() -> None:
    item = read_header(CT, "ct.dcm")
    ds = pydicom.dcmread(CT, stop_before_pixels=True)
    assert (item.sop_uid, item.study_uid, item.patient_id) == (
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.PatientID)
    assert item.sop_uid not in repr(item) and item.patient_id not in repr(item)


def test_files_that_are_not_dicom_are_left_for_the_main_pass(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"empty.dcm": b"", "notes.txt": b"hello, not DICOM\n" * 20,
                              "ct.dcm": CT})
    index = index_inputs(root.iterdir(), root)
    chosen, skipped = index.selection()
    assert [f.label for f in chosen] == ["ct.dcm", "empty.dcm", "notes.txt"]
    assert [f.sop_uid == "" for f in chosen] == [False, True, True]
    assert not skipped


def test_the_first_in_path_order_is_kept_copies_are_duplicates_others_conflicts(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"b/rtdose.dcm": RTDOSE, "a/rtdose.dcm": RTDOSE,
                              "c/one_frame.dcm": RTDOSE_1FRAME, "ct.dcm": CT})
    index = index_inputs(reversed(sorted(root.rglob("*.dcm"))), root)  # order given does not matter
    assert [f.label for f in index.files] == ["a/rtdose.dcm", "b/rtdose.dcm", "c/one_frame.dcm", "ct.dcm"]
    chosen, skipped = index.selection()
    assert [f.label for f in chosen] == ["a/rtdose.dcm", "ct.dcm"]
    assert [(s.label, s.kept, s.status) for s in skipped] == [
        ("b/rtdose.dcm", "a/rtdose.dcm", "duplicate"), ("c/one_frame.dcm", "a/rtdose.dcm", "conflict")]
    assert all("1.9.999" not in s.reason and s.kept in s.reason for s in skipped)  # names, no values


def test_files_are_indexed_by_study_and_a_visitor_sees_each_header(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"ct.dcm": CT, "dose.dcm": RTDOSE, "dose1.dcm": RTDOSE_1FRAME, "x.txt": b"x"})
    seen: list[tuple[str, str]] = []

    def visit(item: InputFile, header: Dataset) -> None:
        seen.append((item.label, str(header.SOPInstanceUID)))

    index = index_inputs(root.iterdir(), root, visit=visit)
    assert [label for label, _ in seen] == ["ct.dcm", "dose.dcm", "dose1.dcm"]  # not the text file
    studies = index.by_study()
    assert sorted(len(files) for files in studies.values()) == [1, 2]
    assert [f.label for f in index.by_sop()[str(pydicom.dcmread(RTDOSE).SOPInstanceUID)]] == ["dose.dcm", "dose1.dcm"]


def test_a_broken_copy_does_not_compete_it_is_left_for_the_main_pass_to_reject(tmp_path: Path) -> None:
    data = RTDOSE.read_bytes()
    root = _folder(tmp_path, {"a-cut.dcm": data[:len(data) // 2], "b.dcm": RTDOSE, "c.dcm": RTDOSE_1FRAME})
    chosen, skipped = index_inputs(root.iterdir(), root).selection()
    assert [f.label for f in chosen] == ["a-cut.dcm", "b.dcm"]  # the truncated one: rejected later
    assert [(s.label, s.kept, s.status) for s in skipped] == [("c.dcm", "b.dcm", "conflict")]


def test_the_whole_header_can_be_read_for_later_per_study_work() -> None:
    headers: list[Dataset] = []
    read_header(CT, "ct.dcm", tags=None, visit=lambda _item, header: headers.append(header))
    (header,) = headers
    assert "PatientName" in header and "Rows" in header and "PixelData" not in header
    read_header(CT, "ct.dcm", visit=lambda _item, header: headers.append(header))
    assert "PatientName" not in headers[1] and "SOPInstanceUID" in headers[1]
