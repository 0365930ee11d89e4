"""Fast DICOM file I/O: header-only parsing, pixel bytes copied through, completeness checks."""

from anonlib.dicomio.files import (
    ParsedInstance,
    encode_instance,
    parse_instance,
    quiet_pydicom,
    read_instance,
)

__all__ = ["ParsedInstance", "encode_instance", "parse_instance", "quiet_pydicom", "read_instance"]
