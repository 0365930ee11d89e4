"""What the parts mixed into :class:`anonlib.store.sql.SqlStore` use of it: its transactions,
its reads and its read-only check (so that every error leaves as a PHI-free
:class:`~anonlib.errors.StoreError`). Declared once here; ``SqlStore`` provides them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Select, Table

__all__ = ["SqlPart"]


class SqlPart:
    """Base of the SQL store's parts (:class:`~anonlib.store.sql_keys.KeyAccessSql`,
    :class:`~anonlib.store.sql_pixels.PixelReviewSql`)."""

    def _transaction(self, what: str, *, write: bool = True) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # provided by SqlStore

    def _rows(self, what: str, table: Table, query: Select[Any]) -> list[Any]:
        raise NotImplementedError  # provided by SqlStore

    def _check_writable(self, what: str) -> None:
        raise NotImplementedError  # provided by SqlStore
