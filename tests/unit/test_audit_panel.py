"""The audit panel's pieces as functions, without a kernel: the coloured badge, the report as a
link JupyterLab can open, Safe Harbor categories by plain name (read from the bundled table),
findings per study with the pseudonym and study date the outputs carry (withheld where the audit
did not find them de-identified), Cancel (INCOMPLETE, never PASS) and a run that stops midway
(how far it got, no verdict)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Any

import pytest

from anonlib.audit.model import WITHHELD, AuditResult, Finding
from anonlib.errors import ConfigError
from anonlib.ui import audit_panel

CSV = Path(audit_panel.__file__).resolve().parents[1] / "data" / "hipaa_safe_harbor.csv"


def _html(panel: audit_panel.AuditPanel) -> str:
    return "".join(o["data"].get("text/html", "") for o in panel.out.outputs)


def _result(**extra: Any) -> AuditResult:
    findings = [
        Finding("safe_harbor", "A names", "expected", "uid:s1", "uid:i1", "(0010,0010)", "pseudonym"),
        Finding("safe_harbor", "private", "warn", "uid:s1", "uid:i1", "(0009,1001)", "private element"),
        Finding("leak", "A names", "fail", "uid:s2", "uid:i2", "(0010,0020)", "an identifying A names value"),
        Finding("safe_harbor", "C dates", "fail", "uid:s2", "uid:i2", "(0008,0020)", "a date"),
        Finding("leak", "all categories", "pass", detail="nothing found"),
    ]
    fields: dict[str, Any] = {"instances": 2, "with_originals": 2, "checks_run": ["safe_harbor", "leak"], **extra}
    return AuditResult(findings=findings, studies={"uid:s1": ("PSEUDO-1", "20210120"),
                                                   "uid:s2": ("ORIGINAL-ID", "20200101")}, **fields)


@pytest.mark.parametrize("status, colour", [("PASS", "#1e8449"), ("FAIL", "#c0392b"), ("INCOMPLETE", "#7d3c98")])
def test_the_badge_is_a_coloured_pill_per_status(status: str, colour: str) -> None:
    badge = audit_panel.badge_html(status, "a note")
    assert f"class='anonlib-audit-badge status-{status}'" in badge and f"background:{colour}" in badge
    assert f">{status}</span>" in badge and "a note" in badge


def test_plain_category_names_come_from_the_bundled_table() -> None:
    with CSV.open(encoding="utf-8") as handle:
        wording = {row["letter"]: row["category"] for row in csv.DictReader(handle)}
    letter, name = audit_panel.named_category("A names")
    assert (letter, name) == ("A", "Names") and wording["A"].startswith(name)
    letter, name = audit_panel.named_category("M device")
    assert letter == "M" and name == "Device identifiers and serial numbers" == wording["M"]
    letter, name = audit_panel.named_category("G/H SSN, MRN")
    assert letter == "G/H" and name == f"{wording['G']}; {wording['H']}"
    assert audit_panel.named_category("R UIDs")[1].endswith("(UIDs)")
    assert audit_panel.named_category("private") == ("", "private")
    assert audit_panel.named_category("dciodvfy") == ("", "dciodvfy")


def test_the_summary_shows_letter_and_plain_name_beside_each_other() -> None:
    text = "".join(audit_panel.audit_fragments(_result(), None))
    assert "<th>Letter</th><th>Category</th>" in text
    assert "<td>A</td><td>Names</td>" in text and "<td>C</td><td>Dates</td>" in text


def test_findings_per_study_carry_the_pseudonym_and_date_only_where_found_de_identified() -> None:
    result = _result()
    assert result.study_labels() == {"uid:s1": ("PSEUDO-1", "20210120"), "uid:s2": (WITHHELD, WITHHELD)}
    table = result.by_study()
    assert list(table.columns) == ["patient", "study_date", "study", "check", "category", "verdict", "findings"]
    assert set(table["patient"]) == {"PSEUDO-1", WITHHELD}
    fragments = "".join(audit_panel.findings_fragments(result))
    assert "<td>PSEUDO-1</td><td>2021-01-20</td>" in fragments
    assert "ORIGINAL-ID" not in fragments and "2020-01-01" not in fragments  # failed at those attributes
    assert "leak: A Names" in fragments  # failing categories by plain name


def test_without_originals_no_pseudonym_is_shown() -> None:
    result = _result(with_originals=0)
    result.findings.append(Finding("leak", "all categories", "skipped", detail="no originals given"))
    assert set(result.study_labels().values()) == {(WITHHELD, WITHHELD)}


def test_the_report_is_a_link_relative_to_the_notebook(tmp_path: Path) -> None:
    report = tmp_path / "out" / "audit report.html"
    link = audit_panel.report_link_html(report, base=tmp_path / "notebooks", root=tmp_path)
    assert "class='anonlib-audit-report-link' href='../out/audit%20report.html'" in link
    outside = audit_panel.report_link_html(report, base=tmp_path / "notebooks", root=tmp_path / "notebooks")
    assert "<a " not in outside and "outside the folder JupyterLab serves" in outside and str(report) in outside
    report.parent.mkdir()
    report.write_text("<html>the report</html>")  # written: outside Lab's folder it is offered as a download
    outside = audit_panel.report_link_html(report, base=tmp_path / "notebooks", root=tmp_path / "notebooks")
    assert "class='anonlib-audit-report-download' download='audit report.html'" in outside
    assert "href='data:text/html;base64,PGh0bWw+dGhlIHJlcG9ydDwvaHRtbD4='" in outside and str(report) in outside
    assert audit_panel.report_link_html(None) == ""


def test_the_panel_shows_the_badge_link_and_tables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = tmp_path / "audit" / "audit-report.html"

    def audit_target(*args: Any, progress: Any = None, **kwargs: Any) -> tuple[AuditResult, Path]:
        progress(2, 2)
        return _result(), report

    monkeypatch.setattr(audit_panel.workflows, "audit_target", audit_target)
    monkeypatch.chdir(tmp_path)
    panel = audit_panel.AuditPanel(str(tmp_path), originals="", db_url="", output=str(tmp_path / "audit"))
    panel.start()
    panel.wait(30)
    text = _html(panel)
    assert "anonlib-audit-badge status-FAIL" in text and "href='audit/audit-report.html'" in text
    # the summary and the findings per study: interactive tables (sortable, searchable, paged)
    # among the panel's outputs, in order, with the same cells as the headless HTML tables
    widgets = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in panel.out.outputs
               if "application/vnd.jupyter.widget-view+json" in o["data"]]
    summary, by_study = panel.tables["anonlib-audit-summary"], panel.tables["anonlib-by-study"]
    assert widgets == [summary.model_id, by_study.model_id] and "<table" not in text
    assert "anonlib-itable" in by_study.classes and "anonlib-by-study" in by_study.classes
    assert '"PSEUDO-1", "2021-01-20"' in by_study._dt_args["data_json"]
    assert "ORIGINAL-ID" not in by_study._dt_args["data_json"]
    assert '"A", "Names"' in summary._dt_args["data_json"]  # letter and plain name, as headless
    assert not panel.button.disabled and panel.cancel_button.disabled


def test_cancel_stops_between_instances_and_never_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started, finished = threading.Event(), []

    def audit_target(*args: Any, progress: Any = None, **kwargs: Any) -> tuple[AuditResult, None]:
        for done in range(1, 1001):
            progress(done, 1000)
            if done == 3:
                started.set()
                assert panel._cancel.wait(30)  # the user clicks Cancel while instance 4 is audited
        finished.append(True)
        return AuditResult(instances=1000, with_originals=1000), None  # would be PASS

    monkeypatch.setattr(audit_panel.workflows, "audit_target", audit_target)
    panel = audit_panel.AuditPanel(str(tmp_path), originals="", db_url="", output="")
    panel.start()
    assert started.wait(30)
    assert panel.cancel_button.disabled is False
    panel.cancel_button.click()
    panel.wait(30)
    text = _html(panel)
    assert "status-INCOMPLETE" in text and "cancelled — INCOMPLETE" in text and "after 4 of 1000" in text
    assert "PASS" not in text and not finished


def test_a_run_that_stops_midway_says_how_far_with_no_verdict(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    def audit_target(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        progress(7, 20)
        raise OSError("disk gone")

    monkeypatch.setattr(audit_panel.workflows, "audit_target", audit_target)
    panel = audit_panel.AuditPanel(str(tmp_path), originals="", db_url="", output="")
    panel.run()
    text = _html(panel)
    assert "Audit interrupted after 7 of 20 instances — no verdict: OSError: disk gone" in text
    assert "anonlib-audit-badge" not in text

    def interrupted(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        progress(3, 20)
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_panel.workflows, "audit_target", interrupted)
    with pytest.raises(KeyboardInterrupt):
        panel.run()
    assert "Audit interrupted after 3 of 20 instances — no verdict" in _html(panel)
    assert not panel.button.disabled


def test_a_missing_target_is_one_line_naming_the_field(tmp_path: Path) -> None:
    panel = audit_panel.AuditPanel(str(tmp_path / "nope"), originals="", db_url="", output="")
    panel.button.click()
    assert f"target: {tmp_path / 'nope'}: no such folder" in panel.error.value
    assert "\n" not in panel.error.value and panel.out.outputs == ()
    with pytest.raises(ConfigError, match="^originals: "):
        audit_panel.check_source("originals", str(tmp_path / "x" / "y"), optional=True)
