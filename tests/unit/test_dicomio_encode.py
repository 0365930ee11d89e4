"""anonlib.dicomio.encode writes exactly the bytes pydicom's writer writes (issue 12)."""

from __future__ import annotations

import warnings

import pydicom
import pytest
from pydicom.charset import default_encoding
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.dicomio.encode import element_bytes, encodings_of, file_meta_bytes

pytestmark = pytest.mark.filterwarnings("ignore")


def _pydicom_bytes(elem: DataElement, charset: object, implicit: bool) -> bytes:
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, True
    write_data_element(out, elem, charset)
    return out.getvalue()


def _item(*elements: tuple[int, str, object]) -> Dataset:
    item = Dataset()
    for tag, vr, value in elements:
        item.add_new(tag, vr, value)
    return item


CASES: list[tuple[int, str, object]] = [
    (0x00100010, "PN", "Doe^John"), (0x00100010, "PN", "Doe^Jo"), (0x00100010, "PN", ""),
    (0x00100010, "PN", ["Doe^John", "Roe^Ann"]), (0x00100010, "PN", "Yamada^Tarou=山田^太郎"),
    (0x00100020, "LO", "PID123"), (0x00100020, "LO", "PID12"), (0x00100020, "LO", ""),
    (0x00081030, "LO", ["a", "bc"]), (0x00081030, "LO", "Müller"), (0x00324000, "LT", "line\r\nnext "),
    (0x00081090, "LO", "Ωmega"), (0x00080080, "LO", None), (0x00204000, "LT", "x" * 70000),
    (0x00080050, "SH", "ACC1"), (0x00181030, "ST", "text"), (0x00400254, "UC", "long odd"),
    (0x00180015, "CS", "CHEST"), (0x00080008, "CS", ["ORIGINAL", "PRIMARY", "AXIAL"]),
    (0x00080060, "CS", ""), (0x00080054, "AE", "AET1"), (0x00101010, "AS", "090Y"),
    (0x00080018, "UI", "1.2.3.4"), (0x00080018, "UI", "1.2.3.45"), (0x00080018, "UI", ""),
    (0x00081150, "UI", ["1.2.3", "1.2.34"]), (0x0008010E, "UR", "http://x"),
    (0x00080020, "DA", "20200101"), (0x00080020, "DA", ""), (0x00080021, "DA", ["20200101", "2021"]),
    (0x0008002A, "DT", "20200101120000.1"), (0x00080030, "TM", "120000"), (0x00080030, "TM", "1200001"),
    (0x00280010, "US", 512), (0x00280010, "US", None), (0x00280010, "US", [1, 2, 3]),
    (0x00020000, "UL", 200), (0x00186020, "SL", -5), (0x00189087, "FD", 1.5), (0x00186024, "FL", 0.25),
    (0x00189218, "SS", -3), (0x00020001, "OB", b"\x00\x01"), (0x00020001, "OB", b"\x01"),
    (0x00020001, "OB", b""), (0x00200013, "IS", "12"), (0x00280030, "DS", ["0.5", "0.5"]),
    (0x00200013, "IS", "012"), (0x00200013, "IS", 7), (0x00200013, "IS", ["1", "22"]), (0x00200013, "IS", ""),
    (0x00281050, "DS", "40.0"), (0x00281050, "DS", " 1.50"), (0x00281050, "DS", 0.1 + 0.2), (0x00281050, "DS", 3),
    (0x00280030, "DS", [0.5, "0.70"]), (0x00181050, "DS", None), (0x00281052, "DS", "-1024"),
    (0x00081155, "UI", "x" * 70000), (0x00283010, "SQ", []), (0x00283002, "US", [256, 0, 16]),
    (0x00082218, "SQ", [_item((0x00080100, "SH", "T-D1100"), (0x00080102, "SH", "SRT"),
                              (0x00080104, "LO", "Chest"))]),
    (0x00082218, "SQ", [_item((0x00080100, "SH", "1")), _item()]),
    (0x00400275, "SQ", [_item((0x00400009, "SH", "S1"), (0x00321064, "SQ", [
        _item((0x00080100, "SH", "C1"), (0x00080104, "LO", "Nested"))]))]),
]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("charset", ["", "ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"], "GB18030"])
def test_element_bytes_are_pydicoms(implicit: bool, charset: object) -> None:
    encodings = encodings_of(charset)
    handled = 0
    for tag, vr, value in CASES:
        elem = DataElement(tag, vr, value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = _pydicom_bytes(elem, charset, implicit)
        except Exception:  # noqa: BLE001 - pydicom cannot write it: ours must not either
            assert element_bytes(elem, encodings, implicit) is None
            continue
        ours = element_bytes(elem, encodings, implicit)
        if ours is not None:
            handled += 1
            assert ours == expected, (hex(tag), vr, value if isinstance(value, str) and len(value) < 80 else "...")
    assert handled >= len(CASES) - 4  # the 70,000-byte short values, the LUT descriptor: pydicom's


def test_number_strings_keep_their_original_text_and_arrays_are_left_to_pydicom() -> None:
    import numpy as np

    elem = DataElement(0x00281050, "DS", "040.50")
    assert element_bytes(elem, encodings_of(""), False) == _pydicom_bytes(elem, "", False)
    assert element_bytes(elem, encodings_of(""), False).endswith(b"040.50")  # type: ignore[union-attr]
    elem = DataElement(0x00280030, "DS", ["0.5", "0.5"])
    elem._value = np.array([0.5, 0.25])  # noqa: SLF001 - as read with use_DS_numpy; pydicom joins an array's items: its writer does it
    assert element_bytes(elem, encodings_of(""), False) is None


def test_undefined_length_sequences_and_items() -> None:
    item = _item((0x00080100, "SH", "X"))
    item.is_undefined_length_sequence_item = True
    elem = DataElement(0x00082218, "SQ", Sequence([item, _item((0x00080104, "LO", "Y"))]))
    elem.is_undefined_length = True
    for implicit in (False, True):
        assert element_bytes(elem, encodings_of(""), implicit) == _pydicom_bytes(elem, "", implicit)


def test_an_item_with_its_own_character_set_is_left_to_pydicom() -> None:
    item = _item((0x00080005, "CS", "ISO_IR 100"), (0x00080104, "LO", "Ä"))
    assert element_bytes(DataElement(0x00082218, "SQ", [item]), encodings_of(""), False) is None


def _elements(path: str) -> list[tuple[Dataset, DataElement]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        found = []
        for tag in list(ds.keys()):
            try:
                found.append((ds, ds[tag]))  # decoded, as the engine leaves a changed element
            except Exception:  # noqa: BLE001 - an undecodable element: not a test of ours
                continue
    return found


@pytest.mark.parametrize("path", [p for p in get_testdata_files("*.dcm") if "bad" not in p.lower()][:120])
def test_every_decoded_element_of_pydicoms_files(path: str) -> None:
    """Every top-level element of pydicom's test files, decoded, in the file's own character
    set: the same bytes as pydicom's writer, or left to it."""
    for ds, elem in _elements(path):
        implicit = bool(ds.original_encoding[0])
        if ds.original_encoding[1] is False:
            continue  # big endian: never ours
        charset = ds.get("SpecificCharacterSet", default_encoding)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = _pydicom_bytes(elem, charset, implicit)
        except Exception:  # noqa: BLE001
            assert element_bytes(elem, encodings_of(charset), implicit) is None
            continue
        ours = element_bytes(elem, encodings_of(charset), implicit)
        assert ours is None or ours == expected, (path.rsplit("/", 1)[-1], hex(elem.tag), elem.VR)


def test_file_meta_bytes_are_pydicoms() -> None:
    def meta() -> FileMetaDataset:
        m = FileMetaDataset()
        m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        m.MediaStorageSOPInstanceUID = "2.25.12345678901234567890123"
        m.TransferSyntaxUID = ExplicitVRLittleEndian
        m.ImplementationClassUID = "2.25.178232925316460384337838476203744563459"
        m.ImplementationVersionName = "ANONLIB_0_1"
        return m

    def without_version_name() -> FileMetaDataset:
        m = meta()
        del m.ImplementationVersionName
        return m

    def with_source_ae() -> FileMetaDataset:
        m = meta()
        m.SourceApplicationEntityTitle = "AE1"
        return m

    for make in (meta, without_version_name, with_source_ae):  # anonlib's own meta, and others
        theirs, ours = make(), make()
        out = DicomBytesIO()
        out.is_implicit_VR, out.is_little_endian = False, True
        write_file_meta_info(out, theirs, enforce_standard=True)
        assert file_meta_bytes(ours) == out.getvalue(), make.__name__
        assert ours == theirs  # the same elements added (version, name, group length)
