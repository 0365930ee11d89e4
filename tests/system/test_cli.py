"""The ``anonlib`` command as a subprocess: the README's main job, its exit codes and output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def anonlib(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANONLIB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_example_data_then_deidentify(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = anonlib("example-data", str(tmp_path / "in"), home=home)
    assert made.returncode == 0, made.stderr
    assert "synthetic files" in made.stdout

    first = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "2", home=home)
    assert first.returncode == 0, first.stderr
    assert "2 quarantined, 4 rejected" in first.stdout
    assert first.stderr.count("rejected: ") == 4 and "empty file" in first.stderr
    assert (home / "lookup.sqlite3").exists()  # the key lives in ANONLIB_HOME, not in the output
    assert not list((tmp_path / "out").rglob("*.sqlite3"))
    assert (tmp_path / "out" / "manifest.csv").exists()

    second = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), home=home)
    assert second.returncode == 0 and "(0 written," in second.stdout

    strict = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--strict", home=home)
    assert strict.returncode == 1


def test_configuration_errors_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "in").mkdir()
    inside = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"),
                     "--db", f"sqlite:///{tmp_path}/out/key.sqlite3", home=home)
    assert inside.returncode == 2 and "re-identification key" in inside.stderr
    profile = tmp_path / "p.yaml"
    profile.write_text("options: [retain_everything]\n")
    bad = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--profile", str(profile), home=home)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
    missing = anonlib("deidentify", str(tmp_path / "nope"), str(tmp_path / "out"), home=home)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
