"""Reading and writing instances fast: parse the header only, copy the pixel bytes through.

:func:`read_instance` parses the data set up to the pixel data with pydicom, verifies with the
scanner that the file is complete, and keeps the pixel data element's raw bytes; the engine
never sees (or decodes) them, and :func:`encode_instance` appends them unchanged after the
de-identified header. Files the fast path cannot handle exactly (deflated or big-endian
encodings, elements after the pixel data) are read whole instead.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import struct
import warnings
import zlib
from collections.abc import MutableSequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings, default_encoding, encode_string
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from anonlib.dicomio.encode import element_bytes, encodings_of, file_meta_bytes
from anonlib.dicomio.header import read_fast
from anonlib.dicomio.limits import LimitExceeded, Limits, check_limits, inflate, size_text
from anonlib.dicomio.scan import LONG_VRS, Buffer, Malformed, ScanResult, Truncated, dataset_start, scan
from anonlib.errors import InputError

__all__ = ["ParsedInstance", "read_instance", "parse_instance", "encode_instance", "quiet_pydicom",
           "settle_unknown_vrs", "check_instance", "DEFAULT_LIMITS"]

#: The limits used when a caller gives none (:class:`~anonlib.dicomio.limits.Limits`' defaults).
DEFAULT_LIMITS = Limits()

_UID_CHARS = frozenset("0123456789.")
_TRAILING_PADDING = 0xFFFCFFFC
_TAG_AT = struct.Struct("<HH")


def quiet_pydicom() -> None:
    """Stop pydicom from warning about invalid values: its warnings quote the value, which may
    be identifying, and would reach logs. Conformance is checked by dciodvfy instead."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    # Its other warnings (a VR guessed, a delimiter missing) name tags or files, not values,
    # but say nothing the operator can act on: a bad file is rejected with its reason instead.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


@dataclass
class ParsedInstance:
    """A parsed file. ``pixel_bytes`` holds the raw pixel data element when the header was read
    alone (it is written back verbatim); it is None when ``dataset`` is complete."""

    dataset: Dataset
    pixel_bytes: bytes | None
    size: int
    source: bytes | None = None  # the bytes the raw elements were read from (copied verbatim)


def _looks_like_uid(value: object) -> bool:
    text = str(value or "").strip("\x00 ")
    return 0 < len(text) <= 64 and set(text) <= _UID_CHARS and not text.startswith(".")


def read_instance(path: Path, *, with_pixels: bool = False, label: str | None = None,
                  limits: Limits = DEFAULT_LIMITS, private: bool = True) -> ParsedInstance:
    """Read one file; :class:`InputError` (naming ``label`` or the path, never a value from the
    file) when it is empty, not DICOM, truncated, unparsable or beyond ``limits``.
    ``private=False``: top-level private elements other than names and sequences may be left
    out of the data set (see :func:`anonlib.dicomio.header.read_fast`) — for a caller that
    removes them all anyway."""
    name = label or str(path)
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise InputError(name, "empty file")
        _check_size(size, name, limits)
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            fast = None if with_pixels else _read_fast(buf, size, name, limits, private)
            if fast is not None:
                return fast
            check_instance(buf, name, limits)
            return _parse(buf, size, name, with_pixels)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(name, f"cannot read file ({exc.strerror or type(exc).__name__})") from exc


def parse_instance(data: bytes, *, label: str, with_pixels: bool = False,
                   limits: Limits = DEFAULT_LIMITS) -> ParsedInstance:
    """:func:`read_instance` for bytes already in memory (for example fetched from Orthanc)."""
    if not data:
        raise InputError(label, "empty file")
    _check_size(len(data), label, limits)
    fast = None if with_pixels else _read_fast(data, len(data), label, limits)
    if fast is not None:
        return fast
    check_instance(data, label, limits)
    return _parse(data, len(data), label, with_pixels)


def _check_size(size: int, name: str, limits: Limits) -> None:
    if size > limits.max_instance_bytes:
        raise InputError(name, f"instance too large: {size} bytes (limit {size_text(limits.max_instance_bytes)})")


_DEFLATED = DeflatedExplicitVRLittleEndian.encode()
_IMPLICIT = b"1.2.840.10008.1.2"
_BIG = ExplicitVRBigEndian.encode()


def _meta_syntax(buf: Buffer, start: int) -> bytes | None:
    """The Transfer Syntax UID of the file meta (before ``start``), or None without one."""
    pos = 132
    while pos + 8 <= start:
        group, element = struct.unpack_from("<HH", buf, pos)
        vr = bytes(buf[pos + 4:pos + 6])
        if vr in LONG_VRS:
            length, header = struct.unpack_from("<L", buf, pos + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", buf, pos + 6)[0], 8
        if (group, element) == (0x0002, 0x0010):
            return bytes(buf[pos + header:pos + header + length]).rstrip(b"\x00 ")
        pos += header + length
    return None


def check_instance(buf: Buffer, name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """:class:`InputError` with the reason when the instance in ``buf`` breaks ``limits``
    (:mod:`anonlib.dicomio.limits`) — checked before pydicom reads any of it, a deflated data
    set inflated in bounded steps. What the check cannot follow is left to the reader."""
    _check_size(len(buf), name, limits)
    try:
        start = dataset_start(buf)
    except (Truncated, struct.error):
        return  # a cut file meta: the reader says so
    syntax = _meta_syntax(buf, start) if start else None
    try:
        if syntax == _DEFLATED:
            try:
                inflated = inflate(buf[start:], limits)
            except zlib.error as exc:
                raise InputError(name, "corrupt deflated data (it cannot be inflated)") from exc
            problem = check_limits(inflated, 0, limits, implicit=False)
            if problem:
                raise InputError(name, f"{problem} in the inflated data set")
            return
        # without a file meta, the VR encoding is guessed as pydicom does
        implicit = not bytes(buf[start + 4:start + 6]).isalpha() if syntax is None else syntax == _IMPLICIT
        little = syntax != _BIG
        problem = check_limits(buf, start, limits, implicit=implicit, little=little)
        if problem and little and check_limits(buf, start, limits, implicit=not implicit) is None:
            problem = None  # written in the other VR encoding than it declares: the reader copes
        if problem and syntax is not None:
            raise InputError(name, problem)
    except LimitExceeded as exc:
        raise InputError(name, str(exc)) from exc


_DICOMDIR = "1.2.840.10008.1.3.10"


def _parse(buf: Buffer, size: int, name: str, with_pixels: bool) -> ParsedInstance:
    has_preamble = bytes(buf[128:132]) == b"DICM" if size >= 132 else False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(buf), stop_before_pixels=not with_pixels,
                                 force=not has_preamble)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, NotImplementedError,
                struct.error) as exc:
            raise InputError(name, f"not a readable DICOM file ({type(exc).__name__})") from exc
        except OSError as exc:  # pydicom's "unexpected end of file" inside a sequence
            raise InputError(name, "malformed element stream (the data ends inside an element or sequence)") from exc
        except RecursionError as exc:
            raise InputError(name, "nesting too deep to parse") from exc
    syntax = _check_dataset(ds, name)
    implicit, little = ds.original_encoding
    if implicit is None:
        raise InputError(name, "not a readable DICOM file (unknown encoding)")
    if syntax in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian) or not little:
        if not with_pixels:
            return _parse(buf, size, name, True)  # read whole; pydicom re-encodes it
        return ParsedInstance(ds, None, size)
    try:
        result, mismatched = _scan_either(buf, bool(implicit))
    except Truncated as exc:
        raise InputError(name, f"truncated file ({exc})") from exc
    except Malformed as exc:
        raise InputError(name, f"malformed element stream ({exc})") from exc
    if result.end != size:
        raise InputError(name, "trailing bytes after the data set")
    if mismatched:
        # The VR encoding differs from the transfer syntax: decode every element so that pydicom
        # writes the header in the encoding the transfer syntax declares.
        full = ds if with_pixels else _parse(buf, size, name, True).dataset
        for _ in full.iterall():
            pass
        return ParsedInstance(full, None, size)  # no verbatim copy: the encoding changes
    if result.pixel_start is None or with_pixels:
        return ParsedInstance(ds, None, size, bytes(buf))
    if result.after_pixels and result.after_pixels != (_TRAILING_PADDING,):
        return _parse(buf, size, name, True)  # elements after the pixel data: read whole
    # Data Set Trailing Padding after the pixels has no meaning (PS3.10 7.2) and is dropped.
    return ParsedInstance(ds, bytes(buf[result.pixel_start:result.pixel_end]), size,
                          bytes(buf[:result.pixel_start]))


def _check_dataset(ds: Dataset, name: str) -> object:
    """:class:`InputError` when the data set read is not an instance anonlib can take; else
    its transfer syntax (None without one)."""
    if not (_looks_like_uid(ds.get("SOPClassUID")) and _looks_like_uid(ds.get("SOPInstanceUID"))):
        meta = getattr(ds, "file_meta", None)
        if (meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR) \
                or 0x00041220 in ds:  # DirectoryRecordSequence
            raise InputError(name, "a DICOMDIR (a media directory, not an instance): not de-identified; "
                                   "rebuild it from the output")
        raise InputError(name, "not a DICOM instance (no valid SOP Class and SOP Instance UID)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and not _known_syntax(syntax):
        raise InputError(name, "not a readable DICOM file (its file meta names no known transfer syntax)")
    return syntax


def _read_fast(buf: Buffer, size: int, name: str, limits: Limits, private: bool = True) -> ParsedInstance | None:
    """:func:`_parse` without the pixels in one pass over the header
    (:func:`anonlib.dicomio.header.read_fast`), or None when that reader does not take the file."""
    fast = read_fast(buf, limits, private=private)
    if fast is None:
        return None
    _check_dataset(fast.dataset, name)
    if fast.pixel_start is None:
        return ParsedInstance(fast.dataset, None, size, fast.header)
    return ParsedInstance(fast.dataset, bytes(buf[fast.pixel_start:fast.pixel_end]), size, fast.header)


def _known_syntax(syntax: object) -> bool:
    uid = UID(str(syntax))
    return not uid.is_private and uid.is_transfer_syntax


def _scan_either(buf: Buffer, implicit: bool) -> tuple[ScanResult, bool]:
    """Scan in the declared VR encoding, or else in the other one (some writers declare explicit
    VR and write implicit; pydicom reads those too). The flag says the other one was needed."""
    start = dataset_start(buf)
    try:
        return scan(buf, start, implicit=implicit, little=True), False
    except Malformed:
        return scan(buf, start, implicit=not implicit, little=True), True


def encode_instance(dataset: Dataset, pixel_bytes: bytes | None, source: bytes | None = None) -> bytes:
    """The bytes of a DICOM file: preamble, file meta, the data set, then ``pixel_bytes``.

    With ``source`` (the bytes the dataset was parsed from), every element the engine left
    untouched — still a raw element — is copied from it verbatim instead of being re-encoded;
    only changed elements go through pydicom's encoder. Deflated and big-endian transfer
    syntaxes, and any change of encoding or character set, use pydicom's writer throughout.
    """
    out = DicomBytesIO()
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    settle_unknown_vrs(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source is None or syntax.is_deflated or not syntax.is_little_endian:
            pydicom.dcmwrite(out, dataset, enforce_file_format=True)
        else:
            out.write(dataset.preamble or b"\x00" * 128)
            out.write(b"DICM")
            meta = file_meta_bytes(dataset.file_meta)
            if meta is None:
                write_file_meta_info(out, dataset.file_meta, enforce_standard=True)
            else:
                out.write(meta)
            _write_body(out, dataset, source, bool(syntax.is_implicit_VR))
    if pixel_bytes:
        out.write(pixel_bytes)
    return out.getvalue()


def settle_unknown_vrs(ds: Dataset) -> None:
    """Give every decoded UN element that now holds text (the engine read a public text
    attribute stored as UN — pydicom keeps UN for values over 64 KiB, PS3.5 6.2.2 — and cleaned
    it) its dictionary VR again, so that it is encoded as text in the data set's character set
    (pydicom writes it back as UN while it is still over 64 KiB). Raw (untouched) elements are
    left alone; decoded sequences are followed."""
    for tag, element in ds._dict.items():  # noqa: SLF001 - pydicom 3.0's storage, see engine.vr
        if isinstance(element, RawDataElement):
            continue
        if element.VR == "SQ":
            for item in element.value or ():
                settle_unknown_vrs(item)
        elif element.VR == "UN" and element.value is not None and not isinstance(element.value, bytes):
            try:
                known = dictionary_VR(tag)
            except KeyError:
                known = ""
            if known and " or " not in known and known not in _BINARY_VRS:
                element.VR = known
            else:
                element.value = _as_bytes(element.value, ds)


_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "SQ", "AT", "FL", "FD", "SL", "SS", "SV",
                         "UL", "US", "UV"})


def _as_bytes(value: object, ds: Dataset) -> bytes:
    """A text value of an element that stays UN, encoded in the data set's character set."""
    values = value if isinstance(value, MutableSequence | tuple) else [value]
    text = "\\".join(str(v) for v in values)
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    data = encode_string(text, convert_encodings(encodings))
    return data + b" " if len(data) % 2 else data


def _write_body(out: DicomBytesIO, ds: Dataset, source: bytes, implicit: bool) -> None:
    out.is_implicit_VR, out.is_little_endian = implicit, True
    same = (ds.original_encoding == (implicit, True)
            and ds.original_character_set == ds._character_set)
    if not same:
        write_dataset(out, ds)
        return
    charset = ds.get("SpecificCharacterSet", default_encoding)
    encodings = encodings_of(charset)
    elements = ds._dict  # noqa: SLF001 - pydicom 3.0's storage (see anonlib.engine.vr)
    for tag in sorted(elements, key=int):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are never written (PS3.5 7.2)
        element = elements[tag]
        span = _raw_span(element, tag, source, implicit)
        if span is not None:
            out.write(source[span[0]:span[1]])
            continue
        data = element_bytes(element, encodings, implicit)
        if data is not None:
            out.write(data)
        else:
            write_data_element(out, ds.get_item(tag), charset)


def _raw_span(element: object, tag: int, source: bytes, implicit: bool) -> tuple[int, int] | None:
    """Where an untouched element's bytes lie in ``source``, or None when it must be encoded."""
    if not isinstance(element, RawDataElement) or not isinstance(element.value, bytes):
        return None
    if element.value_tell is None or element.length == 0xFFFFFFFF:
        return None
    header = 8 if implicit or str(element.VR).encode() not in LONG_VRS else 12
    start, end = element.value_tell - header, element.value_tell + element.length
    if start < 0 or end > len(source) or _TAG_AT.unpack_from(source, start) != (tag >> 16, tag & 0xFFFF):
        return None
    return start, end
