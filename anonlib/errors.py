"""The one exception tree of anonlib.

Library code raises these; driver errors (SQLAlchemy, pydicom, HTTP) are translated at the
boundary with ``raise ... from exc``. Exit codes are decided only in :mod:`anonlib.cli`.
No message may carry an identifying value read from a DICOM file.
"""

from __future__ import annotations

__all__ = [
    "AnonlibError",
    "ConfigError",
    "StandardDataError",
    "InputError",
    "DeidentificationError",
    "StoreError",
    "SinkError",
    "PixelError",
]


class AnonlibError(Exception):
    """Base class of every error anonlib raises on purpose."""


class ConfigError(AnonlibError):
    """A profile, option or setting is invalid; raised when it is loaded, before any work."""


class StandardDataError(AnonlibError):
    """A bundled standard table is missing, altered (checksum) or malformed."""


class InputError(AnonlibError):
    """An input file cannot be used (not DICOM, empty, truncated, unparsable).

    ``source`` names the file as the operator gave it; ``reason`` says why, without any value
    read from the file.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class DeidentificationError(AnonlibError):
    """The engine cannot de-identify an instance conformantly (for example an unknown action)."""


class StoreError(AnonlibError):
    """The lookup store failed or holds inconsistent data."""


class SinkError(AnonlibError):
    """Writing or delivering de-identified output failed."""


class PixelError(AnonlibError):
    """Pixels could not be decoded, rendered, read by OCR or re-encoded. The message says why in
    words (the transfer syntax, the engine) and never holds a value from the data."""
