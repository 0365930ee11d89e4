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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from anonlib.errors import PixelError

__all__ = ["decode_frames", "transfer_syntax", "syntax_label", "image_integer"]

_IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel",
                     "PhotometricInterpretation")
_ENCODINGS = {  # (implicit VR, little endian) as pydicom read a file without file meta
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
_FAILURES = (  # what a decoder's exception means, in words (its own text may quote the data)
    (RuntimeError, "the decoder rejected the stream (corrupt, or a form the installed "
                   "plugins do not support)"),
    (MemoryError, "the decoded image would not fit in memory"),
    ((ValueError, TypeError, KeyError, IndexError, AttributeError),
     "the pixel data does not agree with its image attributes"),
)


def transfer_syntax(ds: Dataset) -> UID:
    """The instance's transfer syntax: its file meta's, else the encoding pydicom read a file
    without file meta in (such pixel data can only be native); raises :class:`PixelError`
    when neither says."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    encoding = _ENCODINGS.get(tuple(ds.original_encoding))  # type: ignore[arg-type]
    if encoding is None:
        raise PixelError("no Transfer Syntax UID in the file meta information and the "
                         "dataset's encoding is unknown")
    return encoding


def syntax_label(uid: UID) -> str:
    """``1.2.840.10008.1.2.4.50 (JPEG Baseline (Process 1))`` — the UID and pydicom's name."""
    return f"{uid} ({uid.name})" if uid.name and uid.name != str(uid) else str(uid)


def image_integer(ds: Dataset, keyword: str, default: int | None = None) -> int:
    """An image attribute as an integer; :class:`PixelError` naming it when it is missing
    (without ``default``) or not an integer."""
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise PixelError(f"image attribute {keyword} missing")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PixelError(f"image attribute {keyword} is not an integer") from None


def _expected_bytes(ds: Dataset) -> int:
    frames = image_integer(ds, "NumberOfFrames", 1) or 1
    samples = image_integer(ds, "SamplesPerPixel", 1)
    bits = image_integer(ds, "BitsAllocated") * image_integer(ds, "Rows") * \
        image_integer(ds, "Columns") * samples * frames
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        bits = bits * 2 // 3  # two chroma samples shared by two pixels
    return (bits + 7) // 8


def _check(ds: Dataset, uid: UID) -> None:
    """Raise a worded PixelError for what pydicom would fail on, before it tries."""
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
        if ds["PixelData"].is_undefined_length:
            raise PixelError(f"encapsulated pixel data in a native transfer syntax "
                             f"{syntax_label(uid)}")
        if len(ds.PixelData) < _expected_bytes(ds):
            raise PixelError("pixel data shorter than Rows×Columns×SamplesPerPixel×"
                             "NumberOfFrames×BitsAllocated say")


def _pixel_array(ds: Dataset, uid: UID) -> np.ndarray:
    source = ds
    meta = getattr(ds, "file_meta", None)
    if meta is None or not meta.get("TransferSyntaxUID"):
        source = Dataset(ds)  # shallow: the caller's dataset keeps its (missing) file meta
        source.file_meta = FileMetaDataset()
        source.file_meta.TransferSyntaxUID = uid
    return source.pixel_array


def decode_frames(ds: Dataset) -> np.ndarray:
    """Every frame's stored values: ``(frames, rows, columns[, 3])``, colour as RGB.

    Raises :class:`PixelError` with the reason in words when the pixels cannot be decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about invalid values quote them
        return _decode(ds)


def _decode(ds: Dataset) -> np.ndarray:
    uid = transfer_syntax(ds)
    _check(ds, uid)
    try:
        array = _pixel_array(ds, uid)
    except Exception as exc:
        reason = next((words for kinds, words in _FAILURES if isinstance(exc, kinds)),
                      "the decoder failed")
        raise PixelError(f"transfer syntax {syntax_label(uid)}: pixel data could not be decoded: "
                         f"{reason}") from None
    frames = image_integer(ds, "NumberOfFrames", 1) or 1
    samples = image_integer(ds, "SamplesPerPixel")
    shape = (frames, image_integer(ds, "Rows"), image_integer(ds, "Columns")) + \
        ((samples,) if samples > 1 else ())
    if array.size != int(np.prod(shape)):
        raise PixelError(f"transfer syntax {syntax_label(uid)}: decoded pixel data does not "
                         "match Rows×Columns×SamplesPerPixel×NumberOfFrames")
    return array.reshape(shape)
