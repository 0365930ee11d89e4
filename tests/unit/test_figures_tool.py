"""tools/figures.py: the README's hardening figures come only from recorded (passed) tests."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.figures import Figures, phi_hits

ROOT = Path(__file__).resolve().parents[2]


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("figures_tool", ROOT / "tools" / "figures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_figures_are_whole_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "figures.jsonl"
    Figures("t::a", path).record("fault", "worker SIGKILLed mid-study, restarted", instances=4, delivered=4,
                                 lost=0, duplicated=0, phi_in_logs=0)
    Figures("t::b", path).record("access", "C-FIND", attempts=3, refused=3, answer="nothing returned")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["test"] for r in rows] == ["t::a", "t::b"] and rows[1]["refused"] == 3
    with pytest.raises(ValueError, match="unknown kind"):
        Figures("t::c", path).record("speed", "x")


def test_a_fault_that_did_not_record_is_never_counted_as_survived() -> None:
    tool = _tool()
    rows = [{"kind": "fault", "name": tool.FAULTS[0], "instances": 8, "delivered": 7, "lost": 1, "duplicated": 0,
             "phi_in_logs": 2}]
    table = tool.render(rows, datetime(2026, 12, 6, tzinfo=UTC))
    assert f"| faults injected and survived | 1 of {len(tool.FAULTS)} (not run or failed: " in table
    assert tool.FAULTS[1] in table.split("\n\n")[1].splitlines()[2]  # listed as missing
    assert "| instances lost | 1 |" in table and "| PHI hits in logs and CLI output | 2 |" in table


def test_the_readme_block_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tool.START}\nOLD BLOCK\n{tool.END}\nrest\n")
    figures = tmp_path / "f.jsonl"
    Figures("t", figures).record("malformed", "folder pipeline", files=5, unnamed=0, tracebacks=0)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--readme", "--figures", str(figures)]) == 0
    text = readme.read_text()
    assert "OLD BLOCK" not in text and "| malformed inputs tried | 5; folder pipeline: 5 |" in text
    assert text.startswith("intro\n") and text.endswith(f"{tool.END}\nrest\n")


def test_malformed_files_by_c_store_get_their_own_row() -> None:
    tool = _tool()
    rows = [{"kind": "malformed", "name": "folder pipeline", "files": 212, "unnamed": 0, "tracebacks": 0,
             "peak_rss_mb": 238},
            {"kind": "malformed", "name": "C-STORE (generated files)", "files": 211, "refused_by_sender": 2,
             "refused_at_c_store": 110, "rejected": 40, "duplicates": 3, "delivered": 56, "unnamed": 0,
             "tracebacks": 0, "peak_rss_mb": 301}]
    table = tool.render(rows, datetime(2026, 12, 7, tzinfo=UTC))
    assert "| malformed inputs tried | 423; folder pipeline: 212; C-STORE (generated files): 211 |" in table
    assert ("| C-STORE (generated files): what became of the 211 files | 2 refused by the sender (cannot be "
            "framed), 110 refused at C-STORE, 40 stored and rejected with a reason, 3 duplicates kept once, "
            "56 delivered |") in table
    assert "| peak memory on malformed inputs | 301 MB |" in table
    assert "what became of" not in tool.render(rows[:1], datetime(2026, 12, 7, tzinfo=UTC))


def test_phi_hits_counts_every_occurrence() -> None:
    assert phi_hits(["PAT1", ""], "x PAT1 y PAT1", "PAT1") == 3
