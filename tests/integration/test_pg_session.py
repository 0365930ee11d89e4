"""Every PostgreSQL connection anonlib opens carries keepalives and timeouts
(:mod:`anonlib.store.pgsession`): read back on live connections of each kind — the SQLAlchemy
engines (lookup store, job tables), procrastinate's psycopg 3 connector (the worker) and its
psycopg2 connector (CLI, catch-up, plugin) — from ``SHOW``, ``pg_settings`` and libpq."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from anonlib.errors import ConfigError
from anonlib.jobs.app import make_app
from anonlib.jobs.db import JobsDb
from anonlib.store.db import make_engine
from anonlib.store.pgsession import PgSessionSettings, libpq_params

pytestmark = pytest.mark.integration

SHOW = ("statement_timeout", "idle_in_transaction_session_timeout", "tcp_keepalives_idle",
        "tcp_keepalives_interval", "tcp_keepalives_count")
DEFAULTS = {"statement_timeout": "5min", "idle_in_transaction_session_timeout": "30min",
            "tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}
CLIENT = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
          "tcp_user_timeout": "60000", "connect_timeout": "10"}
SETTINGS_SQL = "SELECT name, setting, source FROM pg_settings WHERE name = ANY(:names)"


def _show(conn) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {name: conn.execute(text(f"SHOW {name}")).scalar() for name in SHOW}


def test_engine_sessions_carry_timeouts_and_keepalives(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert _show(conn) == DEFAULTS
            # set for this session by the client, not inherited from the server's defaults
            sources = {r.name: r.source for r in conn.execute(text(SETTINGS_SQL), {"names": list(SHOW)})}
            assert set(sources.values()) == {"client"}, sources
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert {k: dsn.get(k) for k in CLIENT} == CLIENT
            # the settings really act: a statement past the timeout is cancelled
            conn.execute(text("SET statement_timeout = '100ms'"))
            with pytest.raises(Exception, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        engine.dispose()


def test_environment_configures_and_url_wins(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONLIB_PG_STATEMENT_TIMEOUT", "7")
    monkeypatch.setenv("ANONLIB_PG_IDLE_IN_TRANSACTION_TIMEOUT", "0")
    monkeypatch.setenv("ANONLIB_PG_KEEPALIVES_IDLE", "12")
    db = JobsDb(pg_url + "?connect_timeout=4")
    try:
        with db._begin("test") as conn:
            shown = _show(conn)
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
    finally:
        db.close()
    assert shown["statement_timeout"] == "7s" and shown["idle_in_transaction_session_timeout"] == "0"
    assert shown["tcp_keepalives_idle"] == "12" and dsn["keepalives_idle"] == "12"
    assert dsn["connect_timeout"] == "4"  # the URL's own parameter is kept


def test_procrastinate_connectors_carry_them(pg_url: str) -> None:
    query = "SELECT current_setting('statement_timeout') AS st, " \
            "current_setting('idle_in_transaction_session_timeout') AS idle, " \
            "current_setting('tcp_keepalives_idle') AS ka, " \
            "(SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS seen"
    expected = {"st": "5min", "idle": "30min", "ka": "30", "seen": 1}
    with make_app(pg_url, sync=True).open() as app:
        assert dict(app.connector.execute_query_one(query)) == expected

    async def run() -> dict[str, object]:
        app = make_app(pg_url)
        async with app.open_async():
            row = dict(await app.connector.execute_query_one_async(query))
            async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
                row["client"] = conn.info.get_parameters()
        return row

    row = asyncio.run(run())
    client = row.pop("client")
    assert row == expected
    assert {k: client.get(k) for k in CLIENT} == CLIENT  # type: ignore[attr-defined]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="ANONLIB_PG_STATEMENT_TIMEOUT"):
        PgSessionSettings.from_env({"ANONLIB_PG_STATEMENT_TIMEOUT": "5s"})
    with pytest.raises(ConfigError, match="ANONLIB_PG_KEEPALIVES_COUNT"):
        PgSessionSettings.from_env({"ANONLIB_PG_KEEPALIVES_COUNT": "0"})
    assert "options" not in libpq_params({"options": "-c x=1"}, env={})
