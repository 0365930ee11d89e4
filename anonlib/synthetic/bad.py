"""Files an input stage must reject: not DICOM, empty, truncated, garbage after the preamble.

pydicom reads truncated files leniently (it stops at the end of the data and returns what it
has), so the truncation point is chosen where decoding the elements fails, not merely where the
file ends: a reader that touches every element, as a de-identifier must, cannot use the file.
"""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

from pydicom import dcmread

__all__ = ["write_bad_files", "strictly_readable"]


def strictly_readable(data: bytes) -> bool:
    """Whether pydicom can read ``data`` *and* decode every element, and it is an instance
    (SOP Class and Instance UIDs present)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(io.BytesIO(data))
            for elem in ds.iterall():
                _ = elem.value
            return bool(ds.get("SOPClassUID")) and bool(ds.get("SOPInstanceUID"))
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return False


def _truncation_point(data: bytes) -> int:
    """The first offset from the middle of the dataset's header where the cut leaves an
    element that cannot be decoded."""
    pixel_data = data.rfind(b"\xe0\x7f\x10\x00")
    start = (132 + (pixel_data if pixel_data > 0 else len(data))) // 2
    for cut in range(start, len(data)):
        if not strictly_readable(data[:cut]):
            return cut
    raise AssertionError("no truncation point makes this file unreadable")


def write_bad_files(folder: Path, source: Path, rng: random.Random) -> list[Path]:
    """Write the four bad files into ``folder``; ``source`` is a valid DICOM file to truncate.

    Returns their paths in a fixed order: text, empty, truncated, garbage.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{n:03d}.dcm" for n in range(1, 5)]
    paths[0].write_text("Export log: 17 studies sent, 0 failed.\n", encoding="ascii")
    paths[1].write_bytes(b"")
    data = source.read_bytes()
    paths[2].write_bytes(data[: _truncation_point(data)])
    garbage = bytes(rng.randrange(256) for _ in range(700))
    paths[3].write_bytes(b"\0" * 128 + b"DICM" + garbage)
    return paths
