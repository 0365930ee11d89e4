"""One study's folder of the organized tree, replaced whole at once.

The study job writes a study to the export folder only after research verified it, and never as
a half-written folder: each study folder (``<pseudonym>/<date>_<study>/``, the first two
components of :func:`~anonlib.sinks.folder.relative_path`) is built in a temporary folder beside
it — the files already delivered hard-linked in, the new ones written and fsynced, minus the
instances that moved to the other tree — and then swapped in with one ``rename`` (Linux
``renameat2(RENAME_EXCHANGE)`` when the folder exists, so a reader sees the old study or the new
one, never a mix or nothing). Leftovers of a crash (``.tmp-*``, ``.old-*`` beside the folder)
are removed the next time the study is written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

from anonlib.errors import SinkError

__all__ = ["write_studies"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _study_of(relative: str) -> tuple[str, str]:
    parts = relative.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
        raise SinkError(f"not a path of the organized tree: {relative}")
    return parts[0], parts[1]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (``renameat2`` with ``RENAME_EXCHANGE``); False where the
    system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this file system or kernel
        return False
    raise OSError(errno, os.strerror(errno), str(second))


def _clean_leftovers(parent: Path, name: str) -> None:
    for stale in list(parent.glob(f".tmp-{name}-*")) + list(parent.glob(f".old-{name}-*")):
        shutil.rmtree(stale, ignore_errors=True)


def _unchanged(target: Path, files: Mapping[str, bytes], drop: Collection[str]) -> bool:
    if not target.is_dir() or any((target / inner).exists() for inner in drop):
        return False
    for inner, data in files.items():
        path = target / inner
        if not path.is_file() or path.stat().st_size != len(data) or path.read_bytes() != data:
            return False
    return True


def _build(parent: Path, name: str, target: Path, files: Mapping[str, bytes], drop: Collection[str]) -> Path:
    """The study's new folder, complete and on disk, beside ``target``."""
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent))
    os.chmod(staging, 0o777 & ~_umask())  # as a folder made by mkdir (mkdtemp makes it 0700)
    if target.is_dir():
        for old in target.rglob("*"):
            inner = old.relative_to(target).as_posix()
            if old.is_dir() or inner in files or inner in drop or old.name.startswith(".tmp-"):
                continue
            (staging / inner).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(old, staging / inner)
            except OSError:
                shutil.copy2(old, staging / inner)
    for inner, data in files.items():
        path = staging / inner
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            handle.write(data)  # 0600, as FolderSink's files
            handle.flush()
            os.fsync(handle.fileno())
    for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _fsync(folder)
    _fsync(staging)
    return staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_in(staging: Path, target: Path) -> None:
    parent = target.parent
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now the old folder
    else:  # no atomic exchange here: the folder is missing for a moment, never half-written
        old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=parent))
        os.rename(target, old / "study")
        os.rename(staging, target)
        shutil.rmtree(old)
    _fsync(parent)


def write_studies(root: Path, files: Mapping[str, bytes], drop: Collection[str] = ()) -> None:
    """Write ``files`` (relative path -> bytes) under ``root``, one whole study folder at a
    time (see the module docstring); ``drop``: relative paths to leave out of their study
    folders (instances that moved to the other tree). A study folder left empty is removed.
    A study whose files are all there already, identical, is not touched."""
    groups: dict[tuple[str, str], tuple[dict[str, bytes], set[str]]] = {}
    for relative, data in files.items():
        first, second = _study_of(relative)
        groups.setdefault((first, second), ({}, set()))[0][relative.split("/", 2)[2]] = data
    for relative in drop:
        first, second = _study_of(relative)
        if (root / relative).exists():
            groups.setdefault((first, second), ({}, set()))[1].add(relative.split("/", 2)[2])
    for (first, second), (inner_files, inner_drop) in sorted(groups.items()):
        parent = root / first
        target = parent / second
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _clean_leftovers(parent, second)
            if _unchanged(target, inner_files, inner_drop):
                continue
            staging = _build(parent, second, target, inner_files, inner_drop)
            if not any(p.is_file() for p in staging.rglob("*")):
                shutil.rmtree(staging)
                if target.exists():
                    _swap_out(target)
                continue
            _swap_in(staging, target)
        except OSError as exc:
            _clean_leftovers(parent, second)
            raise SinkError(f"cannot write study folder {first}/{second}: "
                            f"{exc.strerror or type(exc).__name__}") from exc


def _swap_out(target: Path) -> None:
    old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
    os.rename(target, old / "study")
    shutil.rmtree(old)
    _fsync(target.parent)
