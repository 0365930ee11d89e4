"""The pre-pass of a folder run: headers indexed, files sharing a SOP Instance UID resolved
(the first in sorted path order kept, identical copies duplicates, different ones conflicts)."""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from anonlib.inputs import index_inputs, read_header

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


def _sop_and_name(header: Dataset) -> tuple[str, str]:
    return str(header.SOPInstanceUID), str(header.get("PatientName", ""))


def test_files_are_indexed_by_study_and_collect_sees_each_header(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"ct.dcm": CT, "dose.dcm": RTDOSE, "dose1.dcm": RTDOSE_1FRAME, "x.txt": b"x"})
    index = index_inputs(root.iterdir(), root, collect=_sop_and_name)
    assert [f.collected is not None for f in index.files] == [True, True, True, False]  # not the text file
    assert index.files[0].collected == (index.files[0].sop_uid, "")  # only the tags asked for
    studies = index.by_study()
    assert sorted(len(files) for files in studies.values()) == [1, 2]
    assert [f.label for f in index.by_sop()[str(pydicom.dcmread(RTDOSE).SOPInstanceUID)]] == ["dose.dcm", "dose1.dcm"]


def test_a_process_pool_reads_the_same_index(tmp_path: Path) -> None:
    root = _folder(tmp_path, {f"d{n:02d}/{name}": path for n in range(20)
                              for name, path in (("a.dcm", RTDOSE), ("b.dcm", CT), ("c.txt", b"text"))})
    files = [p for p in root.rglob("*") if p.is_file()]
    alone = index_inputs(files, root, tags=None, collect=_sop_and_name)
    with ProcessPoolExecutor(2) as pool:
        pooled = index_inputs(files, root, tags=None, collect=_sop_and_name, pool=pool)
    assert pooled == alone and len(alone.files) == 60
    assert [f.collected for f in pooled.files] == [f.collected for f in alone.files]
    assert alone.files[1].collected == (alone.files[1].sop_uid, str(pydicom.dcmread(CT).PatientName))


def test_a_broken_copy_does_not_compete_it_is_left_for_the_main_pass_to_reject(tmp_path: Path) -> None:
    data = RTDOSE.read_bytes()
    root = _folder(tmp_path, {"a-cut.dcm": data[:len(data) // 2], "b.dcm": RTDOSE, "c.dcm": RTDOSE_1FRAME})
    chosen, skipped = index_inputs(root.iterdir(), root).selection()
    assert [f.label for f in chosen] == ["a-cut.dcm", "b.dcm"]  # the truncated one: rejected later
    assert [(s.label, s.kept, s.status) for s in skipped] == [("c.dcm", "b.dcm", "conflict")]


def test_the_whole_header_can_be_read_for_later_per_study_work() -> None:
    whole = read_header(CT, "ct.dcm", tags=None, collect=lambda header: sorted(header.dir()))
    assert isinstance(whole.collected, list)
    assert {"PatientName", "Rows"} <= set(whole.collected) and "PixelData" not in whole.collected
    few = read_header(CT, "ct.dcm", collect=lambda header: sorted(header.dir()))
    assert few.collected == ["PatientID", "SOPInstanceUID", "SpecificCharacterSet", "StudyInstanceUID"]
