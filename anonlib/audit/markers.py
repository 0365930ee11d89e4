"""Reading a few elements of a DICOM file's header cheaply, and the profile anonlib names in
its de-identification marker (DeidentificationMethod ``profile NAME FINGERPRINT``).

Only a short name of plain characters is taken from the marker, nothing else from the data.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial

from anonlib.dicomvalues import strings_of

__all__ = ["READ_ERRORS", "SOP_INSTANCE_UID", "DEIDENTIFICATION_METHOD", "header", "profile_marker",
           "file_profile_marker", "profile_name"]

SOP_INSTANCE_UID = 0x00080018
DEIDENTIFICATION_METHOD = 0x00120063
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # where dcmread's stop_before_pixels stops
READ_ERRORS = (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError)
_PROFILE = re.compile(r"^profile (?P<name>[\w .+-]{1,48}?)(?: [0-9a-f]{4,16})?$", re.ASCII)


def header(data: bytes | Path, tag: int) -> Any:
    """The header of ``data`` with element ``tag`` only, read up to ``tag`` (a few hundred
    bytes); when it is not there (elements out of order) or that read fails, read up to the
    pixel data, as before. None when the file cannot be read."""
    for stop in (lambda at, vr, length: at > tag, lambda at, vr, length: at in _PIXEL_TAGS):
        try:
            with (open(data, "rb") if isinstance(data, Path) else io.BytesIO(data)) as source:
                ds = read_partial(source, stop, force=True, specific_tags=[tag])
        except READ_ERRORS:
            ds = None
        if ds is not None and tag in ds and ds.get_item(tag).value:
            return ds
    return ds


def profile_marker(ds: Dataset | None) -> str:
    """The profile name anonlib wrote into ``ds``'s DeidentificationMethod ("" when none)."""
    try:
        items = strings_of(ds.get("DeidentificationMethod")) if ds is not None else []
    except READ_ERRORS:
        return ""
    for item in items:
        match = _PROFILE.match(item.strip())
        if match:
            return match["name"].strip()
    return ""


def file_profile_marker(data: bytes | Path) -> str:
    """:func:`profile_marker` of a file, reading its header up to the marker."""
    try:
        return profile_marker(header(data, DEIDENTIFICATION_METHOD))
    except READ_ERRORS:
        return ""


def profile_name(names: Counter[str]) -> str:
    """The profile the outputs name (``names``: marker → outputs): one name, ``a, b (mixed)``
    for several, ``unknown`` for none."""
    known = [name for name, _ in names.most_common() if name]
    if not known:
        return "unknown"
    return known[0] if len(known) == 1 and not names[""] else ", ".join(known[:5]) + " (mixed)"
