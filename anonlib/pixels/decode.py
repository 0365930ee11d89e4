"""Decode an instance's pixel data into one array of stored values, or say in words why not.

Every transfer syntax pydicom decodes with the installed plugins (native little and big endian,
deflate, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000) comes out the same shape:
``(frames, rows, columns)`` for one sample per pixel, ``(frames, rows, columns, 3)`` for colour,
stored values (signed where PixelRepresentation is 1; palette indices for PALETTE COLOR) and
colour as RGB (YBR_FULL/YBR_FULL_422/YBR_ICT/YBR_RCT converted, as a viewer shows them).

What cannot be decoded raises :class:`~anonlib.errors.PixelError` whose message names the
transfer syntax and the reason (no decoder, a plugin missing, data shorter than the image
attributes say, a corrupt stream) and never holds a value from the data.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ImplicitVRLittleEndian

from anonlib.errors import PixelError

__all__ = ["decode_frames", "transfer_syntax", "syntax_label"]

_IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel",
                     "PhotometricInterpretation")


def transfer_syntax(ds: Dataset) -> UID:
    """The instance's transfer syntax (Implicit VR Little Endian when the file meta does not
    say; :func:`decode_frames` refuses such a dataset)."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(uid)) if uid else ImplicitVRLittleEndian


def syntax_label(uid: UID) -> str:
    """``1.2.840.10008.1.2.4.50 (JPEG Baseline (Process 1))`` — the UID and pydicom's name."""
    return f"{uid} ({uid.name})" if uid.name and uid.name != str(uid) else str(uid)


def _expected_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated) * int(ds.Rows) * int(ds.Columns) * samples * frames
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        bits = bits * 2 // 3  # two chroma samples shared by two pixels
    return (bits + 7) // 8


def _check(ds: Dataset, uid: UID) -> None:
    """Raise a worded PixelError for what pydicom would fail on, before it tries."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or not meta.get("TransferSyntaxUID"):
        raise PixelError("no Transfer Syntax UID in the file meta information (the pixel data's "
                         "encoding is unknown)")
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        raise PixelError(f"no Pixel Data (7FE0,0010){' (only ' + other[0] + ')' if other else ''}")
    missing = [name for name in _IMAGE_ATTRIBUTES if ds.get(name) in (None, "")]
    if missing:
        raise PixelError(f"image attributes missing: {', '.join(missing)}")
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise PixelError(f"transfer syntax {syntax_label(uid)} cannot be decoded "
                         "(no pixel data decoder for it)") from None
    if not decoder.is_available:
        plugins = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise PixelError(f"transfer syntax {syntax_label(uid)} cannot be decoded: "
                         f"plugin missing ({plugins})")
    if not uid.is_compressed:
        have = len(ds.PixelData)
        if have < _expected_bytes(ds):
            raise PixelError("pixel data shorter than Rows×Columns×SamplesPerPixel×"
                             "NumberOfFrames×BitsAllocated say")


def decode_frames(ds: Dataset) -> np.ndarray:
    """Every frame's stored values: ``(frames, rows, columns[, 3])``, colour as RGB.

    Raises :class:`PixelError` with the reason in words when the pixels cannot be decoded."""
    uid = transfer_syntax(ds)
    _check(ds, uid)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings name values; reasons are ours
            array = ds.pixel_array
    except Exception as exc:  # a decoder's own error text may quote the data: name its kind
        raise PixelError(f"transfer syntax {syntax_label(uid)}: pixel data could not be decoded "
                         f"({type(exc).__name__})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.SamplesPerPixel)
    shape = (frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if array.size != int(np.prod(shape)):
        raise PixelError(f"transfer syntax {syntax_label(uid)}: decoded pixel data does not "
                         "match Rows×Columns×SamplesPerPixel×NumberOfFrames")
    return array.reshape(shape)
