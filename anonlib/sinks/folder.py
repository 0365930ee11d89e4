"""The organized output tree on disk, and its PHI-free manifest.

Layout: ``<pseudonym>/<shifted study date>_<study>/<series number>_<modality>/<SOP UID>.dcm``.
Every path component comes from the de-identified instance (pseudonym, shifted date, a digest of
the new Study Instance UID, series number, modality, new SOP Instance UID), never from input
file names. Writes are atomic (temporary file, then rename) and idempotent: identical bytes are
not rewritten, so a second run over the same input changes nothing.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path

from anonlib.errors import SinkError

__all__ = ["FolderSink", "ManifestRow", "write_manifest", "read_manifest", "relative_path", "update_manifest",
           "write_list"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ManifestRow:
    """One output file, described with de-identified values only."""

    path: str
    pseudonym: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    study_date: str
    series_number: str
    sha256: str
    status: str = "written"
    reason: str = ""


def _component(text: str, fallback: str) -> str:
    cleaned = _SAFE.sub("_", text.strip()).strip("._")
    return cleaned[:64] or fallback


def relative_path(pseudonym: str, study_date: str, study_uid: str, series_number: str,
                  modality: str, sop_uid: str) -> str:
    """The PHI-free relative path of one de-identified instance."""
    study = hashlib.sha256(study_uid.encode()).hexdigest()[:10]
    date = study_date if re.fullmatch(r"\d{8}", study_date or "") else "nodate"
    series = series_number if re.fullmatch(r"-?\d{1,12}", series_number or "") else "0"
    return "/".join([
        _component(pseudonym, "unknown"),
        f"{date}_{study}",
        f"{series}_{_component(modality.upper(), 'OT')}",
        f"{_component(sop_uid, 'instance')}.dcm",
    ])


class FolderSink:
    """Writes files under ``root`` atomically and idempotently."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, relative: str, data: bytes) -> str:
        """Write ``data`` at ``relative``; returns ``written``, ``unchanged`` or ``replaced``."""
        target = self.root / relative
        try:
            if target.exists():
                if target.stat().st_size == len(data) and target.read_bytes() == data:
                    return "unchanged"
                status = "replaced"
            else:
                status = "written"
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise SinkError(f"cannot write {relative}: {exc.strerror or type(exc).__name__}") from exc
        return status

    def remove(self, relative: str) -> bool:
        """Delete the file at ``relative`` if there is one (an instance that moved to the other
        tree, e.g. rejected after it was released); True when a file was deleted."""
        target = self.root / relative
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SinkError(f"cannot remove {relative}: {exc.strerror or type(exc).__name__}") from exc
        return True


def read_manifest(path: Path) -> dict[str, ManifestRow]:
    """The rows of an existing manifest, keyed by path (empty when there is none)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        names = {f.name for f in fields(ManifestRow)}
        return {row["path"]: ManifestRow(**{k: v for k, v in row.items() if k in names})
                for row in csv.DictReader(handle)}


def write_manifest(path: Path, rows: dict[str, ManifestRow]) -> None:
    """Write ``rows`` sorted by path, atomically; byte-identical when nothing changed."""
    names = [f.name for f in fields(ManifestRow)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # what csv.DictWriter writes, without asdict's deep copies
    writer.writerow(names)
    for key in sorted(rows):
        row = rows[key]
        writer.writerow([getattr(row, name) for name in names])
    FolderSink(path.parent).write(path.name, out.getvalue().encode("utf-8"))


def update_manifest(path: Path, rows: dict[str, ManifestRow], drop: Collection[str] = ()) -> None:
    """Merge ``rows`` into the manifest at ``path`` (and remove the rows of the paths in
    ``drop``) under an exclusive file lock, so that several workers delivering studies at once
    never lose each other's rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("." + path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            merged = read_manifest(path)
            merged.update(rows)
            for gone in drop:
                merged.pop(gone, None)
            write_manifest(path, merged)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_list(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """A CSV list of one run's inputs (rejected, in conflict), replaced whole by every run;
    nothing is created when there is nothing to list and no earlier list to empty."""
    if not rows and not path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    FolderSink(path.parent).write(path.name, out.getvalue().encode("utf-8"))
