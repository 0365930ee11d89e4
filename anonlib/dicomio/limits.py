"""Limits on what one instance may be, checked before pydicom parses it.

A file built to break a reader — sequences nested hundreds deep (a RecursionError in pydicom; a
50-level nest crashed DCMTK in a research Orthanc), a deflated data set that inflates a
thousandfold, a megabyte-long name — is stopped here with a named reason, before any value is
decoded. :func:`check_limits` walks the element stream without recursion and without decoding
a value; a stream it cannot follow (truncated, malformed) is left to the reader, which says what
is wrong with it. :func:`inflate` inflates a deflated data set in bounded steps.

The defaults are set so that a radiology archive does not trip them: pixel data counts only
towards the instance size; no real SR tree comes near 32 levels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR

from anonlib.dicomio.scan import LONG_VRS, PIXEL_TAGS, Buffer
from anonlib.errors import ConfigError

__all__ = ["DEPTH_REASON", "Limits", "LimitExceeded", "MAX_SAFE_DEPTH", "check_limits", "inflate", "size_text", "TEXT_VRS",
           "VRS"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CLOSES = frozenset({(_ITEM_END, "item"), (_SEQ_END, "seq"), (_SEQ_END, "pixels")})
#: Value representations whose values are text (one value limit for all of them).
VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
                 b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
                 b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"})
TEXT_VRS = frozenset({b"AE", b"AS", b"CS", b"DA", b"DS", b"DT", b"IS", b"LO", b"LT", b"PN", b"SH",
                      b"ST", b"TM", b"UC", b"UI", b"UR", b"UT"})


#: The deepest nesting ``max_depth`` may allow. Orthanc 1.10.1 crashes parsing an instance nested
#: 48 levels or more in a REST call (research's ``POST /instances``; a PACS built on DCMTK may be
#: no better, and the folder pipeline's output goes to one), and intake refuses deeper than this
#: at C-STORE; a margin below 48 and no real study anywhere near it (issue 11).
MAX_SAFE_DEPTH = 40
DEPTH_REASON = (f"at most {MAX_SAFE_DEPTH}: Orthanc 1.10.1 crashes parsing instances nested 48 levels "
                f"or more, and intake refuses deeper than {MAX_SAFE_DEPTH}")


@dataclass(frozen=True)
class Limits:
    """What one instance may be (site profile ``limits:``; sizes in bytes). ``max_depth`` above
    :data:`MAX_SAFE_DEPTH` raises :class:`~anonlib.errors.ConfigError`: the engine would release
    instances that crash Orthanc."""

    max_depth: int = 32  # sequences nested in sequences
    max_text_bytes: int = 1 * MiB  # one value of a text VR (a report in UT is a few kB)
    max_element_bytes: int = 512 * MiB  # any other element but the pixel data (waveforms, PDFs, private blobs)
    max_inflated_bytes: int = 256 * MiB  # a deflated data set once inflated
    max_instance_bytes: int = 4 * GiB  # the file (a large multi-frame image is a few hundred MB)

    def __post_init__(self) -> None:
        if self.max_depth > MAX_SAFE_DEPTH:
            raise ConfigError(f"limits.max_depth {self.max_depth} is too deep: {DEPTH_REASON}")


class LimitExceeded(ValueError):
    """An instance breaks one of the :class:`Limits`; the message names which, never a value."""


def size_text(n: int) -> str:
    """``1 MiB``, ``512 KiB``, ``70000 bytes``: a size as a person reads it."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return f"{n} bytes"


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _is_sequence(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def check_limits(buf: Buffer, start: int, limits: Limits, *, implicit: bool, little: bool = True,
                 end: int | None = None) -> str | None:
    """Raise :class:`LimitExceeded` when the data set at ``start`` nests sequences deeper than
    ``limits.max_depth`` or holds a value over its size limit; only complete values are
    measured. Returns None when the whole element stream was followed to its end, else what is
    wrong with it, PHI-free (``truncated file (...)``, ``unclosed sequence (...)``,
    ``malformed element stream (...)``) — perhaps only because it is in the other VR encoding:
    the caller decides."""
    stop = len(buf) if end is None else end
    hh, h, l4 = (struct.Struct(("<" if little else ">") + f) for f in ("HH", "H", "L"))
    # Open containers: [kind, end (None: undefined length), implicit inside, tag, where];
    # kind "seq", "item" or "pixels".
    stack: list[list[Any]] = []
    depth = 0
    pos = start
    while True:
        while stack and stack[-1][1] is not None and pos >= stack[-1][1]:
            if pos > stack[-1][1]:
                return (f"malformed element stream (an element of {_tag_text(stack[-1][3])} runs past "
                        f"the end of its {stack[-1][0] if stack[-1][0] == 'item' else 'sequence'} at byte {pos})")
            depth -= stack.pop()[0] == "seq"
        if pos + 8 > stop:
            if pos < stop:
                return f"truncated file (element header cut at byte {pos})"
            if stack:
                opened = next((c for c in reversed(stack) if c[1] is None), stack[-1])
                return (f"unclosed sequence ({_tag_text(opened[3])} opened at byte {opened[4]} "
                        f"never ends: the data ends at byte {pos})")
            return None
        group, element = hh.unpack_from(buf, pos)
        tag = (group << 16) | element
        kind = stack[-1][0] if stack else "item"
        inner_implicit = bool(stack[-1][2]) if stack else implicit
        if group == 0xFFFE:
            length = l4.unpack_from(buf, pos + 4)[0]
            where = pos
            pos += 8
            if tag == _ITEM and kind == "pixels":
                if length == _UNDEFINED:
                    return f"malformed element stream (bad pixel data fragment at byte {where})"
                if pos + length > stop:
                    return f"truncated file (pixel data fragment cut at byte {stop}, needs {pos + length})"
                pos += length
            elif tag == _ITEM and kind == "seq":
                if length != _UNDEFINED and pos + length > stop:
                    return f"truncated file (item at byte {where} cut at byte {stop}, needs {pos + length})"
                stack.append(["item", None if length == _UNDEFINED else pos + length, inner_implicit,
                              stack[-1][3], where])
            elif stack and stack[-1][1] is None and (tag, kind) in _CLOSES:
                depth -= stack.pop()[0] == "seq"
            else:
                return f"malformed element stream (unexpected item or delimiter at byte {where})"
            continue
        if kind != "item":
            return f"malformed element stream (an element where an item belongs, at byte {pos})"
        if inner_implicit:
            vr = None
            length = l4.unpack_from(buf, pos + 4)[0]
            header = 8
        else:
            vr = bytes(buf[pos + 4:pos + 6])
            if vr not in VRS:
                return f"malformed element stream (no valid VR for {_tag_text(tag)} at byte {pos})"
            if vr in LONG_VRS:
                if pos + 12 > stop:
                    return f"truncated file (element header cut at byte {pos})"
                length, header = l4.unpack_from(buf, pos + 8)[0], 12
            else:
                length, header = h.unpack_from(buf, pos + 6)[0], 8
        body = pos + header
        if tag in PIXEL_TAGS and not stack:
            if length == _UNDEFINED:
                stack.append(["pixels", None, True, tag, pos])
                pos = body
                continue
            if body + length > stop:
                return f"truncated file (pixel data cut at byte {stop}, needs {body + length})"
            pos = body + length
            continue
        sequence = vr == b"SQ" or (length == _UNDEFINED) or (vr is None and _is_sequence(tag))
        if sequence:
            depth += 1
            if depth > limits.max_depth:
                raise LimitExceeded(f"nesting too deep: sequences nested more than {limits.max_depth} "
                                    f"levels (at {_tag_text(tag)}, byte {pos})")
            undefined = length == _UNDEFINED
            if not undefined and body + length > stop:
                return (f"truncated file or wrong length ({_tag_text(tag)} at byte {pos} needs "
                        f"{length} bytes, {stop - body} left)")
            stack.append(["seq", None if undefined else body + length, inner_implicit or vr == b"UN", tag, pos])
            pos = body
            continue
        if body + length > stop:
            return (f"truncated file or wrong length ({_tag_text(tag)} at byte {pos} needs {length} bytes, "
                    f"{stop - body} left)")
        text = vr in TEXT_VRS if vr not in (None, b"UN") else _text_tag(tag)
        if text and length > limits.max_text_bytes:
            raise LimitExceeded(f"value too large: {_tag_text(tag)} holds {length} bytes of text "
                                f"(limit {size_text(limits.max_text_bytes)})")
        if length > limits.max_element_bytes:
            raise LimitExceeded(f"value too large: {_tag_text(tag)} holds {length} bytes "
                                f"(limit {size_text(limits.max_element_bytes)})")
        pos = body + length


def _text_tag(tag: int) -> bool:
    """Implicit VR (or UN): a public attribute whose dictionary VR is text."""
    if (tag >> 16) % 2:
        return False
    try:
        return dictionary_VR(tag).encode() in TEXT_VRS
    except KeyError:
        return False


def inflate(data: Buffer, limits: Limits, chunk: int = 4 * MiB) -> memoryview:
    """Inflate a deflated data set (raw deflate, PS3.5 A.5); :class:`LimitExceeded` as soon as
    it grows past ``limits.max_inflated_bytes``. A first pass only counts (a deflate bomb costs
    one ``chunk`` of memory, never its inflated size); the second fills a buffer of exactly the
    size counted. ``zlib.error`` for data that is not deflate."""
    total = 0
    for part in _inflated(data, chunk):
        total += len(part)
        if total > limits.max_inflated_bytes:
            raise LimitExceeded(f"deflate bomb: the deflated data set inflates past "
                                f"{size_text(limits.max_inflated_bytes)} (from {len(data)} bytes)")
    out = bytearray(total)
    view, pos = memoryview(out), 0
    for part in _inflated(data, chunk):
        view[pos:pos + len(part)] = part
        pos += len(part)
    return view


def _inflated(data: Buffer, chunk: int) -> Iterator[bytes]:
    engine = zlib.decompressobj(-zlib.MAX_WBITS)
    pending: Buffer = data
    while pending and not engine.eof:
        yield engine.decompress(pending, chunk)
        pending = engine.unconsumed_tail
    yield engine.flush()
