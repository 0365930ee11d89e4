"""Malformed and hostile DICOM files, generated from pydicom's offline test files.

:func:`write_malformed` writes a few hundred files an intake must survive — cut at random
offsets, bytes flipped, lengths made wrong, sequences left open, sequences nested hundreds deep,
values far too large, deflate bombs, path-like values, invalid character sets, SOP Instance UIDs
used twice — each with its kind, so that a test can check that every one of them is de-identified
or rejected with a named reason, never a traceback. Everything is seeded and built in memory
from a handful of small files; nothing is downloaded.
"""

from __future__ import annotations

import copy
import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID

__all__ = ["MalformedFile", "SOURCES", "write_malformed", "nested_content", "deflate_bomb", "un_text",
           "path_like", "with_uid", "many_items", "PATH_VALUES"]

#: pydicom's offline test files the malformed ones are made from (explicit and implicit VR,
#: an SR, RT objects, a colour and a compressed image).
SOURCES = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "test-SR.dcm",
           "JPEG2000.dcm", "rtstruct.dcm", "SC_rgb.dcm")

_SEQ_UNDEFINED = 0xFFFFFFFF
_CONTENT_SEQUENCE = (0x0040, 0xA730)


@dataclass(frozen=True)
class MalformedFile:
    """One generated file: where, which kind of damage, and from which source file."""

    path: Path
    kind: str
    source: str


def _read(name: str) -> Dataset:
    path = get_testdata_file(name)
    if path is None:  # pragma: no cover - pydicom ships these
        raise FileNotFoundError(name)
    return pydicom.dcmread(str(path), force=True)


def _bytes(ds: Dataset, syntax: str | None = None) -> bytes:
    ds = copy.deepcopy(ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def with_uid(uid: str, name: str = "CT_small.dcm") -> bytes:
    """An intact copy of ``name`` with SOP Instance UID ``uid`` (same study as the others)."""
    return _bytes(_with_uid(_read(name), uid))


def _with_uid(ds: Dataset, uid: str) -> Dataset:
    if uid:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    return ds


def nested_content(depth: int, *, implicit: bool = False, uid: str = "") -> bytes:
    """CT_small with a ContentSequence nested ``depth`` levels deep (undefined lengths, written
    by hand: pydicom's own writer recurses). 50 levels crashed a research Orthanc; 200 and more
    exhaust pydicom's recursion."""
    data = _bytes(_with_uid(_read("CT_small.dcm"), uid), "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    at = next(pos for pos in _top_level(data, implicit) if struct.unpack_from("<HH", data, pos) > _CONTENT_SEQUENCE)
    if implicit:
        seq = struct.pack("<HHL", *_CONTENT_SEQUENCE, _SEQ_UNDEFINED)
        value_type = struct.pack("<HHL", 0x0040, 0xA040, 4) + b"TEXT"
    else:
        seq = struct.pack("<HH2sHL", *_CONTENT_SEQUENCE, b"SQ", 0, _SEQ_UNDEFINED)
        value_type = struct.pack("<HH2sH", 0x0040, 0xA040, b"CS", 4) + b"TEXT"
    item = struct.pack("<HHL", 0xFFFE, 0xE000, _SEQ_UNDEFINED)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return data[:at] + (seq + item + value_type) * depth + closing * depth + data[at:]


def deflate_bomb(inflated: int, uid: str = "") -> bytes:
    """A Deflated Explicit VR Little Endian file of about ``inflated / 1000`` bytes whose data
    set inflates to ``inflated`` bytes (a private OB of zeros after CT_small's header)."""
    ds = _with_uid(_read("CT_small.dcm"), uid)
    del ds.PixelData
    meta = copy.deepcopy(ds.file_meta)
    meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1.99")
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    head = struct.pack("<HH2sHL", 0x7FE1, 0x0010, b"OB", 0, inflated)
    # Blocks ended by a full flush do not refer to earlier data: one compressed 16 MiB run of
    # zeros is repeated as often as needed (fast), then a short run and the final empty block.
    engine = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [engine.compress(body.getvalue() + head) + engine.flush(zlib.Z_FULL_FLUSH)]
    step = 1 << 24
    run = engine.compress(bytes(step)) + engine.flush(zlib.Z_FULL_FLUSH)
    parts += [run] * (inflated // step)
    parts.append(engine.compress(bytes(inflated % step)) + engine.flush())
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + b"".join(parts)


def un_text(size: int = 70_000, planted: str = "", uid: str = "") -> bytes:
    """CT_small with StudyDescription stored as UN holding ``size`` bytes of text (over 64 KiB:
    pydicom keeps it UN), ``planted`` at its start."""
    ds = _with_uid(_read("CT_small.dcm"), uid)
    text = (planted + " " + "A" * size).encode()
    ds.add_new(0x00081030, "UN", text + (b" " if len(text) % 2 else b""))
    return _bytes(ds)


def path_like(keyword: str, value: str, name: str = "CT_small.dcm", uid: str = "") -> bytes:
    """``name`` with one attribute set to a path-like value (written as it is, VR unchecked)."""
    ds = _with_uid(_read(name), uid)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    raw = value.encode("ascii")
    raw += b" " if len(raw) % 2 else b""
    ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), pydicom.datadict.dictionary_VR(tag), len(raw), raw,
                                             0, False, True)
    return _bytes(ds)


def _top_level(data: bytes, implicit: bool) -> Iterator[int]:
    """Offsets of the top-level elements after the file meta (defined lengths assumed)."""
    from anonlib.dicomio.scan import LONG_VRS, dataset_start

    pos = dataset_start(data)
    while pos + 8 <= len(data):
        yield pos
        if implicit:
            length, size = struct.unpack_from("<L", data, pos + 4)[0], 8
        elif data[pos + 4:pos + 6] in LONG_VRS:
            length, size = struct.unpack_from("<L", data, pos + 8)[0], 12
        else:
            length, size = struct.unpack_from("<H", data, pos + 6)[0], 8
        if length == _SEQ_UNDEFINED:
            return
        pos += size + length


def _truncations(data: bytes, rng: random.Random, n: int) -> Iterator[bytes]:
    for _ in range(n):
        yield data[:rng.randrange(1, len(data))]


def _flips(data: bytes, rng: random.Random, n: int) -> Iterator[bytes]:
    header_end = max(200, data.find(b"\xe0\x7f\x10\x00") if b"\xe0\x7f\x10\x00" in data else len(data))
    for _ in range(n):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(132, min(header_end, len(data)))] ^= 1 << rng.randrange(8)
        yield bytes(damaged)


def _element_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, header size) of the top-level explicit VR elements after the file meta."""
    from anonlib.dicomio.scan import LONG_VRS, dataset_start

    pos, found = dataset_start(data), []
    while pos + 8 <= len(data):
        vr = data[pos + 4:pos + 6]
        if not vr.isalpha():
            break
        if vr in LONG_VRS:
            length, size = struct.unpack_from("<L", data, pos + 8)[0], 12
        else:
            length, size = struct.unpack_from("<H", data, pos + 6)[0], 8
        found.append((pos, size))
        if length == _SEQ_UNDEFINED:
            break
        pos += size + length
    return found


def _wrong_lengths(data: bytes, rng: random.Random, n: int) -> Iterator[bytes]:
    offsets = _element_offsets(data)
    for _ in range(n if offsets else 0):
        pos, size = rng.choice(offsets)
        damaged = bytearray(data)
        if size == 12:
            struct.pack_into("<L", damaged, pos + 8, rng.choice([0x7FFFFFFF, 0xFFFFFFF0, len(data) * 3, 1, 3]))
        else:
            struct.pack_into("<H", damaged, pos + 6, rng.choice([0xFFFF, 0xFFF0, 1, 3, 0x1001]))
        yield bytes(damaged)


def _unclosed(data: bytes) -> Iterator[bytes]:
    """Each sequence (and item) delimiter removed in turn, and the file cut after an opening."""
    for marker in (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"):
        at = data.find(marker)
        if at >= 0:
            yield data[:at] + data[at + 8:]
            yield data[:at]


def _charsets(name: str, rng: random.Random) -> Iterator[bytes]:
    ds = _read(name)
    for charset, value in (("ISO_IR 999", "Doe^John"), ("ISO_IR 192", None), ("ISO 2022 IR 87", None),
                           ("ISO_IR 100\\ISO_IR 6\\bogus", "Doe^John"), ("", None)):
        changed = copy.deepcopy(ds)
        changed.SpecificCharacterSet = charset
        if value is not None:
            changed.PatientName = value
        else:  # bytes invalid in that character set
            changed.add_new(0x00100010, "PN", b"Do\xff\xfe\x1b$B^J\xc3")
            changed.add_new(0x00104000, "LT", b"\x1b(J\xff\x80 comment \xed\xa0\x80")
        yield _fresh(changed, rng)


def _many_items(count: int) -> bytes:
    def element(tag: int, vr: bytes, value: bytes) -> bytes:
        value += b"\x00" if len(value) % 2 else b""
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value

    items = []
    for n in range(count):
        body = element(0x00081150, b"UI", b"1.2.840.10008.5.1.4.1.1.2") + \
            element(0x00081155, b"UI", f"1.2.3.{n + 1}".encode())
        items.append(struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body)
    value = b"".join(items)
    return struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, len(value)) + value


def _with_many_items(data: bytes, count: int) -> bytes:
    at = next(pos for pos, _ in _element_offsets(data)  # where (0008,1140) belongs
              if struct.unpack_from("<HH", data, pos) > (0x0008, 0x1140))
    return data[:at] + _many_items(count) + data[at:]


def many_items(count: int, uid: str = "") -> bytes:
    """CT_small with a ReferencedImageSequence of ``count`` items."""
    return _with_many_items(_bytes(_with_uid(_read("CT_small.dcm"), uid), "1.2.840.10008.1.2.1"), count)


def _huge_values(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    ds = _read("CT_small.dcm")
    big = copy.deepcopy(ds)
    big.add_new(0x00104000, "LT", "x" * (2 << 20))  # PatientComments, 2 MiB
    yield "huge text", _fresh(big, rng)
    long_name = copy.deepcopy(ds)
    long_name.add_new(0x00100010, "PN", "A" * 60_000 + "^B")
    yield "long value", _fresh(long_name, rng)
    for size, planted in ((70_000, ""), (200_000, "Zorbalina")):
        as_un = copy.deepcopy(ds)
        as_un.add_new(0x00081030, "UN", (planted + " " + "A" * size).encode())
        yield "text as UN", _fresh(as_un, rng)
    for count in (5000, 50000):  # a ReferencedImageSequence of thousands of items, written by hand
        yield "many items", _with_many_items(_fresh(ds, rng), count)


PATH_VALUES = (("Modality", "/etc/passwd"), ("SeriesNumber", "../../etc"), ("StudyInstanceUID", "..\\..\\windows"),
                ("PatientID", "../../../root"), ("SOPInstanceUID", "../x"), ("SeriesInstanceUID", "/tmp/x"),
                ("AccessionNumber", "C:\\Windows\\system32"), ("InstanceNumber", "1/../2"),
                ("BodyPartExamined", "../../BODY"), ("StudyID", "~/.ssh"))


def _fresh(ds: Dataset, rng: random.Random) -> bytes:
    """``ds`` encoded with a SOP Instance UID of its own (so that damaged copies of one source
    do not all compete for one UID), in its own transfer syntax."""
    ds = copy.deepcopy(ds)
    uid = UID(f"2.25.{rng.getrandbits(120)}")
    ds.SOPInstanceUID = uid
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _all(rng: random.Random) -> Iterator[tuple[str, str, bytes]]:
    for name in SOURCES:
        ds = _read(name)
        yield from (("truncated", name, d) for _ in range(9) for d in _truncations(_fresh(ds, rng), rng, 1))
        yield from (("byte flips", name, d) for _ in range(7) for d in _flips(_fresh(ds, rng), rng, 1))
        yield from (("wrong length", name, d) for _ in range(5) for d in _wrong_lengths(_fresh(ds, rng), rng, 1))
        yield from (("unclosed sequence", name, d) for d in _unclosed(_fresh(ds, rng)))
    def uid() -> str:
        return f"2.25.{rng.getrandbits(120)}"

    for depth in (33, 50, 64, 200, 1000, 20000):
        yield "deep nesting", "CT_small.dcm", nested_content(depth, uid=uid())
    for depth in (50, 300):
        yield "deep nesting", "CT_small.dcm", nested_content(depth, implicit=True, uid=uid())
    for size in (1 << 30, 300 << 20):
        yield "deflate bomb", "CT_small.dcm", deflate_bomb(size, uid())
    bomb = deflate_bomb(4 << 20, uid())
    yield "corrupt deflate", "CT_small.dcm", bomb[:len(bomb) // 2] + bytes(64) + bomb[len(bomb) // 2:]
    for kind, data in _huge_values(rng):
        yield kind, "CT_small.dcm", data
    for keyword, value in PATH_VALUES:
        yield "path-like value", "CT_small.dcm", path_like(keyword, value, uid=f"2.25.{rng.getrandbits(120)}")
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        yield from (("invalid character set", name, d) for d in _charsets(name, rng))
    for name in ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm"):
        ds = _read(name)
        other = copy.deepcopy(ds)
        other.SeriesDescription = "another version"  # same SOP Instance UID, different content
        yield "duplicate SOP UID", name, _bytes(ds)
        yield "duplicate SOP UID", name, _bytes(other)
        yield "duplicate SOP UID", name, _bytes(ds)  # an identical copy


def write_malformed(folder: Path, seed: int = 11, *, select: Callable[[str], bool] | None = None
                    ) -> list[MalformedFile]:
    """Write the malformed files into ``folder`` (``000-truncated.dcm``…); ``select(kind)``
    keeps only some kinds. Returns them in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every invalid value written on purpose
        for n, (kind, source, data) in enumerate(_all(rng)):
            if select is not None and not select(kind):
                continue
            path = folder / f"{n:03d}-{kind.replace(' ', '-')}.dcm"
            path.write_bytes(data)
            written.append(MalformedFile(path, kind, source))
    return written
