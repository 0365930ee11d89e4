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


# -- folders and files an older anonlib left open (0755/0644) ---------------------------------

def _old_home(tmp_path: Path) -> Path:
    """An ANONLIB_HOME as an older anonlib left it: folders 0755, files 0644."""
    home = tmp_path / "home"
    storage = home / "intake" / "storage"
    storage.mkdir(parents=True)
    (storage / "00").mkdir()
    (storage / "00" / "instance").write_bytes(b"identified")
    (home / "lookup.sqlite3").write_bytes(b"")
    for folder in (home, home / "intake", storage, storage / "00"):
        os.chmod(folder, 0o755)
    for file in (storage / "00" / "instance", home / "lookup.sqlite3"):
        os.chmod(file, 0o644)
    return home


def _constellation(monkeypatch: pytest.MonkeyPatch, home: Path, capsys: pytest.CaptureFixture[str],
                   *argv: str) -> tuple[int, str]:
    from anonlib.cli import main

    monkeypatch.setenv("ANONLIB_HOME", str(home))
    code = main(["constellation", *argv])
    return code, capsys.readouterr().err


class _Started(Exception):
    """Raised where `up` would start installing packages: the permission check let it pass."""


def test_up_refuses_a_home_open_to_others_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import anonlib.constellation.manage as manage

    def started(_settings: object) -> None:
        raise _Started

    monkeypatch.setattr(manage, "ensure_packages", started)
    home = _old_home(tmp_path)
    code, err = _constellation(monkeypatch, home, capsys, "up")
    assert code == 2
    lines = err.splitlines()
    # one line for the home (chmod -R on it covers the node folder, storage and store under it)
    assert lines[0] == (f"anonlib: configuration error: {home} is mode 0755 (open to other users): "
                        f"run chmod -R go-rwx {home}")
    assert "--fix-permissions" in lines[1] and len(lines) == 2
    assert _mode(home) == 0o755 and _mode(home / "lookup.sqlite3") == 0o644  # left as they were


def test_up_refuses_a_node_folder_open_to_others_under_a_private_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import anonlib.constellation.manage as manage

    monkeypatch.setattr(manage, "ensure_packages", lambda _s: (_ for _ in ()).throw(_Started()))
    home = _old_home(tmp_path)
    os.chmod(home, 0o700)
    os.chmod(home / "intake", 0o700)
    code, err = _constellation(monkeypatch, home, capsys, "up")
    assert code == 2
    storage = home / "intake" / "storage"
    assert f"{storage} is mode 0755 (open to other users): run chmod -R go-rwx {storage}" in err
    assert f"{home / 'lookup.sqlite3'} is mode 0644" in err


def test_up_with_fix_permissions_tightens_everything_then_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import anonlib.constellation.manage as manage

    monkeypatch.setattr(manage, "ensure_packages", lambda _s: (_ for _ in ()).throw(_Started()))
    home = _old_home(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o755)
    (home / "link").symlink_to(outside)
    with pytest.raises(_Started):
        _constellation(monkeypatch, home, capsys, "up", "--fix-permissions")
    assert f"tightened {home} (was mode 0755)" in capsys.readouterr().err
    modes = {str(p.relative_to(home)): _mode(p) for p in home.rglob("*") if not p.is_symlink()}
    assert modes == {"intake": 0o700, "intake/storage": 0o700, "intake/storage/00": 0o700,
                     "intake/storage/00/instance": 0o600, "lookup.sqlite3": 0o600}
    assert _mode(home) == 0o700
    assert _mode(outside) == 0o755  # a symbolic link is not followed


def test_status_warns_and_fails_on_a_home_open_to_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    import anonlib.cli
    import anonlib.constellation.manage as manage

    monkeypatch.setattr(manage, "status", lambda _s: (SimpleNamespace(db_url=""), [], []))  # all healthy
    monkeypatch.setattr(anonlib.cli, "_print_held", lambda _url: None)
    home = _old_home(tmp_path)
    code, err = _constellation(monkeypatch, home, capsys, "status")
    assert code == 1
    assert err == f"anonlib: warning: {home} is mode 0755 (open to other users): run chmod -R go-rwx {home}\n"
    assert _mode(home) == 0o755  # status changes nothing
    os.chmod(home, 0o700)
    os.chmod(home / "intake", 0o700)
    os.chmod(home / "intake" / "storage", 0o700)
    os.chmod(home / "lookup.sqlite3", 0o600)
    code, err = _constellation(monkeypatch, home, capsys, "status")
    assert (code, err) == (0, "")


@pytest.mark.parametrize("readonly", [False, True], ids=["writable", "readonly"])
def test_opening_a_store_open_to_others_warns_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          readonly: bool) -> None:
    path = tmp_path / "old.sqlite3"
    with open_store(f"sqlite:///{path}") as store:
        store.secret()
    os.chmod(path, 0o600)
    with caplog.at_level("WARNING"), open_store(f"sqlite:///{path}", readonly=readonly) as store:
        store.find_secret()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    os.chmod(path, 0o644)
    with caplog.at_level("WARNING"), open_store(f"sqlite:///{path}", readonly=readonly) as store:
        store.find_secret()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"lookup store {path} is mode 0644 (open to other users): run chmod -R go-rwx {path}"]
    assert _mode(path) == 0o644  # warned, not changed
