"""Reading and writing instances fast: parse the header only, copy the pixel bytes through.

:func:`read_instance` parses the data set up to the pixel data with pydicom, verifies with the
scanner that the file is complete, and keeps the pixel data element's raw bytes; the engine
never sees (or decodes) them, and :func:`encode_instance` appends them unchanged after the
de-identified header. Files the fast path cannot handle exactly (deflated or big-endian
encodings, elements after the pixel data) are read whole instead.
"""

from __future__ import annotations

import io
import mmap
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from anonlib.dicomio.scan import Malformed, ScanResult, Truncated, dataset_start, scan
from anonlib.errors import InputError

__all__ = ["ParsedInstance", "read_instance", "encode_instance", "quiet_pydicom"]

_UID_CHARS = frozenset("0123456789.")
_TRAILING_PADDING = 0xFFFCFFFC


def quiet_pydicom() -> None:
    """Stop pydicom from warning about invalid values: its warnings quote the value, which may
    be identifying, and would reach logs. Conformance is checked by dciodvfy instead."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE


@dataclass
class ParsedInstance:
    """A parsed file. ``pixel_bytes`` holds the raw pixel data element when the header was read
    alone (it is written back verbatim); it is None when ``dataset`` is complete."""

    dataset: Dataset
    pixel_bytes: bytes | None
    size: int


def _looks_like_uid(value: object) -> bool:
    text = str(value or "").strip("\x00 ")
    return 0 < len(text) <= 64 and set(text) <= _UID_CHARS and not text.startswith(".")


def read_instance(path: Path, *, with_pixels: bool = False, label: str | None = None) -> ParsedInstance:
    """Read one file; :class:`InputError` (naming ``label`` or the path, never a value from the
    file) when it is empty, not DICOM, truncated or unparsable."""
    name = label or str(path)
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise InputError(name, "empty file")
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, size, name, with_pixels)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(name, f"cannot read file ({exc.strerror or type(exc).__name__})") from exc


def _parse(buf: mmap.mmap, size: int, name: str, with_pixels: bool) -> ParsedInstance:
    has_preamble = bytes(buf[128:132]) == b"DICM" if size >= 132 else False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(buf), stop_before_pixels=not with_pixels,
                                 force=not has_preamble)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, NotImplementedError,
                struct_error()) as exc:
            raise InputError(name, f"not a readable DICOM file ({type(exc).__name__})") from exc
    if not (_looks_like_uid(ds.get("SOPClassUID")) and _looks_like_uid(ds.get("SOPInstanceUID"))):
        raise InputError(name, "not a DICOM instance (no valid SOP Class and SOP Instance UID)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
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
        return ParsedInstance(full, None, size)
    if result.pixel_start is None or with_pixels:
        return ParsedInstance(ds, None, size)
    if result.after_pixels and result.after_pixels != (_TRAILING_PADDING,):
        return _parse(buf, size, name, True)  # elements after the pixel data: read whole
    # Data Set Trailing Padding after the pixels has no meaning (PS3.10 7.2) and is dropped.
    return ParsedInstance(ds, bytes(buf[result.pixel_start:result.pixel_end]), size)


def _scan_either(buf: mmap.mmap, implicit: bool) -> tuple[ScanResult, bool]:
    """Scan in the declared VR encoding, or else in the other one (some writers declare explicit
    VR and write implicit; pydicom reads those too). The flag says the other one was needed."""
    start = dataset_start(buf)
    try:
        return scan(buf, start, implicit=implicit, little=True), False
    except Malformed:
        return scan(buf, start, implicit=not implicit, little=True), True


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def encode_instance(parsed_dataset: Dataset, pixel_bytes: bytes | None) -> bytes:
    """The bytes of a DICOM file: preamble, file meta, the data set, then ``pixel_bytes``."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(out, parsed_dataset, enforce_file_format=True)
    if pixel_bytes:
        out.write(pixel_bytes)
    return out.getvalue()
