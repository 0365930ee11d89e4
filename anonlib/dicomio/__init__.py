"""Fast DICOM file I/O: header-only parsing, pixel bytes copied through, completeness checks,
and the limits an instance must keep before it is parsed at all."""

from anonlib.dicomio.files import (
    DEFAULT_LIMITS,
    ParsedInstance,
    check_instance,
    encode_instance,
    parse_instance,
    quiet_pydicom,
    read_instance,
)
from anonlib.dicomio.limits import Limits

__all__ = ["DEFAULT_LIMITS", "Limits", "ParsedInstance", "check_instance", "encode_instance", "parse_instance",
           "quiet_pydicom", "read_instance"]
