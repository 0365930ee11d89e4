"""Where an identifying value could hide in an output, read in one walk of its elements.

Every element at every depth (File Meta Information, sequences and private blocks included)
becomes one :class:`~anonlib.audit.matching.Scanned` place, named by its tag path:

* **text** — values pydicom decodes per SpecificCharacterSet (AE, DA, DT, LO, LT, PN, SH, ST,
  UC, UR, UT): words and dotted numbers are searched; the engine's placeholders (``[NAME]``,
  ``[ID]``, ``[REMOVED]``, ``[DATE]``, ``[EMAIL]``) and dummies (``ANONYMIZED``,
  ``ANONYMOUS``) are taken out first, so a value never matches inside them;
* **UIDs** (UI) — only dotted numbers are searched;
* **coded values** — CS values (ValueType, ImageType, Modality, ...), CodeValue,
  CodingSchemeDesignator and its version, long and URN code values, and the CodeMeaning of a
  code from a standard scheme (any designator but a private ``99...`` or a local ``L``): never
  searched; nor numbers (DS, IS, TM, AS) or binary numbers; nor DeidentificationMethod, the
  de-identifier's own words about its method and profile (an original department called
  "Default" is not leaked by "profile default");
* **blobs** — the bytes of private OB/OW/UN elements, any UN element, encapsulated documents,
  overlay data (60xx,3000), trailing padding, private File Meta information, any element that
  cannot be decoded, and the preamble: decoded as the output decodes its text (its
  SpecificCharacterSet, with ISO 2022 escape sequences) and searched like text, for values of 4
  characters or more. A value in a script that character set cannot encode can therefore never
  match there — it is never shortened to fit. Stretches of 4 KB that read as random (more than
  7 bits of entropy per byte: compressed or encrypted data, where text cannot be read) are left
  out, so that random bytes never happen to spell a name.

Image frames (Pixel Data, Float and Double Float Pixel Data) are not read: text does not hide in
them (burned-in text is the Safe Harbor scan's concern).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import numpy as np
from pydicom.charset import decode_bytes
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from anonlib.audit.matching import Scanned, scan
from anonlib.dicomvalues import format_path, is_standard_code

__all__ = ["places"]

_TEXT_VRS = frozenset({"AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "OB or OW", "US or OW"})
_CODED = frozenset({
    0x00080100,  # CodeValue
    0x00080102,  # CodingSchemeDesignator
    0x00080103,  # CodingSchemeVersion
    0x00080105,  # MappingResource
    0x00080106,  # ContextGroupVersion
    0x00080107,  # ContextGroupLocalVersion
    0x00080119,  # LongCodeValue
    0x00080120,  # URNCodeValue
    0x00120063,  # DeidentificationMethod: the de-identifier's own account of what it did
})
_CODE_MEANING = 0x00080104
_IMAGE_FRAMES = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_HIDING = frozenset({0x00420011, 0xFFFCFFFC, 0x00020102})  # document, padding, private meta
_CHUNK = 4096
_RANDOM_BITS = 7.0  # entropy per byte above which a stretch is taken for compressed or random data
_MASK = re.compile(r"\[(?:NAME|ID|REMOVED|DATE|EMAIL)\]|(?<![^\W_])(?i:ANONYMIZED|ANONYMOUS)(?![^\W_])")

Trail = tuple[tuple[int, int], ...]


def places(ds: Dataset) -> Iterator[Scanned]:
    """Every place of ``ds`` (read in full) to search, each tokenised once (see the module
    docstring)."""
    encodings = list(getattr(ds, "_character_set", None) or ["iso8859"])
    preamble = getattr(ds, "preamble", None)
    if preamble:
        yield _blob("preamble", preamble, encodings)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from _walk(meta, (), encodings)
    yield from _walk(ds, (), encodings)


def _walk(ds: Dataset, trail: Trail, encodings: list[str]) -> Iterator[Scanned]:
    for key in sorted(ds.keys()):
        tag = int(key)
        if tag in _IMAGE_FRAMES or tag & 0xFFFF == 0:
            continue
        try:
            element = ds[key]
        except Exception:  # noqa: BLE001 - an undecodable element: its bytes are searched
            raw = getattr(ds.get_item(key), "value", None)
            if isinstance(raw, bytes):
                yield _blob(format_path(trail, tag), raw, encodings)
            continue
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                if isinstance(item, Dataset):
                    yield from _walk(item, trail + ((tag, index),), encodings)
            continue
        found = _place(element, tag, trail, ds, encodings)
        if found is not None:
            yield found


def _place(element: DataElement, tag: int, trail: Trail, ds: Dataset, encodings: list[str]) -> Scanned | None:
    """The place of one element, or None when it is not searched (its path is formatted only
    for the places searched)."""
    value = element.value
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes):
        private = (tag >> 16) % 2 == 1
        overlay = (tag >> 16) & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x3000
        hiding = private or element.VR == "UN" or overlay or tag in _HIDING or element.VR not in _BINARY_VRS
        return _blob(format_path(trail, tag), value, encodings) if hiding else None
    vr = element.VR
    if vr == "UI":
        return scan(format_path(trail, tag), _text(value), words=False)
    if vr not in _TEXT_VRS or tag in _CODED or (tag == _CODE_MEANING and is_standard_code(ds)):
        return None
    return scan(format_path(trail, tag), _MASK.sub(" ", _text(value)))


def _text(value: object) -> str:
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _blob(path: str, blob: bytes, encodings: list[str]) -> Scanned:
    """A blob's readable stretches, decoded and tokenised (see the module docstring)."""
    return scan(path, "\x00".join(_decode(part, encodings) for part in _readable(blob)), blob=True)


def _readable(blob: bytes) -> list[bytes]:
    """``blob`` without its 4 KB stretches of random-looking bytes (consecutive readable
    stretches stay together)."""
    if len(blob) <= _CHUNK:
        return [blob]
    count = len(blob) // _CHUNK
    rows = np.frombuffer(blob, dtype=np.uint8, count=count * _CHUNK).reshape(count, _CHUNK)
    histogram = np.bincount((rows.astype(np.int64) + 256 * np.arange(count)[:, None]).ravel(),
                            minlength=256 * count).reshape(count, 256) / _CHUNK
    with np.errstate(divide="ignore", invalid="ignore"):
        bits = -np.nansum(histogram * np.log2(histogram), axis=1)
    keep = [bool(b <= _RANDOM_BITS) for b in bits] + [True]  # the tail (under 4 KB) is kept
    parts: list[bytes] = []
    start: int | None = None
    for index, readable in enumerate(keep):
        if readable and start is None:
            start = index
        elif not readable and start is not None:
            parts.append(blob[start * _CHUNK:index * _CHUNK])
            start = None
    if start is not None:
        parts.append(blob[start * _CHUNK:])
    return parts


def _decode(blob: bytes, encodings: list[str]) -> str:
    """Bytes decoded as the output decodes its text; undecodable bytes become separators."""
    try:
        if b"\x1b" not in blob:
            return blob.decode(encodings[0], errors="replace")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_bytes(blob, encodings, set())
    except (LookupError, UnicodeError, ValueError):
        return blob.decode("latin-1")
