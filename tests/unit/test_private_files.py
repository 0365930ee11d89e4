"""Identified data and the re-identification key are their owner's only, whatever the umask
(issue 11, item 1): ANONLIB_HOME (where the SQLite lookup store lives by default) and Orthanc
storage folders are created 0700; an SQLite lookup store file (``--db``) and its -wal/-shm 0600
when a writable open creates it; a read-only open creates nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from anonlib.audit.sources import open_lookup
from anonlib.errors import ConfigError
from anonlib.settings import anonlib_home, private_dir
from anonlib.store import open_store


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)  # the most permissive: nothing masked
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def any_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_is_0700(tmp_path: Path, open_umask: None) -> None:
    home = anonlib_home({"ANONLIB_HOME": str(tmp_path / "a" / "home")})
    assert _mode(home) == 0o700


def test_an_existing_folder_is_left_as_its_owner_set_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o750)
    assert _mode(private_dir(shared)) == 0o750


def test_a_new_sqlite_store_and_its_companions_are_0600(tmp_path: Path, any_umask: int) -> None:
    path = tmp_path / "lookup.sqlite3"
    with open_store(f"sqlite:///{path}") as store:
        store.secret()
        companions = {p.name: _mode(p) for p in tmp_path.iterdir() if p.name.startswith("lookup.sqlite3")}
        assert {"lookup.sqlite3", "lookup.sqlite3-wal", "lookup.sqlite3-shm"} <= set(companions)
        assert set(companions.values()) == {0o600}, {n: oct(m) for n, m in companions.items()}


def test_an_existing_sqlite_store_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "shared.sqlite3"
    with open_store(f"sqlite:///{path}") as store:
        store.secret()
    os.chmod(path, 0o640)
    with open_store(f"sqlite:///{path}") as store:
        store.secret()
    assert _mode(path) == 0o640


def test_a_read_only_open_of_a_missing_store_creates_nothing(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "missing.sqlite3"
    with open_store(f"sqlite:///{path}", readonly=True) as store:
        assert store.find_secret() is None
    with pytest.raises(ConfigError, match="missing.sqlite3: no such file"):
        open_lookup(f"sqlite:///{path}", use_default=False)
    assert list(tmp_path.iterdir()) == []


def test_a_worker_creates_private_files_whatever_the_umask(monkeypatch: pytest.MonkeyPatch,
                                                          open_umask: None) -> None:
    """`anonlib worker` (started by `constellation up`, docker or by hand) runs with umask 077:
    the spool, the export tree and its logs hold identified or re-identifying data."""
    import anonlib.jobs.runtime
    import anonlib.jobs.worker
    from anonlib.cli import main

    seen: list[int] = []

    async def fake_run_worker(_info: object, _settings: object) -> None:
        mask = os.umask(0)
        os.umask(mask)
        seen.append(mask)

    monkeypatch.setattr(anonlib.jobs.worker, "run_worker", fake_run_worker)
    monkeypatch.setattr(anonlib.jobs.runtime, "load_info", lambda: object())
    assert main(["worker"]) == 0
    assert seen == [0o077]
