"""One pass over a file's header: limits, completeness and pydicom's raw elements together.

Reading an instance used to walk its element stream three times — the limits check
(:mod:`anonlib.dicomio.limits`), pydicom's parse, and the completeness scan
(:mod:`anonlib.dicomio.scan`) — a quarter of the per-file cost (issue 12). For the common file
(preamble, File Meta, Explicit VR Little Endian data set, every top-level element of defined
length, pixel data last) :func:`read_fast` walks the top-level elements once and builds the
*same* data set pydicom's ``dcmread(stop_before_pixels=True)`` builds: the same
``RawDataElement`` for every element (value bytes, ``value_tell``, VR), the same File Meta
(read by pydicom itself), the same original encoding and character set. Sequences of defined
length are checked against the limits by :func:`~anonlib.dicomio.limits.check_limits` on
their own bytes, as the whole-file check would.

Anything else — implicit VR, big endian, deflate, an undefined-length element before the pixel
data, a command group, a VR that is not a VR, an element after the pixel data, a value over a
limit, a file cut short — returns None, and the caller reads the file as before (which also
gives the exact reason when the file is bad). So the fast path decides nothing on its own.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import _read_file_meta_info
from pydicom.tag import BaseTag
from pydicom.uid import UID

from anonlib.dicomio.limits import TEXT_VRS, VRS, LimitExceeded, Limits, _text_tag, check_limits
from anonlib.dicomio.scan import LONG_VRS, PIXEL_TAGS, Buffer

__all__ = ["FastHeader", "read_fast"]

_HEAD = struct.Struct("<HH2sH")
_L = struct.Struct("<L")
_HL = struct.Struct("<HHL")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_CHARSET = 0x00080005
_VR_NAMES = {vr: vr.decode() for vr in VRS}
_EMPTY: dict[str, bytes | None] = {name: cast(bytes | None, empty_value_for_VR(name, raw=True))
                                     for name in _VR_NAMES.values()}
#: Transfer syntaxes whose data set is read here: explicit VR little endian, native or
#: encapsulated (pydicom reads every syntax it does not know otherwise as explicit VR LE too,
#: but those are left to it).
_IMPLICIT = "1.2.840.10008.1.2"
_OTHER = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"})  # deflated, big endian


#: Private elements kept with ``private=False``: names are collected as identifiers wherever
#: they are (anonlib.engine.identifiers), and sequences may hold names.
_PRIVATE_KEPT = frozenset({b"PN", b"SQ"})


@dataclass(frozen=True)
class FastHeader:
    """The data set up to the pixel data, the file's bytes before the pixel data element (the
    whole file when there is none), and where the pixel data element lies (None, None when
    there is none)."""

    dataset: FileDataset
    header: bytes
    pixel_start: int | None
    pixel_end: int | None


def read_fast(buf: Buffer, limits: Limits, *, private: bool = True) -> FastHeader | None:
    """The header of the file in ``buf`` as pydicom reads it (module docstring), or None when
    this reader does not take the file. ``private=False`` leaves out the top-level private
    elements that are neither person names nor sequences (for a caller that removes every
    private element and records nothing: they would only be built to be deleted); they are
    still checked, and still in :attr:`FastHeader.header`."""
    n = len(buf)
    if n < 140 or bytes(buf[128:132]) != b"DICM":
        return None
    try:
        start = _meta_end(buf, n)
        if start is None or start >= n:
            return None
        walked = _walk(buf, start, n, limits)
        if walked is None:
            return None
        elements, pixel = walked
        header = bytes(buf[:pixel[0] if pixel else n])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not private:
                elements = [e for e in elements if not (e[0] >> 16) & 1 or e[1] in _PRIVATE_KEPT]
            dataset = _dataset(header, elements)
    except (struct.error, LimitExceeded, ValueError, KeyError, TypeError, EOFError, NotImplementedError):
        return None
    if dataset is None:
        return None
    return FastHeader(dataset, header, *(pixel or (None, None)))


def _meta_end(buf: Buffer, n: int) -> int | None:
    """Where the data set starts after the File Meta group (explicit VR little endian)."""
    pos = 132
    while pos + 8 <= n:
        group, _, vr, length = _HEAD.unpack_from(buf, pos)
        if group != 0x0002:
            return pos
        if vr in LONG_VRS:
            if pos + 12 > n:
                return None
            length = _L.unpack_from(buf, pos + 8)[0]
            pos += 12
        elif vr in VRS:
            pos += 8
        else:
            return None
        if length == _UNDEFINED or pos + length > n:
            return None
        pos += length
    return None


_Element = tuple[int, bytes, int, int, int]  # tag, VR, length, value start, value end


def _walk(buf: Buffer, pos: int, n: int, limits: Limits) -> tuple[list[_Element], tuple[int, int] | None] | None:
    elements: list[_Element] = []
    unpack, long_length = _HEAD.unpack_from, _L.unpack_from
    text_limit, element_limit = limits.max_text_bytes, limits.max_element_bytes
    previous = -1
    while pos < n:
        if pos + 8 > n:
            return None
        group, number, vr, length = unpack(buf, pos)
        tag = (group << 16) | number
        if vr not in VRS or group in (0x0000, 0x0002, 0xFFFE) or tag <= previous:
            return None  # out of order: pydicom's stop rules are not ours to guess
        previous = tag
        if vr in LONG_VRS:
            if pos + 12 > n:
                return None
            length = long_length(buf, pos + 8)[0]
            body = pos + 12
        else:
            body = pos + 8
        if tag in PIXEL_TAGS:
            end = _fragments(buf, body, n) if length == _UNDEFINED else body + length
            if end is None or (end != n and not _padding(buf, end, n, element_limit)):
                return None  # cut short, or elements after the pixel data
            return elements, (pos, end)
        if length == _UNDEFINED:
            return None
        end = body + length
        if end > n:
            return None
        if vr == b"SQ":
            if length and check_limits(buf, pos, limits, implicit=False, end=end) is not None:
                return None
        else:
            text = vr in TEXT_VRS if vr != b"UN" else _text_tag(tag)
            if (text and length > text_limit) or length > element_limit:
                return None
        elements.append((tag, vr, length, body, end))
        pos = end
    return elements, None


def _padding(buf: Buffer, pos: int, n: int, limit: int) -> bool:
    """Whether the file ends with one Data Set Trailing Padding element after the pixel data
    (dropped, as :func:`anonlib.dicomio.files.read_instance` drops it)."""
    if pos + 12 > n:
        return False
    group, number, vr, length = _HEAD.unpack_from(buf, pos)
    if (group, number) != (0xFFFC, 0xFFFC) or vr not in VRS:
        return False
    if vr in LONG_VRS:
        length, pos = _L.unpack_from(buf, pos + 8)[0], pos + 12
    else:
        pos += 8
    return bool(length != _UNDEFINED and length <= limit and pos + length == n)


def _fragments(buf: Buffer, pos: int, n: int) -> int | None:
    """The end of encapsulated pixel data (items, then the sequence delimiter), or None."""
    while pos + 8 <= n:
        group, number, length = _HL.unpack_from(buf, pos)
        tag = (group << 16) | number
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM or length == _UNDEFINED or pos + 8 + length > n:
            return None
        pos += 8 + length
    return None


def _dataset(header: bytes, elements: list[_Element]) -> FileDataset | None:
    """pydicom's ``read_partial`` for this file, with the data set's elements given."""
    fp = io.BytesIO(header)
    preamble = fp.read(128)
    fp.read(4)
    file_meta = _read_file_meta_info(fp)
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax is None or str(syntax) == _IMPLICIT or str(syntax) in _OTHER or UID(str(syntax)).is_private:
        return None
    raw: dict[BaseTag, DataElement | RawDataElement] = {}
    for tag, vr, length, body, end in elements:
        name = _VR_NAMES[vr]
        key = BaseTag(tag)
        raw[key] = RawDataElement(key, name, length, header[body:end] if length else _EMPTY[name], body, False, True)
    dataset = Dataset(raw, parent_encoding=default_encoding)
    encoding: object = default_encoding
    if _CHARSET in raw:
        encoding = convert_encodings(convert_raw_data_element(cast(RawDataElement, raw[BaseTag(_CHARSET)])).value)
    dataset.set_original_encoding(False, True, encoding)  # type: ignore[arg-type]
    ds = FileDataset(fp, dataset, preamble, file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)  # noqa: SLF001
    return ds
