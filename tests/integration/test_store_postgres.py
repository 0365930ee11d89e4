"""The lookup store on a real PostgreSQL: the contract, process races, and proof that
``sql/schema.sql`` (the truth) and ``anonlib.store.tables`` build the same schema."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from anonlib.errors import StoreError
from anonlib.store import LookupStore, PatientKey, PseudonymPolicy, SqlStore
from anonlib.store.db import make_engine
from anonlib.store.rules import DEFAULT_POLICY
from anonlib.store.tables import SCHEMA_LOCK_KEY, SCHEMA_VERSION, metadata, schema_version
from tests.unit.test_store import Opener, StoreContract, check_race, drop_all_tables

pytestmark = pytest.mark.integration

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "sql" / "schema.sql"


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def opener(self, pg_url: str, closing: list[LookupStore]) -> Opener:
        def open_(policy: PseudonymPolicy = DEFAULT_POLICY) -> LookupStore:
            closing.append(SqlStore(pg_url, policy))
            return closing[-1]

        return open_

    @pytest.fixture
    def breaker(self, pg_url: str) -> Callable[[LookupStore], None]:
        return lambda store: drop_all_tables(pg_url)


def test_processes_race_for_the_same_identities(pg_url: str) -> None:
    SqlStore(pg_url).close()  # schema exists; only the identities are raced for
    check_race(pg_url, open_together=False)


@pytest.mark.parametrize("round_", range(3))
def test_processes_race_to_create_schema_secret_and_identities(pg_url: str, round_: int) -> None:
    check_race(pg_url, open_together=True)


def test_explicit_psycopg2_url(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://")  # the bare form is what the other tests use
    with SqlStore(pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)) as store:
        assert len(store.secret()) == 32


def test_unreachable_database_is_a_store_error(pg_url: str) -> None:
    missing = re.sub(r"/anonlib_test_\w+$", "/anonlib_test_does_not_exist", pg_url)
    with pytest.raises(StoreError, match="could not open the lookup store"):
        SqlStore(missing)


# --- schema.sql is the truth ---------------------------------------------------------------


def apply_schema_sql(url: str) -> None:
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
        cursor.close()
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def _squash(sql: str | None) -> str | None:
    return None if sql is None else re.sub(r"\s+", " ", sql).strip()


def describe(url: str) -> dict[str, Any]:
    """Everything about the schema that the two builds must agree on."""
    engine = make_engine(url)
    inspector = inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        columns = [
            (
                c["name"],
                c["type"].compile(dialect=engine.dialect),
                c["nullable"],
                _squash(c.get("default")),
                c.get("identity"),
                c.get("comment"),
            )
            for c in inspector.get_columns(name)
        ]
        pk = inspector.get_pk_constraint(name)
        tables[name] = {
            "columns": columns,
            "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "foreign_keys": sorted(
                (
                    f["name"],
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    tuple(sorted(f["options"].items())),
                )
                for f in inspector.get_foreign_keys(name)
            ),
            "checks": sorted(
                (c["name"], _squash(c["sqltext"])) for c in inspector.get_check_constraints(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"])
                for i in inspector.get_indexes(name)
            ),
            "comment": inspector.get_table_comment(name)["text"],
        }
    with engine.connect() as conn:
        versions = conn.execute(select(schema_version.c.version)).scalars().all()
    engine.dispose()
    return {"tables": tables, "versions": versions}


def test_schema_sql_and_tables_build_the_same_schema(
    pg_new_database: Callable[[], str],
) -> None:
    from_sql, from_code = pg_new_database(), pg_new_database()
    apply_schema_sql(from_sql)
    SqlStore(from_code).close()
    expected, actual = describe(from_sql), describe(from_code)
    assert set(expected["tables"]) == {t.name for t in metadata.sorted_tables}
    for name in expected["tables"]:
        assert actual["tables"][name] == expected["tables"][name], name
    assert actual == expected
    assert expected["versions"] == [SCHEMA_VERSION]
    checks = expected["tables"]["anonlib_patient"]["checks"]
    assert ("anonlib_patient_date_shift_days_check", "date_shift_days <> 0") in checks


def test_schema_sql_is_idempotent_and_the_store_opens_on_it(pg_url: str) -> None:
    apply_schema_sql(pg_url)
    apply_schema_sql(pg_url)
    before = describe(pg_url)
    with SqlStore(pg_url) as store:
        identity = store.patient(PatientKey("1"))
        assert len(store.secret()) == 32
    assert describe(pg_url) == before
    with SqlStore(pg_url) as store:
        assert store.find_patient(PatientKey("1")) == identity


def test_schema_sql_names_the_same_lock_and_version() -> None:
    sql = SCHEMA_SQL.read_text(encoding="utf-8")
    assert f"pg_advisory_xact_lock({SCHEMA_LOCK_KEY})" in sql
    assert f"anonlib_schema_version (version) VALUES ({SCHEMA_VERSION})" in sql
    assert re.findall(r"CREATE TABLE (?!IF NOT EXISTS)", sql) == []


def test_newer_schema_is_refused(pg_url: str) -> None:
    SqlStore(pg_url).close()
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO anonlib_schema_version (version) VALUES (99)"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99"):
        SqlStore(pg_url)
