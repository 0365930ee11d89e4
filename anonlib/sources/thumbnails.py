"""Small images of instances, for browsing and the preview: decode, window, shrink.

:func:`thumbnail` decodes the first frame with pydicom, applies the Modality LUT (rescale),
windows with the first WindowCenter/WindowWidth when present (else the frame's min–max),
inverts MONOCHROME1, converts YBR to RGB and palette colour to RGB, and shrinks the longest side
to ``size`` pixels. Anything it cannot show (no pixel data, an encoding with no decoder
installed, a broken file) gives a placeholder, never an exception; :func:`render` also says why.

:func:`series_figure` draws a grid of a series' thumbnails with no text from the data: images
are captioned only by their position in the series.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import pixel_array

from anonlib.errors import AnonlibError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from anonlib.sources.base import Source

__all__ = ["Thumbnail", "thumbnail", "render", "render_dataset", "placeholder", "series_figure",
           "thumbnail_figure"]

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail, and why it is a placeholder (``reason``) when it is one."""

    image: Image
    reason: str | None = None

    @property
    def placeholder(self) -> bool:
        return self.reason is not None


def placeholder(size: int = 128) -> Image:
    """A dark square crossed by two light diagonals: "no image here"."""
    out = np.full((size, size), 40, dtype=np.uint8)
    idx = np.arange(size)
    out[idx, idx] = 150
    out[idx, size - 1 - idx] = 150
    return out


def _shrink(image: NDArray[np.generic], size: int) -> NDArray[np.generic]:
    """Nearest-neighbour resampling so that the longest side is ``size``."""
    rows, cols = image.shape[:2]
    scale = size / max(rows, cols)
    new_rows, new_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    r = np.minimum((np.arange(new_rows) + 0.5) / scale, rows - 1).astype(int)
    c = np.minimum((np.arange(new_cols) + 0.5) / scale, cols - 1).astype(int)
    shrunk: NDArray[np.generic] = image[r][:, c]
    return shrunk


def _scale(values: NDArray[np.floating], low: float, high: float) -> Image:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    out = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0 + 0.5
    scaled: Image = out.astype(np.uint8)
    return scaled


def _window(ds: Dataset) -> tuple[float, float] | None:
    """(low, high) of the first VOI window (PS3.3 C.11.2.1.2.1, linear), if any."""
    try:
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center is None or width is None or center == "" or width == "":
            return None
        c = float(center[0] if isinstance(center, (list, pydicom.multival.MultiValue)) else center)
        w = float(width[0] if isinstance(width, (list, pydicom.multival.MultiValue)) else width)
    except (TypeError, ValueError, IndexError):
        return None
    if w < 1:
        return None
    return c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2


def _gray(frame: NDArray[np.generic], ds: Dataset) -> Image:
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    window = _window(ds)
    low, high = window if window else (float(values.min()), float(values.max()))
    image = _scale(values, low, high)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = 255 - image
    return image


def _color(frame: NDArray[np.generic]) -> Image:
    if frame.dtype == np.uint8:
        return frame.astype(np.uint8)
    values = frame.astype(np.float64)
    return _scale(values, float(values.min()), float(values.max()))


def _first_frame(ds: Dataset) -> NDArray[np.generic]:
    frame = pixel_array(ds, index=0) if int(ds.get("NumberOfFrames", 1) or 1) > 1 else ds.pixel_array
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    return np.asarray(frame)


def render_dataset(ds: Dataset, size: int = 128) -> Thumbnail:
    """:func:`render` for a dataset already read with its pixel data."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return Thumbnail(placeholder(size), "no image (no pixel data)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = _first_frame(ds)
            if frame.ndim == 3 and frame.shape[-1] == 3:
                image = _color(frame)
            elif frame.ndim == 2:
                image = _gray(frame, ds)
            else:
                return Thumbnail(placeholder(size), f"cannot show pixel data of shape {frame.shape}")
    except Exception as exc:  # noqa: BLE001 - an image we cannot decode is shown as a placeholder
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "") or "this encoding"
        return Thumbnail(placeholder(size), f"cannot decode {name} ({type(exc).__name__})")
    return Thumbnail(np.ascontiguousarray(_shrink(image, size)).astype(np.uint8))


def render(data: bytes, size: int = 128) -> Thumbnail:
    """The thumbnail of a DICOM file's first frame, or a placeholder and the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            _ = ds.get("PixelData")
        if "PixelData" not in ds and not ds.get("SOPClassUID"):
            raise ValueError("neither pixel data nor a SOP Class UID")
    except Exception as exc:  # noqa: BLE001 - unreadable files give a placeholder
        return Thumbnail(placeholder(size), f"not a readable DICOM file ({type(exc).__name__})")
    return render_dataset(ds, size)


def thumbnail(data: bytes, size: int = 128) -> Image:
    """The first frame of a DICOM file as a uint8 array whose longest side is ``size``: 2-D
    for grayscale, rows × columns × 3 for colour; a placeholder when it cannot be shown."""
    return render(data, size).image


def thumbnail_figure(items: list[tuple[Thumbnail, str]], *, columns: int = 4, inches: float = 2.2) -> Figure:
    """A grid of thumbnails with the given captions; axes off, nothing else drawn."""
    from matplotlib.figure import Figure

    count = max(1, len(items))
    cols = max(1, min(columns, count))
    rows = math.ceil(count / cols)
    figure = Figure(figsize=(cols * inches, rows * inches), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= len(items):
            continue
        thumb, caption = items[index]
        if thumb.image.ndim == 2:
            ax.imshow(thumb.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(thumb.image, interpolation="nearest")
        ax.set_title(caption if thumb.reason is None else f"{caption}\n{thumb.reason}", fontsize=8)
    return figure


def _spread(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` indices spread evenly over ``range(count)``, first and last included."""
    if count <= wanted:
        return list(range(count))
    if wanted <= 1:
        return [0]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def series_figure(source: Source, study: str, series: str, max_images: int = 12, *, size: int = 128) -> Figure:
    """Thumbnails of up to ``max_images`` instances of one series, spread evenly over it, in
    a grid captioned ``#position/count``. An instance that cannot be read or shown is drawn
    as a placeholder with the reason; an empty series gives one placeholder."""
    keys = source.instances(study, series)
    items: list[tuple[Thumbnail, str]] = []
    for index in _spread(len(keys), max(1, max_images)):
        try:
            thumb = render(source.read(keys[index]), size)
        except AnonlibError as exc:
            thumb = Thumbnail(placeholder(size), f"cannot read ({type(exc).__name__})")
        items.append((thumb, f"#{index + 1}/{len(keys)}"))
    if not items:
        items.append((Thumbnail(placeholder(size), "no instances"), "empty series"))
    return thumbnail_figure(items)
