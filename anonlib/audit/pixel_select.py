"""Which released images the audit's pixel check reads: sampled as the engine samples them.

The rules are the pixel stage's own (:mod:`anonlib.pixels.select`, with the lists of
``anonlib/data/burned_in.yaml`` and the profile's default series size): every image at risk
(its SOP class or modality listed, BurnedInAnnotation YES, an ImageType such as LOCALIZER or
SECONDARY, any modality that is not sampled) and every image of a small series is read; of a
large series of a cross-sectional modality (CT, MR, PT, NM) the first, middle and last images
are read, and those that differ from the rest, the others only when text was found in the
sample (see :class:`Selection`); segmentations and dose grids are not read. With ``every`` all
images are read. An output without pixel data is not read (nor did the engine read it). The
selection is made from the outputs' headers alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydicom.dataset import Dataset

from anonlib.data import read_yaml
from anonlib.pixels.select import ImageInfo, has_pixels, image_info, plan_series, sample_frames
from anonlib.profile.burned_in import BurnedInPolicy

__all__ = ["Selection", "header_of", "select_images", "sample_frames", "rules", "ImageInfo"]


@dataclass(frozen=True)
class _Rules:
    """The lists of ``burned_in.yaml`` (:class:`~anonlib.pixels.select.BurnedInRules`)."""

    burned_in_sop_classes: frozenset[str]
    sampled_modalities: frozenset[str]
    at_risk_image_types: frozenset[str]
    unread_modalities: frozenset[str]


@cache
def rules() -> _Rules:
    """The selection rules, read once from ``burned_in.yaml``."""
    data: dict[str, Any] = read_yaml("burned_in.yaml")
    return _Rules(frozenset(str(uid) for uid in data["sop_classes"]), frozenset(data["sampled_modalities"]),
                  frozenset(str(kind).upper() for kind in data["image_types"]),
                  frozenset(data["not_read_modalities"]))


@dataclass
class Selection:
    """The images to read first (their indexes), and per sampled series the images left unread
    (read as soon as text is found in any image of that series)."""

    first: list[int] = field(default_factory=list)
    held_back: dict[str, list[int]] = field(default_factory=dict)

    @property
    def sampled(self) -> int:
        return sum(len(rest) for rest in self.held_back.values())


def header_of(index: int, ds: Dataset) -> ImageInfo | None:
    """The selection's view of output number ``index``; None when it is not an image to read
    (no pixel data, as the engine's pipeline decides, or pixels that are data)."""
    if not has_pixels(ds):
        return None
    info = image_info(ds, str(index), rules())
    return info if info.image else None


def select_images(headers: Iterable[ImageInfo], *, every: bool = False,
                  min_series: int | None = None) -> Selection:
    """The :class:`Selection` of ``headers`` (see the module docstring); ``min_series``: the
    largest series read in full (default: the profile's)."""
    headers = list(headers)
    if every:
        return Selection(sorted(int(info.key) for info in headers))
    size = BurnedInPolicy().sample_min_series if min_series is None else min_series
    decisions = plan_series(headers, size)
    series = {info.key: info.series for info in headers}
    selection = Selection()
    held: dict[str, list[int]] = defaultdict(list)
    for key, reading in decisions.items():
        if reading.reads:
            selection.first.append(int(key))
        elif reading.how == "later":
            held[series[key]].append(int(key))
    selection.first.sort()
    selection.held_back = {name: sorted(keys) for name, keys in held.items()}
    return selection
