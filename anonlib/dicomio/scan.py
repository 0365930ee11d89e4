"""A minimal scanner of the DICOM element stream: checks the file is complete and finds the
byte range of the pixel data, without decoding any value.

pydicom stops silently at a file cut in the middle of an element header; the scanner walks the
same stream and fails with :class:`Truncated` wherever a header or a value is cut short. It
skips defined-length values (sequences included) by their length and descends only into
undefined-length sequences, so it touches each top-level element once.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

#: What the scanner reads: the bytes of a file, or a memory map of it.
Buffer = bytes | memoryview | mmap.mmap

__all__ = ["Truncated", "Malformed", "ScanResult", "scan", "dataset_start"]

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})


class Truncated(ValueError):
    """The stream ends inside an element."""


class Malformed(ValueError):
    """The stream is not a valid element stream."""


@dataclass(frozen=True)
class ScanResult:
    """``pixel_start``/``pixel_end`` delimit the first top-level pixel data element (header
    included); ``end`` is where the last element stops (the file size for a complete file)."""

    pixel_start: int | None
    pixel_end: int | None
    end: int
    after_pixels: tuple[int, ...] = ()  # tags of top-level elements after the pixel data


class _Scanner:
    def __init__(self, buf: Buffer, little: bool) -> None:
        self.buf = buf
        self.n = len(buf)
        e = "<" if little else ">"
        self.hh = struct.Struct(e + "HH")
        self.h = struct.Struct(e + "H")
        self.l = struct.Struct(e + "L")

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        if pos + 8 > self.n:
            raise Truncated(f"element header cut at byte {pos}")
        group, element = self.hh.unpack_from(self.buf, pos)
        tag = (group << 16) | element
        if group == 0xFFFE or implicit:
            return tag, None, self.l.unpack_from(self.buf, pos + 4)[0], 8
        vr = bytes(self.buf[pos + 4:pos + 6])
        if vr in LONG_VRS:
            if pos + 12 > self.n:
                raise Truncated(f"element header cut at byte {pos}")
            return tag, vr, self.l.unpack_from(self.buf, pos + 8)[0], 12
        if not vr.isalpha():
            raise Malformed(f"no valid VR at byte {pos}")
        return tag, vr, self.h.unpack_from(self.buf, pos + 6)[0], 8

    def skip(self, pos: int, length: int) -> int:
        end = pos + length
        if end > self.n:
            raise Truncated(f"value cut at byte {self.n} (needs {end})")
        return end

    def sequence(self, pos: int, implicit: bool) -> int:
        while True:
            tag, _, length, size = self.header(pos, True)
            if tag == _SEQ_END:
                return pos + 8
            if tag != _ITEM:
                raise Malformed(f"expected an item at byte {pos}")
            pos = self.item(pos + 8, implicit) if length == _UNDEFINED else self.skip(pos + 8, length)

    def item(self, pos: int, implicit: bool) -> int:
        while True:
            tag, vr, length, size = self.header(pos, implicit)
            if tag == _ITEM_END:
                return pos + 8
            if length == _UNDEFINED:
                pos = self.sequence(pos + size, implicit or vr == b"UN")
            else:
                pos = self.skip(pos + size, length)

    def fragments(self, pos: int) -> int:
        """Encapsulated pixel data: items (offset table, fragments) until the delimiter."""
        while True:
            tag, _, length, _ = self.header(pos, True)
            if tag == _SEQ_END:
                return pos + 8
            if tag != _ITEM or length == _UNDEFINED:
                raise Malformed(f"bad pixel data fragment at byte {pos}")
            pos = self.skip(pos + 8, length)


def scan(buf: Buffer, start: int, *, implicit: bool, little: bool) -> ScanResult:
    """Scan the data set that begins at ``start``; raise :class:`Truncated` or
    :class:`Malformed` when it is not a complete element stream."""
    s = _Scanner(buf, little)
    pos = start
    pixel: tuple[int, int] | None = None
    after: list[int] = []
    while pos < s.n:
        tag, vr, length, size = s.header(pos, implicit)
        if pixel is not None:
            after.append(tag)
        if tag in PIXEL_TAGS and pixel is None:
            end = s.fragments(pos + size) if length == _UNDEFINED else s.skip(pos + size, length)
            pixel = (pos, end)
            pos = end
        elif length == _UNDEFINED:
            if tag >> 16 == 0xFFFE:
                raise Malformed(f"unexpected delimiter at byte {pos}")
            pos = s.sequence(pos + size, implicit or vr == b"UN")
        else:
            pos = s.skip(pos + size, length)
    return ScanResult(pixel[0] if pixel else None, pixel[1] if pixel else None, pos, tuple(after))


def dataset_start(buf: Buffer) -> int:
    """Offset of the data set: after the preamble, ``DICM`` and the File Meta group, or 0 for a
    file without them."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        return 0
    s = _Scanner(buf, True)
    pos = 132
    while pos + 8 <= s.n:
        if s.h.unpack_from(buf, pos)[0] != 0x0002:
            break
        _, _, length, size = s.header(pos, False)
        pos = s.skip(pos + size, length)
    return pos
