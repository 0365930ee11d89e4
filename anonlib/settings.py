"""Where anonlib keeps its own state on this machine.

Only small, side-effect-light helpers live here for now; the frozen settings object built at
the entry point will join them. Nothing here runs at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["anonlib_home", "private_dir", "private_umask", "write_private"]


def anonlib_home(create: bool = True, env: Mapping[str, str] | None = None) -> Path:
    """The directory holding anonlib's state (the default lookup store lives here).

    ``$ANONLIB_HOME`` if set and non-empty; otherwise ``$XDG_DATA_HOME/anonlib`` when
    ``XDG_DATA_HOME`` is an absolute path (the XDG spec says to ignore relative ones); otherwise
    ``~/.local/share/anonlib``. With ``create`` (the default) the directory is created, readable
    only by its owner, because it holds the re-identification key. The variables are read from
    ``env`` (default: ``os.environ``).
    """
    env = os.environ if env is None else env
    explicit = env.get("ANONLIB_HOME", "")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
        home = base / "anonlib"
    if create:
        private_dir(home)
    return home


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (0700, whatever the umask) when this call
    creates it (parents as the umask says); an existing folder is left as its owner set it."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str, *, newline: str | None = None) -> None:
    """``text`` into ``path``, mode 0600 whatever the umask, replaced atomically: a reader sees
    the old content or the new, never a part. The temporary file beside it is new (never a link
    followed) and removed if the write fails."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created inside are their owner's only (umask 077), whatever the
    process's umask was; it is restored afterwards. For entry points only (the umask is
    process-wide)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
