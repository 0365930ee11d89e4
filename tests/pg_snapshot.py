"""Everything a PostgreSQL database holds, to prove that a dry run changed nothing: its
relations (tables, indexes, sequences) with their sizes, every row with its ``xmin`` (which an
UPDATE changes even when the values stay the same), and the sequences' positions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.fixtures.pg import _admin_engine

_RELATIONS = text("""
    SELECT n.nspname, c.relname, c.relkind::text, pg_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 1, 2""")


def _plain(value: Any) -> Any:
    return bytes(value).hex() if isinstance(value, (memoryview, bytes)) else value


def snapshot(url: str) -> dict[str, Any]:
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            relations = [tuple(r) for r in conn.execute(_RELATIONS)]
            rows = {f"{schema}.{name}": sorted(repr(tuple(map(_plain, r))) for r in conn.execute(
                        text(f'SELECT xmin::text, * FROM "{schema}"."{name}"')))
                    for schema, name, kind, _ in relations if kind == "r"}
            sequences = sorted(tuple(r) for r in conn.execute(
                text("SELECT schemaname, sequencename, last_value FROM pg_sequences")))
    finally:
        engine.dispose()
    return {"relations": relations, "rows": rows, "sequences": sequences}
