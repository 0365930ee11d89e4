"""The ``anonlib`` command as a subprocess: the README's main job, its exit codes and output."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

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
    assert "1 quarantined, 4 rejected" in first.stdout  # the ultrasound (a face); the SC's banner is masked
    assert first.stderr.count("rejected: ") == 4 and "empty file" in first.stderr
    assert (home / "lookup.sqlite3").exists()  # the key lives in ANONLIB_HOME, not in the output
    assert not list((tmp_path / "out").rglob("*.sqlite3"))
    assert (tmp_path / "out" / "manifest.csv").exists()

    second = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), home=home)
    assert second.returncode == 0 and "; 0 written," in second.stdout and ", 0 replaced" in second.stdout

    strict = anonlib("deidentify", str(tmp_path / "in"), str(tmp_path / "out"), "--strict", home=home)
    assert strict.returncode == 1


def test_files_sharing_a_sop_uid_are_reported_never_overwritten(tmp_path: Path) -> None:
    """pydicom's rtdose.dcm (15 frames) and rtdose_1frame.dcm share a SOP Instance UID: the
    first is de-identified, the second is a conflict, an identical copy a duplicate."""
    home, src, out = tmp_path / "home", tmp_path / "in", tmp_path / "out"
    (src / "resent").mkdir(parents=True)
    for name in ("rtdose.dcm", "rtdose_1frame.dcm"):
        shutil.copy(str(get_testdata_file(name)), src / name)
    shutil.copy(src / "rtdose.dcm", src / "resent" / "rtdose.dcm")

    first = anonlib("deidentify", str(src), str(out), "--workers", "2", "--strict", home=home)
    assert first.returncode == 1, first.stderr  # a conflict fails --strict
    assert ("3 files: 1 de-identified, 0 quarantined, 0 rejected, 1 conflicts, 1 duplicates; "
            "1 written, 0 unchanged, 0 replaced") in first.stdout
    assert "conflict: rtdose_1frame.dcm: same SOP Instance UID as resent/rtdose.dcm" in first.stderr
    with open(tmp_path / "out-quarantine" / "conflicts.csv", newline="") as handle:
        listed = [(row["source"], row["kept"], row["status"]) for row in csv.DictReader(handle)]
    assert listed == [("rtdose.dcm", "resent/rtdose.dcm", "duplicate"),
                      ("rtdose_1frame.dcm", "resent/rtdose.dcm", "conflict")]
    (written,) = out.rglob("*.dcm")
    manifest = (out / "manifest.csv").read_bytes()
    assert hashlib.sha256(written.read_bytes()).hexdigest().encode() in manifest

    again = anonlib("deidentify", str(src), str(out), "--workers", "2", home=home)
    assert again.returncode == 0, again.stderr
    assert "1 conflicts, 1 duplicates; 0 written, 1 unchanged, 0 replaced" in again.stdout
    assert (out / "manifest.csv").read_bytes() == manifest and list(out.rglob("*.dcm")) == [written]


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
