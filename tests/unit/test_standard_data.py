"""The bundled PS3.15 tables: provenance checked, loaded once, every code known."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from anonlib import data as data_module
from anonlib.errors import StandardDataError
from anonlib.profile.codes import all_codes, resolve, standard_code_table
from anonlib.profile.table import edition, load_table


def test_table_checksum_and_rows_match_the_manifest() -> None:
    raw = resources.files("anonlib.data").joinpath("ps3.15_table_e1-1.csv").read_bytes()
    entry = data_module.manifest()["files"]["ps3.15_table_e1-1.csv"]
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    assert len(load_table()) == entry["rows"] == 657
    assert edition() == "2026d"


def test_bundled_safe_private_table_matches_manifest() -> None:
    raw = resources.files("anonlib.data").joinpath("safe_private.csv").read_bytes()
    entry = data_module.manifest()["files"]["safe_private.csv"]
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]
    assert raw.decode().count("\n") - 1 == entry["rows"]


def test_altered_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = data_module.manifest()
    fake = {"files": {**real["files"], "ps3.15_table_e1-1.csv": {
        **real["files"]["ps3.15_table_e1-1.csv"], "sha256": "0" * 64}}}
    monkeypatch.setattr(data_module, "manifest", lambda: fake)
    with pytest.raises(StandardDataError, match="checksum mismatch"):
        data_module.read_verified("ps3.15_table_e1-1.csv")


def test_every_code_in_the_table_is_known_and_patterns_are_parsed() -> None:
    rows = load_table()
    assert all(row.basic in all_codes() for row in rows)
    kinds = {row.kind for row in rows}
    assert kinds == {"tag", "repeating", "private"}
    overlay = [r for r in rows if r.kind == "repeating" and r.element == 0x3000]
    assert overlay and overlay[0].group == 0x6000
    assert set(standard_code_table()) == {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D",
                                          "X/Z/D", "X/Z/U*"}


@pytest.mark.parametrize(
    ("code", "type_", "expected"),
    [
        ("Z/D", "1", "D"), ("Z/D", "2", "Z"), ("Z/D", None, "Z"),
        ("X/Z", "2", "Z"), ("X/Z", "3", "X"), ("X/Z", None, "X"), ("X/Z", "1", "D"),
        ("X/D", "1", "D"), ("X/D", "1C", "D"), ("X/D", "3", "X"), ("X/D", "2", "D"),
        ("X/Z/D", "1", "D"), ("X/Z/D", "2", "Z"), ("X/Z/D", "2C", "Z"), ("X/Z/D", "3", "X"),
        ("X/Z/U*", "1", "K"), ("X/Z/U*", "2", "Z"), ("X/Z/U*", "3", "X"),
        ("X", "1", "X"), ("K", "3", "K"), ("U", None, "U"),
    ],
)
def test_compound_codes_resolve_by_type(code: str, type_: str | None, expected: str) -> None:
    assert resolve(code, type_) == expected
