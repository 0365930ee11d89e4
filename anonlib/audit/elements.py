"""Iterating the elements of a dataset that may be malformed (outputs of other tools)."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

__all__ = ["elements", "walk_elements"]

Trail = tuple[tuple[int, int], ...]


def elements(ds: Dataset) -> Iterator[DataElement]:
    """The top-level elements of ``ds``, decoded; an element that cannot be decoded is skipped
    (its bytes are still searched by the raw-bytes checks)."""
    for tag in sorted(ds.keys()):  # tag order, as Dataset.__iter__ gives
        try:
            yield ds[tag]
        except Exception:  # noqa: BLE001 - malformed values must not stop an audit
            continue


def walk_elements(ds: Dataset, trail: Trail = ()) -> Iterator[tuple[Trail, DataElement]]:
    """Every element at every depth with its (sequence tag, item index) trail."""
    for element in elements(ds):
        yield trail, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                if isinstance(item, Dataset):
                    yield from walk_elements(item, trail + ((int(element.tag), index),))
