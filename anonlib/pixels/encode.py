"""Store masked pixels back into the dataset, in the same transfer syntax where that is lossless.

Three ways, tried in this order, each verified by decoding the result and comparing it with the
masked array (a mismatch raises :class:`~anonlib.errors.PixelError`: never a silent change):

1. **In place** for native little-endian data (Implicit/Explicit VR Little Endian, Deflated):
   only the words inside the masked regions are rewritten, so every other byte of Pixel Data
   stays as it was (the fill word copied from a pixel that already holds the fill value).
2. **Re-encoded losslessly** in the input's own syntax where pydicom has an encoder for it
   (RLE Lossless; JPEG-LS Lossless and JPEG 2000 Lossless with pyjpegls / pylibjpeg-openjpeg).
   Colour is written as RGB, in JPEG 2000 as YBR_RCT (the reversible colour transform: dciodvfy
   rejects RGB there for ultrasound).
3. **Explicit VR Little Endian** otherwise (JPEG baseline/extended/lossless, JPEG-LS near-
   lossless, JPEG 2000, big endian, YBR_FULL_422, 1-bit): colour as RGB with PlanarConfiguration 0,
   BitsAllocated/Stored/HighBit/PixelRepresentation and NumberOfFrames unchanged. A lossy input
   keeps its compression history: LossyImageCompression ``01`` (set, with method and ratio,
   when a lossy-only syntax did not say so).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from anonlib.errors import PixelError
from anonlib.pixels.decode import decode_frames, syntax_label, transfer_syntax

__all__ = ["Region", "store_pixels", "LOSSLESS_REENCODE", "LOSSY_ONLY"]

NATIVE_IN_PLACE = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
LOSSLESS_REENCODE = (RLELossless, JPEGLSLossless, JPEG2000Lossless)
LOSSY_ONLY = {  # syntax -> LossyImageCompressionMethod defined term (PS3.3 C.7.6.1.1.5.1)
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
}
_SUBSAMPLED = ("YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420")
_PIXEL_KEYWORDS = ("PixelData", "PhotometricInterpretation", "PlanarConfiguration",
                   "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "LossyImageCompression",
                   "LossyImageCompressionRatio", "LossyImageCompressionMethod")


@dataclass(frozen=True)
class Region:
    """Rows ``y0:y1`` and columns ``x0:x1`` of one frame (0-based), already clipped."""

    frame: int
    y0: int
    y1: int
    x0: int
    x1: int


def _in_place(ds: Dataset, original: np.ndarray, masked: np.ndarray,
              regions: Sequence[Region]) -> None:
    frames, rows, columns = original.shape[:3]
    samples = original.shape[3] if original.ndim == 4 else 1
    width = int(ds.BitsAllocated) // 8
    data = bytes(ds.PixelData)
    count = frames * rows * columns * samples
    raw = np.frombuffer(data, dtype=f"<u{width}", count=count).copy()
    words: np.ndarray
    if samples == 1:
        words = raw.reshape(frames, rows, columns)
    elif int(ds.get("PlanarConfiguration", 0) or 0) == 1:
        words = raw.reshape(frames, samples, rows, columns).transpose(0, 2, 3, 1)
    else:
        words = raw.reshape(frames, rows, columns, samples)
    for region in regions:
        value = masked[region.frame, region.y0, region.x0]
        words[region.frame, region.y0:region.y1, region.x0:region.x1, ...] = \
            _word(value, original[region.frame], words[region.frame], width)
    ds.PixelData = raw.tobytes() + data[count * width:]


def _word(value: np.ndarray, frame: np.ndarray, words: np.ndarray, width: int) -> np.ndarray:
    """The stored word(s) for the decoded fill ``value``: copied from a pixel of the frame that
    already holds it (keeping whatever the bits above HighBit held), else its two's complement."""
    if frame.ndim == 2:
        at = np.flatnonzero(frame == value)
        if at.size:
            return words.flat[int(at[0])]  # type: ignore[no-any-return]
    return np.asarray(value).astype(np.int64) & ((1 << (8 * width)) - 1)


def _reencode(ds: Dataset, uid: UID, masked: np.ndarray) -> None:
    colour = masked.ndim == 4
    if colour:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    options: dict[str, Any] = {"use_mct": colour} if uid == JPEG2000Lossless else {}
    frames = masked if masked.shape[0] > 1 else masked[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.compress(uid, frames, generate_instance_uid=False, **options)
    if colour and uid == JPEG2000Lossless:
        ds.PhotometricInterpretation = "YBR_RCT"  # PS3.5 8.2.4: colour with the reversible MCT


def _native(ds: Dataset, uid: UID, masked: np.ndarray) -> None:
    encapsulated = uid.is_compressed
    compressed_length = len(ds.PixelData) if encapsulated else 0
    bits = int(ds.BitsAllocated)
    if bits == 1:
        data = pack_bits(masked.reshape(-1))
    else:
        kind = "i" if int(ds.get("PixelRepresentation", 0) or 0) == 1 else "u"
        data = masked.astype(f"<{kind}{bits // 8}").tobytes()
    uncompressed_length = len(data)
    if len(data) % 2:
        data += b"\0"
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = data
    element = ds["PixelData"]
    element.VR = "OB" if bits <= 8 else "OW"
    element.is_undefined_length = False
    if masked.ndim == 4:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    keep_implicit = uid == ImplicitVRLittleEndian
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if keep_implicit \
        else ExplicitVRLittleEndian
    if uid in LOSSY_ONLY and str(ds.get("LossyImageCompression", "")) != "01":
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds:
            ds.LossyImageCompressionMethod = LOSSY_ONLY[uid]
        if "LossyImageCompressionRatio" not in ds and compressed_length:
            ds.LossyImageCompressionRatio = f"{uncompressed_length / compressed_length:.4g}"


def _snapshot(ds: Dataset) -> tuple[dict[str, DataElement], object]:
    saved = {kw: copy.deepcopy(ds[kw]) for kw in _PIXEL_KEYWORDS if kw in ds}
    return saved, ds.file_meta.get("TransferSyntaxUID")


def _restore(ds: Dataset, saved: tuple[dict[str, DataElement], object]) -> None:
    elements, uid = saved
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    for element in elements.values():
        ds.add(element)
    if uid is None:
        if "TransferSyntaxUID" in ds.file_meta:
            del ds.file_meta.TransferSyntaxUID
    else:
        ds.file_meta.TransferSyntaxUID = UID(str(uid))


def _verified(ds: Dataset, masked: np.ndarray) -> bool:
    try:
        return bool(np.array_equal(decode_frames(ds), masked))
    except PixelError:
        return False


def store_pixels(ds: Dataset, original: np.ndarray, masked: np.ndarray,
                 regions: Sequence[Region]) -> None:
    """Replace ``ds``'s pixels (decoded as ``original``) by ``masked``, which differs from it
    only inside ``regions``. Raises :class:`PixelError` when no way verifies."""
    uid = transfer_syntax(ds)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    saved = _snapshot(ds)
    bits = int(ds.BitsAllocated)
    if uid in NATIVE_IN_PLACE and bits in (8, 16, 32, 64) and \
            not photometric.startswith("YBR"):
        _in_place(ds, original, masked, regions)
        if _verified(ds, masked):
            return
        _restore(ds, saved)
    if uid in LOSSLESS_REENCODE and get_encoder(uid).is_available:
        try:
            _reencode(ds, uid, masked)
        except Exception:  # an encoder refusing these pixels: fall back to native
            _restore(ds, saved)
        else:
            if _verified(ds, masked):
                return
            _restore(ds, saved)
    _native(ds, uid, masked)
    if not _verified(ds, masked):
        _restore(ds, saved)
        raise PixelError(f"masked pixel data could not be stored (from {syntax_label(uid)})")
