"""Which images the pixel stage reads, and which of their frames.

Reading every slice of every CT is slow and finds nothing the first slice would not: a
scanner's annotation layer is the same on every image of a series. So, under ``burned_in: ocr``
(:mod:`anonlib.profile.burned_in`):

* every image of a modality or SOP class at risk (ultrasound, secondary capture, X-ray…, any
  modality not listed as sampled or not read in ``anonlib/data/burned_in.yaml``), every image whose
  ImageType says LOCALIZER/SCOUT/SCREEN/SECONDARY/DERIVED and every image whose
  BurnedInAnnotation is YES is read, every frame (reading ``all``);
* images of the sampled modalities (CT, MR, PT, NM) are read in full when their
  series is small; of a large series, a sample is read (``sample``: the first, middle and
  last image by InstanceNumber, and every image whose size, bit depth, photometric
  interpretation or ImageType differs from most of the series), the others wait
  (:data:`LATER`) and are read too when text is found in any image of their series
  (:data:`ESCALATED`).
* of a multi-frame image (a clip, an enhanced CT) the first, middle and last frame are read,
  every frame once text is found in them (``every_frame: true`` reads all, always).

Segmentations and dose grids (computed data, no annotation layer) are not read.

The functions are pure (header values in, decisions out); the folder run's pre-pass and the
study job call :func:`plan_series` with every image of the run, the audit samples the same way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pydicom.dataset import Dataset

from anonlib.dicomvalues import strings_of, text_of

__all__ = ["Reading", "ImageInfo", "LATER", "ESCALATED", "NOT_IMAGE",
           "image_info", "read_reason", "reading_alone", "plan_series", "sample_frames",
           "has_pixels", "is_image", "never_read", "BurnedInRules"]

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Reading:
    """The decision for one image: ``how`` is all | sample | later | escalated | none;
    ``reason`` (PHI-free) says why it is read."""

    how: str
    reason: str = ""

    @property
    def reads(self) -> bool:
        return self.how in ("all", "sample", "escalated")


NOT_IMAGE = Reading("none")
LATER = Reading("later")


ESCALATED = Reading("escalated", "text was found in another image of its series")


class BurnedInRules(Protocol):
    """The lists of ``burned_in.yaml`` as the plan carries them (a Plan is one)."""

    @property
    def burned_in_sop_classes(self) -> frozenset[str]: ...
    @property
    def sampled_modalities(self) -> frozenset[str]: ...
    @property
    def at_risk_image_types(self) -> frozenset[str]: ...
    @property
    def unread_modalities(self) -> frozenset[str]: ...


def has_pixels(ds: Dataset) -> bool:
    """Whether ``ds`` holds pixel data (a header read without its pixels holds none)."""
    return any(keyword in ds for keyword in _PIXEL_TAGS)


def is_image(ds: Dataset) -> bool:
    """Whether ``ds`` is an image: it holds pixel data, or its header (read without the pixels)
    has Rows and Columns."""
    return has_pixels(ds) or ("Rows" in ds and "Columns" in ds)


def read_reason(ds: Dataset, rules: BurnedInRules) -> str:
    """Why the header alone says every frame of ``ds`` must be read ("" when it does not: an
    image of a sampled modality, whose series decides)."""
    modality = text_of(ds, "Modality").upper()
    sop_class = text_of(ds, "SOPClassUID")
    if text_of(ds, "BurnedInAnnotation").upper() == "YES":
        return "BurnedInAnnotation is YES"
    if sop_class in rules.burned_in_sop_classes:
        return f"SOP class {sop_class} often carries burned-in text"
    if modality not in rules.sampled_modalities:
        return f"modality {modality or '(none)'} may carry burned-in text"
    kinds = {value.strip().upper() for value in strings_of(ds.get("ImageType"))}
    hit = sorted(kinds & rules.at_risk_image_types)
    if hit:
        return f"ImageType {hit[0]} may carry burned-in text"
    return ""


def never_read(ds: Dataset, rules: BurnedInRules) -> bool:
    """Pixels that are computed data (a segmentation's labels, a dose grid), never read: unless
    the header itself says BurnedInAnnotation YES."""
    return (text_of(ds, "Modality").upper() in rules.unread_modalities
            and text_of(ds, "BurnedInAnnotation").upper() != "YES")


def reading_alone(ds: Dataset, rules: BurnedInRules) -> Reading:
    """The decision for an image seen without its series (a notebook preview, one file): read
    in full (nothing says it may be skipped)."""
    if not is_image(ds) or never_read(ds, rules):
        return NOT_IMAGE
    return Reading("all", read_reason(ds, rules) or "read in full (its series is not known)")


@dataclass(frozen=True)
class ImageInfo:
    """What sampling needs of one image's header; ``key`` names it for the caller (a file label
    or an Orthanc id); ``series`` is its Series Instance UID (in memory only)."""

    key: str
    series: str
    number: int | None
    signature: tuple[str, ...]
    reason: str  # read_reason(); "" for an ordinary image of a sampled modality
    image: bool = True


def image_info(ds: Dataset, key: str, rules: BurnedInRules) -> ImageInfo:
    number_text = text_of(ds, "InstanceNumber")
    try:
        number: int | None = int(float(number_text)) if number_text else None
    except ValueError:
        number = None
    signature = (text_of(ds, "Rows"), text_of(ds, "Columns"), text_of(ds, "BitsStored"),
                 text_of(ds, "PhotometricInterpretation"), text_of(ds, "SamplesPerPixel"),
                 "\\".join(s.strip().upper() for s in strings_of(ds.get("ImageType"))),
                 text_of(ds, "NumberOfFrames"))
    image = is_image(ds) and not never_read(ds, rules)
    return ImageInfo(key, text_of(ds, "SeriesInstanceUID"), number, signature,
                     read_reason(ds, rules) if image else "", image)


def plan_series(images: Iterable[ImageInfo], min_series: int) -> dict[str, Reading]:
    """key → reading for every image of a run (see the module's rules). A series with more than
    ``min_series`` ordinary images is sampled; the rest of it is :data:`LATER`."""
    decisions: dict[str, Reading] = {}
    by_series: dict[str, list[ImageInfo]] = defaultdict(list)
    for info in images:
        if not info.image:
            decisions[info.key] = NOT_IMAGE
        elif info.reason:
            decisions[info.key] = Reading("all", info.reason)
        else:
            by_series[info.series].append(info)
    for members in by_series.values():
        if len(members) <= min_series:
            for info in members:
                decisions[info.key] = Reading("all", "its series is small enough to read in full")
            continue
        ordered = sorted(members, key=lambda i: (i.number is None, i.number or 0, i.key))
        picked = {ordered[0].key, ordered[len(ordered) // 2].key, ordered[-1].key}
        usual, _ = Counter(info.signature for info in members).most_common(1)[0]
        for info in members:
            if info.key in picked:
                decisions[info.key] = Reading("sample", "sampled from its series (first, middle, last)")
            elif info.signature != usual:
                decisions[info.key] = Reading("sample", "differs from the rest of its series")
            else:
                decisions[info.key] = LATER
    return decisions


def sample_frames(count: int) -> list[int]:
    """The frames read of a multi-frame image that is sampled: first, middle, last."""
    return sorted({0, count // 2, max(0, count - 1)}) if count > 0 else []
