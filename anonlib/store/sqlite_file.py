"""SQLite plumbing shared by both SQLite stores, without SQLAlchemy: ``sqlite:///`` URLs, the
private store file, the connection settings (busy timeout, WAL, foreign keys) and the schema.

:class:`anonlib.store.lite.SqliteStore` (the default store, on the standard library's
``sqlite3``) and :class:`anonlib.store.sql.SqlStore` (SQLAlchemy, for PostgreSQL and any URL
the plain form below does not cover) use the same helpers, so a store file is the same
whichever opened it. Nothing here connects until a function is called.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from anonlib.permissions import OPEN_BITS, Exposed

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "configure_connection", "create_private", "enable_wal",
           "render_sqlite_url", "sqlite_database", "warn_if_open"]

SQLITE_BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite writer waits for another process's transaction before failing."""

#: ``sqlite://`` or ``sqlite:///DATABASE`` (pysqlite is SQLAlchemy's default SQLite driver), no
#: host, no query: the URLs :class:`~anonlib.store.lite.SqliteStore` opens. SQLAlchemy's parser
#: reads them the same way (database = the rest, percent-decoded).
_PLAIN = re.compile(r"sqlite(?:\+pysqlite)?://(?:/(?P<database>[^?]*))?")


def sqlite_database(url: str) -> str | None:
    """The database of a plain SQLite URL (``""`` for an in-memory one), or None when ``url``
    is anything else (PostgreSQL, another driver, a query string, not a URL)."""
    found = _PLAIN.fullmatch(url)
    if found is None:
        return None
    return unquote(found["database"] or "")


def render_sqlite_url(database: str) -> str:
    """``sqlite:///DATABASE``, quoted as SQLAlchemy's ``URL.render_as_string`` quotes it."""
    return "sqlite:///" + quote(database, safe=" +/")


def create_private(database: str | None) -> None:
    """Create a new SQLite store file readable by its owner only (0600, whatever the umask)
    before SQLite opens it: it holds the project secret and every patient's pseudonym. SQLite
    gives its -wal and -shm companions the main file's permissions. An existing file is left as
    its owner set it, with a warning (one line: path, mode, fix) when other users may open it;
    a missing folder or no permission is left for the connection to report."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        warn_if_open(database)
        return
    except OSError:  # cannot be created (connecting says why)
        return
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask: never more, maybe less
    finally:
        os.close(fd)


def warn_if_open(database: str) -> None:
    """Log a warning when an existing store file is open to the group or others (an older
    anonlib created them 0644): it holds the re-identification key."""
    try:
        mode = os.stat(database).st_mode & 0o7777
    except OSError:
        return
    if mode & OPEN_BITS:
        logging.getLogger(__name__).warning("lookup store %s", Exposed(Path(database), mode).line())


def enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once. The switch needs an exclusive lock and SQLite may answer
    SQLITE_BUSY at once, without waiting on the busy timeout, while another process opens the
    same new file; so the switch is skipped when already done and otherwise retried."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def configure_connection(connection: sqlite3.Connection) -> None:
    """Autocommit mode (the stores emit ``BEGIN`` themselves), the busy timeout, WAL and
    enforced foreign keys: the settings of every writing connection to a store file."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    enable_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
