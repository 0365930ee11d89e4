"""The audit fails closed: originals that are missing, empty or misspelt and a lookup store that
cannot be opened are configuration errors (exit 2, one line); an instance audited without its
original, or a check that could not run, makes the audit INCOMPLETE (exit 4); a check switched
off is shown as skipped, never as passed. In the CLI, in the notebook's workflow function and
in the constellation's gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anonlib.audit.model import AuditInput
from anonlib.audit.run import audit
from anonlib.cli import main
from anonlib.errors import ConfigError
from anonlib.folder_run import RunSettings, run_folder
from anonlib.synthetic.batch import write_batch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two studies of two instances de-identified with a fresh SQLite lookup store."""
    base = tmp_path_factory.mktemp("failclosed")
    write_batch(base / "in", studies=2, patients=2, instances=2, seed=7)
    db = base / "store.sqlite3"
    run_folder(RunSettings(base / "in", base / "out", db_url=f"sqlite:///{db}"))
    (base / "empty").mkdir()
    (base / "empty" / "notes.txt").write_text("no DICOM here\n")
    return {"in": base / "in", "out": base / "out", "db": db, "empty": base / "empty", "base": base}


def _audit(made: dict[str, Path], *args: str, originals: str | None = None, db: str | None = None) -> list[str]:
    argv = ["audit", str(made["out"]), "--originals", originals if originals is not None else str(made["in"]),
            "--db", db if db is not None else f"sqlite:///{made['db']}", *args]
    return argv


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_misspelt_originals_folder_is_a_configuration_error(made: dict[str, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    typo = str(made["in"]) + "x"
    assert main(_audit(made, "--no-conformance", originals=typo)) == 2
    _one_line_error(capsys, "configuration error", typo, "no such folder")
    assert main(_audit(made, "--no-conformance", originals="inptu")) == 2  # not a path, not a node either
    _one_line_error(capsys, "configuration error", "inptu")
    assert main(_audit(made, "--no-conformance", originals="")) == 2
    _one_line_error(capsys, "--originals is empty")


def test_an_originals_folder_without_dicom_is_a_configuration_error(made: dict[str, Path],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit(made, "--no-conformance", originals=str(made["empty"]))) == 2
    _one_line_error(capsys, "configuration error", "no readable DICOM file")


def test_a_lookup_store_that_cannot_be_opened_is_a_configuration_error(made: dict[str, Path],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing = made["base"] / "stroe.sqlite3"
    assert main(_audit(made, "--no-conformance", db=f"sqlite:///{missing}")) == 2
    _one_line_error(capsys, "configuration error", "no such file")
    assert not missing.exists()  # the audit created nothing
    assert main(_audit(made, "--no-conformance", db="postgresql://audit:secret-pw@127.0.0.1:1/nothing")) == 2
    line = _one_line_error(capsys, "configuration error", "cannot be opened")
    assert "secret-pw" not in line
    foreign = made["base"] / "foreign.sqlite3"
    foreign.write_bytes(b"")  # an SQLite file that is not a lookup store
    assert main(_audit(made, "--no-conformance", db=f"sqlite:///{foreign}")) == 2
    _one_line_error(capsys, "configuration error", "no anonlib lookup data")


def test_an_instance_without_its_original_makes_the_audit_incomplete(made: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    originals = tmp_path / "originals"
    shutil.copytree(made["in"], originals)
    sorted(originals.rglob("*.dcm"))[0].unlink()  # one original is missing
    report = tmp_path / "audit.json"
    html = tmp_path / "audit.html"
    code = main(_audit(made, "--no-conformance", "--json", str(report), "--html", str(html),
                       originals=str(originals)))
    out = capsys.readouterr().out
    assert code == 4, out
    assert "INCOMPLETE — 4 instances (3 with originals, 1 without)" in out
    assert "incomplete: leak/originals (1)" in out
    data = json.loads(report.read_text())
    assert (data["status"], data["passed"], data["instances"], data["with_originals"],
            data["without_originals"]) == ("INCOMPLETE", False, 4, 3, 1)
    assert data["counts"]["by_verdict"]["incomplete"] == 1
    assert data["dataset"] == "folder out" and data["profile"] == "default" and data["date_mode"] == "shift"
    assert 'class="headline incomplete"' in html.read_text()


def test_nothing_to_audit_is_incomplete_not_a_pass(made: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(made["empty"]), "--no-conformance"]) == 4
    assert "INCOMPLETE — nothing to audit" in capsys.readouterr().err


def test_a_switched_off_check_is_shown_as_skipped(made: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "audit.json"
    assert main(_audit(made, "--no-conformance", "--json", str(report))) == 0
    out = capsys.readouterr().out
    assert "PASS — 4 instances (4 with originals, 0 without)" in out
    skipped = [line for line in out.splitlines() if "conformance  dciodvfy" in line]
    assert len(skipped) == 1 and skipped[0].split()[0] == "SKIPPED" and "skipped    1" in skipped[0]
    data = json.loads(report.read_text())
    assert data["checks_skipped"] == ["conformance/dciodvfy"] and "conformance" not in data["checks_run"]
    rows = {(r["check"], r["category"]): r["result"] for r in data["counts"]["by_category"]}
    assert rows[("conformance", "dciodvfy")] == "SKIPPED"
    # without originals, the leak check is skipped, not passed
    assert main(["audit", str(made["out"]), "--no-conformance", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert "leak/all categories" in data["checks_skipped"] and data["without_originals"] == 4
    assert not [r for r in data["counts"]["by_category"] if r["check"] == "leak" and r["result"] == "PASS"]


def test_a_missing_dciodvfy_makes_the_audit_incomplete(made: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dciodvfy on it
    report = tmp_path / "audit.json"
    assert main(_audit(made, "--json", str(report))) == 4
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and "incomplete: conformance/dciodvfy (1)" in out
    data = json.loads(report.read_text())
    assert data["status"] == "INCOMPLETE" and data["incomplete_categories"] == ["conformance/dciodvfy"]


def test_the_progress_bar_is_on_stderr_when_asked(made: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_audit(made, "--no-conformance", "--progress")) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err and "audit" in captured.err and "4/4" not in captured.out


def test_the_notebook_workflow_fails_closed_too(made: dict[str, Path], tmp_path: Path) -> None:
    from anonlib import workflows

    db = f"sqlite:///{made['db']}"
    with pytest.raises(ConfigError, match="no such folder"):
        workflows.audit_target(str(made["out"]), originals=str(made["in"]) + "x", db_url=db, conformance=False)
    with pytest.raises(ConfigError, match="no readable DICOM file"):
        workflows.audit_target(str(made["out"]), originals=str(made["empty"]), db_url=db, conformance=False)
    seen: list[tuple[int, int]] = []
    result, html = workflows.audit_target(str(made["out"]), originals=str(made["in"]), db_url=db,
                                          output=str(tmp_path / "report"), conformance=False,
                                          progress=lambda done, total: seen.append((done, total)))
    assert result.status == "PASS" and html is not None and seen[-1] == (4, 4)
    assert json.loads((tmp_path / "report" / "audit-summary.json").read_text())["status"] == "PASS"


def test_the_gate_sees_an_unreadable_original_as_incomplete(made: dict[str, Path]) -> None:
    from anonlib.studyjob import hold_reason

    outputs = sorted(made["out"].rglob("*.dcm"))
    inputs = [AuditInput(f"instance #{n}", path, b"not DICOM at all") for n, path in enumerate(outputs)]
    result = audit(inputs, expect_originals=True)
    assert result.status == "INCOMPLETE" and result.without_originals == 4
    assert hold_reason(result) == "audit incomplete: 4 of 4 instances without their original (leak/originals)"


def test_an_unknown_originals_node_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from anonlib.constellation import ConstellationInfo, ConstellationSettings

    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path))
    info = ConstellationInfo.from_env({
        "ANONLIB_DB_URL": "postgresql://a:b@127.0.0.1:1/none", "ANONLIB_INTAKE_URL": "http://127.0.0.1:1",
        "ANONLIB_RESEARCH_URL": "http://127.0.0.1:2", "ANONLIB_INTAKE_USER": "u", "ANONLIB_INTAKE_PASSWORD": "p",
        "ANONLIB_RESEARCH_USER": "v", "ANONLIB_RESEARCH_PASSWORD": "q",
        "ANONLIB_EXPORT_DIR": str(tmp_path)})
    info.save(ConstellationSettings.from_env().info_path)
    assert main(["audit", "intake", "--originals", "intkae", "--no-conformance"]) == 2
    _one_line_error(capsys, "configuration error", "no node 'intkae'")
