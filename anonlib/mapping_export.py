"""The key as two CSV files for an authorised recipient: ``patid_mapping.csv`` and
``uid_mapping.csv``, each ``id_old,id_new`` (what the MIDI-B challenge's validation script reads).

They re-identify every patient and every UID the store recorded (studies, instances, and every
other UID the engine replaced), so they are
written only outside any output tree — never into a folder that is (or lies inside) a folder
run's output or quarantine (found by its ``manifest.csv`` / ``quarantine.csv``; the output's
default ``-quarantine`` sibling even before it exists) or the
constellation's export folder (``$ANONLIB_HOME/constellation.json``) — into a folder only its
owner can enter (0700) as files only the owner can read (0600). Each export is recorded in the
store's access log (how many entries, never a value) before anything is written.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from anonlib.errors import ConfigError
from anonlib.permissions import OPEN_BITS
from anonlib.reidentify import SUBSTITUTE_PREFIX
from anonlib.settings import write_private
from anonlib.store import AccessEntry, LookupStore

__all__ = ["HEADER", "OUTPUT_MARKERS", "PATID_FILE", "QUARANTINE_SUFFIX", "UID_FILE", "ExportResult", "export_mapping",
           "output_tree_of"]

PATID_FILE = "patid_mapping.csv"
UID_FILE = "uid_mapping.csv"
HEADER = ("id_old", "id_new")

OUTPUT_MARKERS = ("manifest.csv", "quarantine.csv")
"""Files at the root of a folder run's output and quarantine trees
(:data:`anonlib.pipeline.MANIFEST`, :data:`anonlib.pipeline.QUARANTINE_MANIFEST`)."""

QUARANTINE_SUFFIX = "-quarantine"
"""A folder run's default quarantine folder is its output folder's name with this suffix
(:attr:`anonlib.folder_run.RunSettings.quarantine_dir`)."""


@dataclass(frozen=True)
class ExportResult:
    """Where the mapping went and how many rows each file holds (patients without a PatientID
    of their own are left out: they have no original ID to map)."""

    folder: Path
    patients: int
    uids: int


def _constellation_export(env: Mapping[str, str] | None) -> Path | None:
    """The constellation's export folder, when ``$ANONLIB_HOME/constellation.json`` exists."""
    from anonlib.constellation.info import ConstellationInfo, info_path

    path = info_path(env)
    if not path.is_file():
        return None
    export = ConstellationInfo.load(path).export_dir  # ConfigError when unreadable: no guessing
    return Path(export).expanduser().resolve() if export else None


def output_tree_of(folder: Path, env: Mapping[str, str] | None = None) -> Path | None:
    """The output tree ``folder`` is (or lies inside), or None: a folder holding one of
    :data:`OUTPUT_MARKERS`, or the constellation's export folder."""
    target = folder.expanduser().resolve()
    for candidate in (target, *target.parents):
        if any((candidate / marker).is_file() for marker in OUTPUT_MARKERS):
            return candidate
        if candidate.name.endswith(QUARANTINE_SUFFIX) and len(candidate.name) > len(QUARANTINE_SUFFIX):
            run_output = candidate.with_name(candidate.name.removesuffix(QUARANTINE_SUFFIX))
            if (run_output / OUTPUT_MARKERS[0]).is_file():
                return candidate  # a run's default quarantine folder, even before anything is quarantined
    export = _constellation_export(env)
    if export is not None and (target == export or export in target.parents):
        return export
    return None


def _private_folder(folder: Path) -> None:
    """Create ``folder`` 0700 (its parents as the umask says); an existing one must already be
    closed to other users (it is not changed: it may be shared on purpose)."""
    if folder.is_dir():
        mode = folder.stat().st_mode & 0o7777
        if mode & OPEN_BITS:
            raise ConfigError(f"{folder} is mode {mode:04o} (open to other users): export into a new folder, "
                              f"or run chmod 700 {folder} first")
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _write_private(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    """``path`` holds the header and ``rows``, mode 0600, replaced atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    write_private(path, text.getvalue(), newline="")


def export_mapping(store: LookupStore, folder: Path, who: str,
                   env: Mapping[str, str] | None = None) -> ExportResult:
    """Write :data:`PATID_FILE` and :data:`UID_FILE` into ``folder``. Raises
    :class:`~anonlib.errors.ConfigError` for a folder inside an output tree or open to other
    users, :class:`~anonlib.errors.StoreError` when the store cannot be read or the access
    log cannot be written (then nothing is written)."""
    tree = output_tree_of(folder, env)
    if tree is not None:
        raise ConfigError(f"{folder} is inside the output tree {tree}: the mapping re-identifies it, so it must be "
                          "kept apart (choose a folder outside every output and export folder)")
    patients = [(key.patient_id, identity.pseudonym) for key, identity in store.patients()
                if not key.patient_id.startswith(SUBSTITUTE_PREFIX)]
    uids = store.uid_map()
    store.record_access(AccessEntry(who, "export", f"{PATID_FILE}, {UID_FILE}", len(patients) + len(uids)))
    target = folder.expanduser().resolve()
    _private_folder(target)
    _write_private(target / PATID_FILE, patients)
    _write_private(target / UID_FILE, uids)
    return ExportResult(target, len(patients), len(uids))
