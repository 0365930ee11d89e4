"""Iterating the elements of a dataset that may be malformed (outputs of other tools)."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

__all__ = ["elements", "walk_elements", "raw_vr"]

Trail = tuple[tuple[int, int], ...]


def raw_vr(ds: Dataset, tag: int) -> str | None:
    """The VR of element ``tag`` of ``ds`` without decoding its value: as written (explicit VR),
    else from the dictionary; None when unknown."""
    table = getattr(ds, "_dict", None)  # the elements as read, by tag: no conversion, no read
    vr = getattr(table.get(tag) if isinstance(table, dict) else ds.get_item(tag), "VR", None)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def elements(ds: Dataset, vrs: frozenset[str] | None = None) -> Iterator[DataElement]:
    """The top-level elements of ``ds``, decoded; an element that cannot be decoded is skipped
    (its bytes are still searched by the leak check). With ``vrs``, only elements of those VRs
    (and of an unknown VR) are decoded and given: decoding is most of the cost of reading."""
    for tag in sorted(ds.keys()):  # tag order, as Dataset.__iter__ gives
        if vrs is not None:
            vr = raw_vr(ds, tag)
            if vr is not None and vr not in vrs:
                continue
        try:
            yield ds[tag]
        except Exception:  # noqa: BLE001 - malformed values must not stop an audit
            continue


def walk_elements(ds: Dataset, trail: Trail = (), vrs: frozenset[str] | None = None,
                  ) -> Iterator[tuple[Trail, DataElement]]:
    """Every element at every depth with its (sequence tag, item index) trail; with ``vrs``,
    only elements of those VRs (sequences are always walked)."""
    wanted = vrs | {"SQ"} if vrs is not None else None
    for element in elements(ds, wanted):
        yield trail, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                if isinstance(item, Dataset):
                    yield from walk_elements(item, trail + ((int(element.tag), index),), vrs)
