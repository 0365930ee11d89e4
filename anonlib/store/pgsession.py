"""How every PostgreSQL connection anonlib opens behaves when the network or a client hangs.

A connection whose peer vanished (a cut cable, a frozen server, a NAT that forgot it) otherwise
waits forever: a worker stuck in a query never heartbeats again, and a server session left
idle inside a transaction keeps its locks. Each connection therefore carries libpq's TCP
keepalives, a TCP user timeout and a connect timeout (client side), and server-side session
settings: ``statement_timeout``, ``idle_in_transaction_session_timeout`` and the server's own
keepalives (so PostgreSQL drops a vanished client's session and its locks).

The lookup store's and the job tables' SQLAlchemy engines (:func:`anonlib.store.db.make_engine`)
and procrastinate's connectors (:func:`anonlib.jobs.app.make_app`) all take their parameters
from :func:`libpq_params`. A parameter given in the database URL's query string wins.

Environment variables (seconds, integers): ``ANONLIB_PG_CONNECT_TIMEOUT`` (10),
``ANONLIB_PG_KEEPALIVES_IDLE`` (30), ``ANONLIB_PG_KEEPALIVES_INTERVAL`` (10),
``ANONLIB_PG_KEEPALIVES_COUNT`` (3, a count), ``ANONLIB_PG_TCP_USER_TIMEOUT`` (60),
``ANONLIB_PG_STATEMENT_TIMEOUT`` (300), ``ANONLIB_PG_IDLE_IN_TRANSACTION_TIMEOUT`` (1800);
0 turns a timeout off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from anonlib.errors import ConfigError

__all__ = ["PgSessionSettings", "libpq_params"]

_ENV = {
    "connect_timeout": "ANONLIB_PG_CONNECT_TIMEOUT",
    "keepalives_idle": "ANONLIB_PG_KEEPALIVES_IDLE",
    "keepalives_interval": "ANONLIB_PG_KEEPALIVES_INTERVAL",
    "keepalives_count": "ANONLIB_PG_KEEPALIVES_COUNT",
    "tcp_user_timeout": "ANONLIB_PG_TCP_USER_TIMEOUT",
    "statement_timeout": "ANONLIB_PG_STATEMENT_TIMEOUT",
    "idle_in_transaction_timeout": "ANONLIB_PG_IDLE_IN_TRANSACTION_TIMEOUT",
}


@dataclass(frozen=True)
class PgSessionSettings:
    """Timeouts and keepalives of one connection (seconds, except ``keepalives_count``)."""

    connect_timeout: int = 10
    keepalives_idle: int = 30
    keepalives_interval: int = 10
    keepalives_count: int = 3
    tcp_user_timeout: int = 60
    statement_timeout: int = 300
    idle_in_transaction_timeout: int = 1800  # catch-up holds its lock's transaction idle over HTTP work

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PgSessionSettings:
        env = os.environ if env is None else env
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(_ENV[f.name], "").strip()
            if not raw:
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(f"{_ENV[f.name]} must be a whole number of seconds, not {raw!r}") from None
            if not 0 <= values[f.name] <= 86400:
                raise ConfigError(f"{_ENV[f.name]} must be between 0 and 86400")
        for name in ("keepalives_idle", "keepalives_interval", "keepalives_count"):
            if values.get(name, 1) == 0:
                raise ConfigError(f"{_ENV[name]} must be at least 1")
        return cls(**values)

    def params(self) -> dict[str, str]:
        """libpq connection parameters (``options`` carries the server-side settings)."""
        server = {
            "statement_timeout": f"{self.statement_timeout}s",
            "idle_in_transaction_session_timeout": f"{self.idle_in_transaction_timeout}s",
            "tcp_keepalives_idle": str(self.keepalives_idle),
            "tcp_keepalives_interval": str(self.keepalives_interval),
            "tcp_keepalives_count": str(self.keepalives_count),
        }
        return {
            "connect_timeout": str(self.connect_timeout),
            "keepalives": "1",
            "keepalives_idle": str(self.keepalives_idle),
            "keepalives_interval": str(self.keepalives_interval),
            "keepalives_count": str(self.keepalives_count),
            "tcp_user_timeout": str(self.tcp_user_timeout * 1000),
            "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
        }


def libpq_params(given: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parameters to add to a connection whose URL already sets ``given`` (its query
    string): :meth:`PgSessionSettings.params` from the environment, minus what ``given`` sets."""
    return {k: v for k, v in PgSessionSettings.from_env(env).params().items() if k not in (given or {})}
