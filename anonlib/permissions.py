"""Folders and files that hold identified data or the re-identification key but that other users
can open: ``ANONLIB_HOME``, each Orthanc node's folder and storage, SQLite lookup stores.

New ones are created 0700/0600 (:func:`anonlib.settings.private_dir`,
:func:`anonlib.store.sqlite_file.create_private`), but an older anonlib made them 0755/0644 and
they keep that mode: this module finds them and, when asked, tightens them as
``chmod -R go-rwx`` would (issue 11). Group bits count too: a hospital's users' group is
usually everyone. The export folder is not checked: it is meant to be shared.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OPEN_BITS", "Exposed", "exposed", "tighten"]

OPEN_BITS = 0o077
"""Any permission for the group or for others."""


@dataclass(frozen=True)
class Exposed:
    """A folder or file other users may open, with its permission bits."""

    path: Path
    mode: int

    def line(self) -> str:
        """One line: the path, its mode and the fix."""
        return (f"{self.path} is mode {self.mode:04o} (open to other users): "
                f"run chmod -R go-rwx {self.path}")


def exposed(paths: Iterable[Path]) -> list[Exposed]:
    """The paths (existing ones; symbolic links followed) with a group or other permission bit,
    in the given order, leaving out those under an already listed folder (``chmod -R`` on that
    folder fixes them too)."""
    found: list[Exposed] = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:  # missing (not created yet) or unreadable: nothing to report
            continue
        if mode & OPEN_BITS and not any(path.is_relative_to(f.path) for f in found):
            found.append(Exposed(path, mode))
    return found


def tighten(path: Path) -> None:
    """``chmod -R go-rwx path``: clear the group and other bits of ``path`` and of everything
    under it; symbolic links are neither followed nor changed."""
    _clear(path)
    if not path.is_dir() or path.is_symlink():
        return
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            entry = Path(root) / name
            if not entry.is_symlink():
                _clear(entry)


def _clear(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & OPEN_BITS:
        os.chmod(path, mode & ~OPEN_BITS)
