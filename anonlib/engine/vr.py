"""The VR an element will have once pydicom decodes it — without decoding it when possible."""

from __future__ import annotations

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

__all__ = ["element_vr"]


def element_vr(ds: Dataset, tag: int) -> str:
    """The element's VR. A raw explicit VR is trusted except ``UN``: for a public tag pydicom
    replaces UN by the dictionary VR when the value is decoded (a sequence written as UN is a
    sequence), so the engine must treat it as that VR too — or it would skip the UIDs inside."""
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    if (tag >> 16) % 2:  # private: never decoded just to learn its VR
        return str(vr) if vr else ("SQ" if getattr(raw, "length", 0) == 0xFFFFFFFF else "UN")
    try:
        known = dictionary_VR(tag)
    except KeyError:
        known = None
    if known and " or " not in known:
        return str(known)
    return str(ds[tag].VR)  # ambiguous (US or SS, OB or OW...) or private: let pydicom decide
