"""The audit and anonymize panels without a kernel (the workflow functions replaced): a bad
``originals`` is shown as one clear error, never as PASS; an INCOMPLETE audit is shown as such
with what was not checked; the audit moves a progress bar; the job states show held studies;
the source field opens a source or says in one line why it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets
import pandas as pd
import pytest

from anonlib.audit.model import AuditResult, Finding
from anonlib.errors import ConfigError
from anonlib.ui import anonymize_panel, audit_panel, common


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    html: list[str] = []
    for module in (anonymize_panel, audit_panel, common):
        monkeypatch.setattr(module, "show_html", html.append)
    monkeypatch.setattr(audit_panel, "findings_svg", lambda result: "<svg></svg>")
    return html


def _panel_html(panel: audit_panel.AuditPanel) -> str:
    return "".join(o["data"].get("text/html", "") for o in panel.out.outputs)


def test_a_bad_originals_folder_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[str] = []
    monkeypatch.setattr(audit_panel.workflows, "audit_target", lambda *a, **k: ran.append("audit"))
    typo = tmp_path / "inptu"
    panel = audit_panel.AuditPanel(str(tmp_path), originals=str(typo), db_url="", output="")
    panel.run()
    assert panel.error.value.count("<p") == 1 and f"originals: {typo}: no such folder" in panel.error.value
    assert "Traceback" not in panel.error.value and "PASS" not in panel.error.value + _panel_html(panel)
    assert not ran  # nothing audited


def test_an_incomplete_audit_is_shown_as_such_and_moves_the_bar(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    result = AuditResult(instances=2, with_originals=1, date_mode="shift", dataset="folder out", profile="default",
                         findings=[Finding("leak", "originals", "incomplete", "s", "i2", "", "no original matched")])

    def audit_target(*args: Any, progress: Any = None, **kwargs: Any) -> tuple[AuditResult, None]:
        progress(1, 2)
        progress(2, 2)
        return result, None

    monkeypatch.setattr(audit_panel.workflows, "audit_target", audit_target)
    monkeypatch.setattr(audit_panel, "findings_svg", lambda result: "<svg></svg>")
    panel = audit_panel.AuditPanel(str(tmp_path), originals=str(tmp_path), db_url="", output="")
    panel.run()
    assert (panel.bar.value, panel.bar.max) == (2, 2) and panel.count.value == "2 / 2 instances"
    text = _panel_html(panel)
    assert "anonlib-audit-badge status-INCOMPLETE" in text and "1 with originals, 1 without" in text
    assert "Not checked (INCOMPLETE, never a pass):</strong> leak/originals (1)" in text


class _Node:
    kind, name = "orthanc", "intake"

    def studies(self) -> pd.DataFrame:
        return pd.DataFrame(columns=["study", "study_date", "modalities", "description", "patient_name"])


def test_the_job_states_show_held_studies(monkeypatch: pytest.MonkeyPatch, shown: list[str]) -> None:
    held = pd.DataFrame([{"node": "intake", "study": "s1", "job": 3, "instances": 2, "runs": 1,
                          "reason": "audit failed: leak/A names (2)"}])
    monkeypatch.setattr(anonymize_panel.workflows, "held_studies", lambda: held)
    monkeypatch.setattr(anonymize_panel.workflows, "job_states", lambda: pd.DataFrame([{"id": 3, "status": "succeeded"}]))
    anonymize_panel.AnonymizePanel(_Node(), db_url="", output="").show_jobs()  # type: ignore[arg-type]
    text = "".join(shown)
    assert "1 study held by the audit gate" in text and "audit failed: leak/A names (2)" in text
    assert "anonlib jobs retry --held" in text
    shown.clear()
    monkeypatch.setattr(anonymize_panel.workflows, "held_studies", lambda: held.iloc[0:0])
    anonymize_panel.AnonymizePanel(_Node(), db_url="", output="").show_jobs()  # type: ignore[arg-type]
    assert "No study is held by the audit gate." in "".join(shown)


def test_the_audit_panel_passes_its_pixel_choice(monkeypatch: pytest.MonkeyPatch, shown: list[str],
                                                 tmp_path: Path) -> None:
    asked: dict[str, Any] = {}

    def audit_target(*args: Any, **kwargs: Any) -> tuple[AuditResult, None]:
        asked.update(kwargs)
        return AuditResult(instances=1, with_originals=1, findings=[
            Finding("pixels", "all categories", "skipped", detail="switched off (--pixels off)")]), None

    monkeypatch.setattr(audit_panel.workflows, "audit_target", audit_target)
    panel = audit_panel.AuditPanel(str(tmp_path), originals="", db_url="", output="", pixels="off")
    assert panel.pixels.value == "off"
    panel.pixels.value = "all"
    panel.run()
    assert asked["pixels"] == "all"


def test_the_source_field_opens_a_source_and_says_in_one_line_why_another_cannot(tmp_path: Path) -> None:
    """A folder opens and its panel is shown; a missing folder gives one line naming it, no
    traceback, and the panel of the last good source stays; Enter in the field opens too."""
    built: list[str] = []

    def build(src: object) -> ipywidgets.Widget:
        built.append(str(getattr(src, "name", src)))
        return ipywidgets.Label("panel")

    field = common.SourceField(build, str(tmp_path))
    assert len(built) == 1 and len(field.body.children) == 1 and field.error.value == ""
    field.field.value = str(tmp_path / "nope")  # what Enter or leaving the field does
    assert "nope: no such folder" in field.error.value and "Traceback" not in field.error.value
    assert "\n" not in field.error.value and len(built) == 1 and field.body.children  # the old panel stays
    field.field.value = str(tmp_path)
    field.open_button.click()
    assert len(built) == 3 and field.error.value == ""


def test_one_line_keeps_anonlib_messages_and_names_other_errors() -> None:
    assert common.one_line(ConfigError("x: no such folder")) == "x: no such folder"
    assert common.one_line(ValueError("bad\n  value")) == "ValueError: bad value"


def test_study_labels_read_dates_and_names_as_the_tables_do() -> None:
    class Studies:
        def studies(self) -> pd.DataFrame:
            return pd.DataFrame([
                {"study": "1.2.3", "study_date": "20210120", "modalities": "CT", "description": "CHEST",
                 "patient_name": "Doe^Jane^Q"},
                {"study": "1.2.4", "study_date": "", "modalities": "MR", "description": "", "patient_name": ""}])

    assert common.study_options(Studies()) == [  # type: ignore[arg-type]
        ("2021-01-20 · CT · CHEST · Doe, Jane Q", "1.2.3"), ("no date · MR · - · ", "1.2.4")]
    # the anonymize panel's per-study results name studies the same way (without the patient's name)
    from anonlib.ui.run_results import study_labels

    assert study_labels(Studies().studies()) == {"1.2.3": "2021-01-20 · CT · CHEST", "1.2.4": "no date · MR · -"}
