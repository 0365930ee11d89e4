"""Which released images the audit's pixel check reads: sampled as the engine samples them.

Every image is read, except those of a large series of a cross-sectional modality (CT, MR, PT,
NM …: the ``sampled_modalities`` of ``anonlib/data/burned_in.yaml``), whose text, when there is
any, is the scanner's annotation layer, the same on every image: of such a series the first,
middle and last images are read, and those whose size differs from the rest; the others are
read only when text was found in the sample (see :class:`Selection`). An image at risk (its SOP
class or modality listed, ``BurnedInAnnotation`` YES, an ImageType such as LOCALIZER or
SECONDARY) is read every time. With ``every`` all images are read.

The selection is made from the outputs' headers alone (no pixel is decoded here); an image
without Pixel Data is never selected.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydicom.dataset import Dataset

from anonlib.data import read_yaml
from anonlib.dicomvalues import strings_of, text_of

__all__ = ["ImageHeader", "Selection", "header_of", "select_images", "sample_frames", "SAMPLE_MIN_SERIES"]

#: Series of a sampled modality with more images than this are sampled (the profile's default).
SAMPLE_MIN_SERIES = 20


@dataclass(frozen=True)
class ImageHeader:
    """What the selection needs of one released image (no identifying value)."""

    index: int  # the image's position among the audit's inputs
    series: str  # a key of its series (a digest, or the series' UID)
    modality: str
    sop_class: str
    image_types: frozenset[str]
    burned_in: str
    number: int | None  # InstanceNumber
    shape: tuple[int, int, int]  # rows, columns, frames


@dataclass
class Selection:
    """The images to read first, and per sampled series the images left unread (read as soon
    as text is found in any image of that series)."""

    first: list[int] = field(default_factory=list)
    held_back: dict[str, list[int]] = field(default_factory=dict)

    @property
    def sampled(self) -> int:
        return sum(len(rest) for rest in self.held_back.values())


@cache
def _policy() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    data: dict[str, Any] = read_yaml("burned_in.yaml")
    sampled = data.get("sampled_modalities") or {"CT": "", "MR": "", "PT": "", "NM": ""}
    return (frozenset(str(uid) for uid in data["sop_classes"]), frozenset(data["modalities"]),
            frozenset(sampled), frozenset(str(t).upper() for t in data.get("image_types") or ()))


def _number(ds: Dataset) -> int | None:
    try:
        value = ds.get("InstanceNumber")
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def header_of(index: int, ds: Dataset, series: str) -> ImageHeader | None:
    """The selection's view of one output (``series``: a PHI-free key of its series); None
    when it has no Pixel Data."""
    if "PixelData" not in ds:
        return None
    try:
        types = frozenset(t.strip().upper() for t in strings_of(ds.get("ImageType")))
    except Exception:  # noqa: BLE001 - an undecodable ImageType: treated as absent
        types = frozenset()
    try:
        shape = (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0), int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        shape = (0, 0, 0)
    return ImageHeader(index, series, text_of(ds, "Modality").upper(), text_of(ds, "SOPClassUID"), types,
                       text_of(ds, "BurnedInAnnotation").upper(), _number(ds), shape)


def _always(header: ImageHeader) -> bool:
    """At risk, or not of a sampled modality: read every time."""
    sop_classes, modalities, sampled, image_types = _policy()
    return (header.sop_class in sop_classes or header.modality in modalities or header.burned_in == "YES"
            or not header.image_types.isdisjoint(image_types) or header.modality not in sampled)


def _sample(series: Sequence[ImageHeader]) -> set[int]:
    """First, middle and last (by InstanceNumber, else as given), and the odd sizes out."""
    ordered = sorted(series, key=lambda h: (h.number is None, h.number or 0, h.index))
    picked = {ordered[0].index, ordered[len(ordered) // 2].index, ordered[-1].index}
    usual = Counter(h.shape for h in series).most_common(1)[0][0]
    return picked | {h.index for h in series if h.shape != usual}


def select_images(headers: Iterable[ImageHeader], *, every: bool = False,
                  min_series: int = SAMPLE_MIN_SERIES) -> Selection:
    """The :class:`Selection` of ``headers`` (see the module docstring)."""
    selection = Selection()
    series: dict[str, list[ImageHeader]] = defaultdict(list)
    for header in headers:
        if every or _always(header):
            selection.first.append(header.index)
        else:
            series[header.series].append(header)
    for key, members in series.items():
        if len(members) <= min_series:
            selection.first += [h.index for h in members]
            continue
        picked = _sample(members)
        selection.first += [h.index for h in members if h.index in picked]
        selection.held_back[key] = [h.index for h in members if h.index not in picked]
    selection.first.sort()
    return selection


def sample_frames(count: int) -> list[int]:
    """The frames read first of a multi-frame image: the first, middle and last."""
    return sorted({0, count // 2, max(0, count - 1)}) if count > 0 else []
