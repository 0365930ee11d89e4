"""Where de-identified instances go: folders (here), Orthanc nodes and DICOM nodes."""

from anonlib.sinks.folder import (
    FolderSink,
    ManifestRow,
    read_manifest,
    relative_path,
    write_manifest,
)

__all__ = ["FolderSink", "ManifestRow", "read_manifest", "relative_path", "write_manifest"]
