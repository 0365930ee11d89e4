"""Identified data and the re-identification key are their owner's only, whatever the umask
(issue 11, item 1): ANONLIB_HOME (where the SQLite lookup store lives by default) and Orthanc
storage folders are created 0700."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from anonlib.settings import anonlib_home, private_dir


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)  # the most permissive: nothing masked
    try:
        yield
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
