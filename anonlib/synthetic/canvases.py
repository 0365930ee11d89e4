"""Images to burn text into: pydicom's own test images and images generated from a seed.

A :class:`Canvas` is the pixel side of one instance: stored values frame by frame, the image
pixel module that describes them, the window a viewer would use, and (for a pydicom file kept
whole) the source dataset, so that a text-free copy can keep its own encoded pixel data. Only
files shipped inside the pydicom wheel are used, and only those without text of their own (the
ultrasound images, which carry their machine's annotations, are cropped to the scan area).
Generated images draw shapes and noise from a ``numpy`` generator: same seed, same pixels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import (
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    XRayAngiographicImageStorage,
)

__all__ = ["Canvas", "BUILDERS", "build", "set_pixels"]

_PIXEL_KEYWORDS = (
    "PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
    "FrameIncrementPointer", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "SmallestImagePixelValue", "LargestImagePixelValue",
)


@dataclass
class Canvas:
    """One image ready for lettering. ``pixels``: (frames, rows, cols) or (frames, rows, cols, 3)
    stored values; ``window``: the stored values a viewer shows as black and white (before any
    MONOCHROME1 inversion); ``palette``: the RGB table of a PALETTE COLOR image; ``native``: the
    source dataset when its encoded pixel data may be kept as they are (nothing cropped)."""

    source: str
    modality: str
    header: Dataset
    pixels: np.ndarray
    window: tuple[float, float]
    palette: np.ndarray | None = None
    native: Dataset | None = None

    @property
    def colour(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def monochrome1(self) -> bool:
        return str(self.header.PhotometricInterpretation) == "MONOCHROME1"

    @property
    def stored_range(self) -> tuple[int, int]:
        bits = int(self.header.BitsStored)
        if int(self.header.PixelRepresentation):
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


def _pixel_module(header: Dataset, pixels: np.ndarray, bits_stored: int, photometric: str) -> None:
    """Describe ``pixels`` in ``header`` (native, uncompressed)."""
    for keyword in _PIXEL_KEYWORDS:
        if keyword in header:
            delattr(header, keyword)
    frames, rows, cols = pixels.shape[:3]
    header.Rows, header.Columns = rows, cols
    header.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    if pixels.ndim == 4:
        header.PlanarConfiguration = 0
    header.PhotometricInterpretation = photometric
    header.BitsAllocated = pixels.dtype.itemsize * 8
    header.BitsStored = bits_stored
    header.HighBit = bits_stored - 1
    header.PixelRepresentation = int(pixels.dtype.kind == "i")
    if frames > 1:
        header.NumberOfFrames = frames
        header.FrameIncrementPointer = 0x00181063  # Frame Time
        header.FrameTime = 40
    set_pixels(header, pixels)


def set_pixels(header: Dataset, pixels: np.ndarray) -> None:
    """Native (uncompressed) Pixel Data holding ``pixels``, with its explicit VR."""
    header.add_new(0x7FE00010, "OB" if pixels.dtype.itemsize == 1 else "OW", pixels.tobytes())


def _new_header(sop_class: str, modality: str) -> Dataset:
    header = Dataset()
    header.SOPClassUID = sop_class
    header.Modality = modality
    header.ImageType = ["ORIGINAL", "PRIMARY"]
    header.InstanceNumber = 1
    header.PatientOrientation = ""
    return header


def _blur(image: np.ndarray, radius: int) -> np.ndarray:
    """A box blur (separable, edges clamped) — enough for speckle and soft tissue texture."""
    out = image.astype(np.float64)
    for axis in (0, 1):
        padded = np.concatenate([np.repeat(out.take([0], axis), radius, axis), out,
                                 np.repeat(out.take([-1], axis), radius, axis)], axis)
        summed = np.cumsum(padded, axis=axis, dtype=np.float64)
        summed = np.concatenate([np.zeros_like(summed.take([0], axis)), summed], axis)
        size = 2 * radius + 1
        n = out.shape[axis]
        out = (summed.take(np.arange(size, n + size), axis) - summed.take(np.arange(n), axis)) / size
    return out


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    inside: np.ndarray = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return inside


def _ct(g: np.random.Generator) -> Canvas:
    n = 512
    hu = np.full((n, n), -1000.0)
    cy, cx = 270 + int(g.integers(-15, 15)), 256 + int(g.integers(-15, 15))
    ry, rx = int(g.integers(120, 160)), int(g.integers(170, 215))
    hu[_ellipse((n, n), cy, cx, ry, rx)] = -100
    hu[_ellipse((n, n), cy, cx, ry - 12, rx - 12)] = 40
    for side in (-1, 1):
        hu[_ellipse((n, n), cy - 15, cx + side * rx * 0.45, ry * 0.6, rx * 0.32)] = -850
    hu[_ellipse((n, n), cy + ry * 0.6, cx, 22, 26)] = 900
    hu[_ellipse((n, n), cy + ry * 0.6, cx, 12, 14)] = 30
    hu[_ellipse((n, n), cy - 10, cx + 25, 35, 30)] = 60
    hu += _blur(g.normal(0, 30, (n, n)), 1)
    hu[~_ellipse((n, n), 256, 256, 255, 255)] = -2000
    header = _new_header(CTImageStorage, "CT")
    header.RescaleIntercept, header.RescaleSlope, header.RescaleType = 0, 1, "HU"
    center, width = [(40, 400), (-600, 1500), (50, 350)][int(g.integers(3))]
    header.WindowCenter, header.WindowWidth = center, width
    header.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    header.SliceThickness, header.KVP = 5.0, 120
    pixels = np.rint(hu).astype(np.int16)[None]
    _pixel_module(header, pixels, 16, "MONOCHROME2")
    return Canvas("generated:ct", "CT", header, pixels, (center - width / 2, center + width / 2))


def _mr(g: np.random.Generator) -> Canvas:
    n = 256
    head = _ellipse((n, n), 128, 128, 110, 90)
    image = np.zeros((n, n))
    image[head] = 650
    image[_ellipse((n, n), 128, 128, 100, 80)] = 380
    image[_ellipse((n, n), 118, 116, 22, 8)] = 120
    image[_ellipse((n, n), 118, 140, 22, 8)] = 120
    image += _blur(g.normal(0, 40, (n, n)), 2) * head
    image = np.abs(image + g.normal(0, 12, (n, n)))
    header = _new_header(MRImageStorage, "MR")
    header.ScanningSequence, header.SequenceVariant, header.ScanOptions = "SE", "NONE", ""
    header.MRAcquisitionType, header.EchoTime, header.RepetitionTime = "2D", 90, 3000
    pixels = np.clip(np.rint(image), 0, 4095).astype(np.uint16)[None]
    _pixel_module(header, pixels, 12, "MONOCHROME2")
    header.WindowCenter, header.WindowWidth = 400, 900
    return Canvas("generated:mr", "MR", header, pixels, (-50, 850))


def _fan(g: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    yy, xx = np.mgrid[:rows, :cols]
    apex_y, apex_x = 30, cols / 2
    radius = np.hypot(yy - apex_y, xx - apex_x)
    angle = np.degrees(np.arctan2(xx - apex_x, yy - apex_y))
    fan = (radius > 50) & (radius < rows - 40) & (np.abs(angle) < 38)
    speckle = _blur(g.rayleigh(60, (rows, cols)), 1) * (1.2 - radius / (rows * 1.4))
    speckle += 70 * _ellipse((rows, cols), rows * 0.55, cols * 0.5 + int(g.integers(-60, 60)), 40, 70)
    speckle[_ellipse((rows, cols), rows * 0.45, cols * 0.45, 35, 55)] *= 0.15
    clipped: np.ndarray = np.clip(speckle * fan, 0, 255)
    return clipped


def _us(g: np.random.Generator) -> Canvas:
    frames = 1 if g.random() < 0.6 else 3
    grey = _fan(g, 480, 640)
    stack = [np.roll(grey, shift, axis=1) for shift in range(0, 3 * frames, 3)]
    pixels = np.rint(np.stack(stack)).astype(np.uint8)
    pixels = np.repeat(pixels[..., None], 3, axis=3)
    sop = UltrasoundMultiFrameImageStorage if frames > 1 else UltrasoundImageStorage
    header = _new_header(sop, "US")
    _pixel_module(header, pixels, 8, "RGB")
    return Canvas("generated:us", "US", header, pixels, (0, 255))


def _sc(g: np.random.Generator) -> Canvas:
    pixels = np.zeros((1, 512, 512, 3), dtype=np.uint8)
    pixels[0] = (28, 30, 38)
    pixels[0, :, :6] = pixels[0, :, -6:] = (60, 64, 80)
    ct = _ct(g)
    lo, hi = ct.window
    view = np.clip((ct.pixels[0].astype(np.float64) - lo) / (hi - lo) * 255, 0, 255)[::4, ::4]
    size = 256 + 64 * int(g.integers(0, 3))
    view = np.kron(view, np.ones((4, 4)))[:size, :size]
    top, left = 512 - size - 24, (512 - size) // 2
    pixels[0, top:top + size, left:left + size] = np.rint(view[..., None]).astype(np.uint8)
    header = _new_header(SecondaryCaptureImageStorage, "OT")
    header.ConversionType = "WSD"
    header.ImageType = ["DERIVED", "SECONDARY"]
    _pixel_module(header, pixels, 8, "RGB")
    return Canvas("generated:sc", "OT", header, pixels, (0, 255))


def _dx(g: np.random.Generator) -> Canvas:
    rows, cols = 1024, 880
    shown = np.full((rows, cols), 0.05)
    shown[_ellipse((rows, cols), 560, 440, 470, 400)] = 0.45
    for side in (-1, 1):
        shown[_ellipse((rows, cols), 500, 440 + side * 170, 300, 140)] = 0.18
    yy, xx = np.mgrid[:rows, :cols]
    for rib in range(8):
        arc = np.abs(yy - (260 + 70 * rib) - 0.0008 * (xx - 440) ** 2) < 9
        shown[arc & _ellipse((rows, cols), 560, 440, 470, 400)] += 0.25
    shown[(np.abs(xx - 440) < 28) & (yy > 120)] = 0.85
    shown = np.clip(_blur(shown, 3) + g.normal(0, 0.015, (rows, cols)), 0, 1)
    pixels = np.rint((1.0 - shown) * 4095).astype(np.uint16)[None]
    header = _new_header(DigitalXRayImageStorageForPresentation, "DX")
    header.ImageType = ["ORIGINAL", "PRIMARY"]
    header.PresentationIntentType = "FOR PRESENTATION"
    header.RescaleIntercept, header.RescaleSlope, header.RescaleType = 0, 1, "US"
    header.WindowCenter, header.WindowWidth = 2048, 4096
    header.PixelIntensityRelationship, header.PixelIntensityRelationshipSign = "LOG", 1
    _pixel_module(header, pixels, 12, "MONOCHROME1")
    return Canvas("generated:dx", "DX", header, pixels, (0, 4095))


def _mg(g: np.random.Generator) -> Canvas:
    rows, cols = 2048, 1664
    breast = _ellipse((rows, cols), rows / 2, 0, rows * 0.42, cols * 0.7)
    texture = _blur(g.normal(0, 1, (rows // 8, cols // 8)), 2)
    tissue = 7000 + 2500 * np.kron(texture, np.ones((8, 8)))
    image = np.where(breast, tissue, 300.0) + g.normal(0, 60, (rows, cols))
    pixels = np.clip(np.rint(image), 0, 16383).astype(np.uint16)[None]
    header = _new_header(DigitalMammographyXRayImageStorageForPresentation, "MG")
    header.PresentationIntentType = "FOR PRESENTATION"
    header.RescaleIntercept, header.RescaleSlope, header.RescaleType = 0, 1, "US"
    header.WindowCenter, header.WindowWidth = 7000, 9000
    _pixel_module(header, pixels, 14, "MONOCHROME2")
    return Canvas("generated:mg", "MG", header, pixels, (2500, 11500))


def _xa(g: np.random.Generator) -> Canvas:
    n, frames = 512, 4
    yy, xx = np.mgrid[:n, :n]
    background = 190 - 60 * (np.hypot(yy - 256, xx - 256) / 362) ** 2
    stack = []
    path = np.cumsum(g.normal(0, 3, n))
    for index in range(frames):
        frame = background.copy()
        vessel = np.abs(xx - 256 - path[yy] - 4 * index) < 6
        frame[vessel] -= 90 * (index + 1) / frames
        stack.append(frame + g.normal(0, 4, (n, n)))
    pixels = np.clip(np.rint(np.stack(stack)), 0, 255).astype(np.uint8)
    header = _new_header(XRayAngiographicImageStorage, "XA")
    header.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    header.PositionerPrimaryAngle, header.PositionerSecondaryAngle = 0, 0
    _pixel_module(header, pixels, 8, "MONOCHROME2")
    return Canvas("generated:xa", "XA", header, pixels, (0, 255))


def _source(name: str) -> Dataset:
    path = get_testdata_file(name)
    if not isinstance(path, str):
        raise FileNotFoundError(f"pydicom test file {name} is not available offline")
    return dcmread(path)


def _window(ds: Dataset, pixels: np.ndarray) -> tuple[float, float]:
    """The header's first window in stored values, or the 1st–99th percentile."""
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
        width = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        lo, hi = float(center) - float(width) / 2, float(center) + float(width) / 2
        return (lo - intercept) / slope, (hi - intercept) / slope
    lo, hi = np.percentile(pixels, (1, 99))
    return float(lo), float(max(hi, lo + 1))


def _real(name: str, *, rows: slice = slice(None), cols: slice = slice(None),
          frames: int = 0) -> Callable[[np.random.Generator], Canvas]:
    """A pydicom test file as a canvas: cropped to ``rows``/``cols`` and cut to its first
    ``frames`` frames when given (then decoded and described anew), else kept whole."""

    def build(_g: np.random.Generator) -> Canvas:
        ds = _source(name)
        whole = rows == slice(None) and cols == slice(None) and not frames
        array = ds.pixel_array
        count = int(ds.get("NumberOfFrames", 1) or 1)
        array = array if count > 1 else array[None]
        palette = None
        if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
            palette = apply_color_lut(np.arange(256, dtype=np.uint8), ds)
            palette = np.rint(palette / (palette.max() or 1) * 255).astype(np.uint8)
        pixels = np.ascontiguousarray(array[:frames or count, rows, cols])
        for _ in ds.iterall():  # raw elements decoded now, so that they write in any syntax
            pass
        header = copy.deepcopy(ds)
        del header.PixelData
        photometric = str(ds.PhotometricInterpretation)
        if pixels.ndim == 4:
            photometric = "RGB"  # pydicom decodes YBR to RGB
        _pixel_module(header, pixels, int(ds.BitsStored), photometric)
        if ds.file_meta.TransferSyntaxUID.is_compressed and "LossyImageCompression" in ds:
            header.LossyImageCompression = ds.LossyImageCompression
        grey = pixels if pixels.ndim == 3 else pixels.mean(axis=3)
        window = (0.0, 255.0) if pixels.ndim == 4 or palette is not None else _window(ds, grey)
        return Canvas(f"pydicom:{name}", str(ds.get("Modality", "OT")), header, pixels, window,
                      palette, ds if whole else None)

    return build


BUILDERS: dict[str, Callable[[np.random.Generator], Canvas]] = {
    "ct": _ct,
    "mr": _mr,
    "us": _us,
    "sc": _sc,
    "dx": _dx,
    "mg": _mg,
    "xa": _xa,
    "ct_small": _real("CT_small.dcm"),
    "mr_small": _real("MR_small.dcm"),
    "mr_overlay": _real("examples_overlay.dcm"),
    "ct_693": _real("693_J2KI.dcm"),
    "nm_j2k": _real("JPEG2000.dcm"),
    "sc_document": _real("SC_rgb_jpeg.dcm"),
    "us_rgb": _real("examples_jpeg2k.dcm", rows=slice(108, 340), cols=slice(48, 592)),
    "us_palette": _real("examples_palette.dcm", rows=slice(86, 280), cols=slice(300, 775)),
    "us_cine": _real("examples_ybr_color.dcm", rows=slice(52, 200), cols=slice(24, 296), frames=3),
}
"""Every canvas by name: generated (``ct`` … ``xa``) and pydicom's test images."""


def build(name: str, g: np.random.Generator) -> Canvas:
    """The canvas ``name`` of :data:`BUILDERS`, drawn from ``g``."""
    return BUILDERS[name](g)
