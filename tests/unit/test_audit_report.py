"""Audit reports: the JSON summary round-trips, the HTML page is self-contained, escaped,
parseable and readable, and neither holds a value planted in the corpus."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

from anonlib import __version__
from anonlib.audit.model import AuditResult, Finding
from anonlib.audit.report import (
    MAX_CHART_STUDIES,
    MAX_DETAIL_ROWS,
    render_html,
    to_dict,
    write_html,
    write_json,
)
from anonlib.audit.report_charts import stacked_bars
from anonlib.audit.safe_harbor import regulatory_status, scan_safe_harbor
from anonlib.synthetic import Corpus
from tests.naive import naive_copies

WHEN = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
_EXTERNAL = re.compile(r"""(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:|//|ftp:|file:)|@import|url\(\s*["']?(?:https?:|//)""",
                       re.IGNORECASE)


def _result(findings: list[Finding], *, instances: int = 3, mode: str = "shift") -> AuditResult:
    return AuditResult(findings=findings, instances=instances, with_originals=instances, date_mode=mode,
                       regulatory_status=regulatory_status(mode),
                       checks_run=["safe_harbor", "leak", "consistency", "conformance"])


def _sample() -> AuditResult:
    return _result([
        Finding("safe_harbor", "A names", "expected", "study-1", "i-1", "(0010,0010)", "pseudonym"),
        Finding("safe_harbor", "A names", "fail", "study-1", "i-1", "(0008,0090)", "a value remains"),
        Finding("safe_harbor", "A names", "fail", "study-1", "i-2", "(0008,0090)", "a value remains"),
        Finding("safe_harbor", "free text", "warn", "study-2", "i-3", "(0040,A730)[0]>(0040,A160)",
                "free text <kept> & \"quoted\""),
        Finding("leak", "names", "fail", "study-2", "i-3", "raw bytes", "<script>alert(1)</script>"),
        Finding("consistency", "pseudonym", "pass", "", "", "", "one pseudonym per patient"),
    ])


class _Page(HTMLParser):
    """Collects what a reader sees and every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._skip += tag in ("style", "svg")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "svg")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data.strip())


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def assert_self_contained(html: str) -> None:
    page = parse(html)
    names = [tag for tag, _ in page.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    assert "<script" not in html.lower() and "http" not in html.lower()
    assert not _EXTERNAL.search(html)
    for tag, attrs in page.tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            assert value is None or value.startswith(("#", "data:")), (tag, attr)


# -- JSON ------------------------------------------------------------------------------------
def test_summary_counts_and_verdict() -> None:
    data = to_dict(_sample(), generated_at=WHEN)
    assert data["passed"] is False and data["anonlib_version"] == __version__
    assert data["generated_at"] == "2025-01-02T03:04:05+00:00"
    assert data["instances"] == 3 and data["with_originals"] == 3 and data["date_mode"] == "shift"
    assert "Expert Determination" in data["regulatory_status"]
    assert data["failing_categories"] == ["safe_harbor/A names", "leak/names"]
    counts = data["counts"]
    assert counts["findings"] == 6
    assert counts["by_verdict"] == {"fail": 3, "incomplete": 0, "warn": 1, "expected": 1, "pass": 1, "skipped": 0}
    assert counts["by_check"]["safe_harbor"] == {"fail": 2, "incomplete": 0, "warn": 1, "expected": 1, "pass": 0,
                                                 "skipped": 0}
    assert data["status"] == "FAIL"
    rows = {(r["check"], r["category"]): r for r in counts["by_category"]}
    assert rows[("safe_harbor", "A names")]["result"] == "FAIL"
    assert rows[("consistency", "pseudonym")]["result"] == "PASS"
    assert rows[("conformance", "(no findings)")]["result"] == "PASS"  # a check that found nothing
    studies = {s["study"]: s for s in data["studies"]}
    assert studies["study-1"]["instances"] == 2 and studies["study-1"]["fail"] == 2
    assert studies["(set-wide)"]["pass"] == 1


def test_json_round_trips(tmp_path: Path) -> None:
    result = _sample()
    write_json(result, tmp_path / "sub" / "audit.json")
    loaded = json.loads((tmp_path / "sub" / "audit.json").read_text(encoding="utf-8"))
    assert dt.datetime.fromisoformat(loaded.pop("generated_at")).tzinfo is not None
    expected = to_dict(result, generated_at=WHEN)
    expected.pop("generated_at")
    assert loaded == json.loads(json.dumps(expected)) == expected


def test_a_result_without_instances_does_not_pass() -> None:
    data = to_dict(AuditResult(checks_run=["safe_harbor"]), generated_at=WHEN)
    assert data["passed"] is False and data["studies"] == [] and data["date_mode"] == "unknown"
    assert data["status"] == "INCOMPLETE"
    assert data["regulatory_status"] == regulatory_status("unknown")
    html = render_html(AuditResult(), title="Empty")
    assert "No instance was audited." in html and 'class="headline incomplete"' in html
    assert_self_contained(html)


# -- HTML ------------------------------------------------------------------------------------
def test_html_is_one_self_contained_readable_page(tmp_path: Path) -> None:
    write_html(_sample(), tmp_path / "report.html", title="Audit of <batch> & co")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    page = parse(html)
    names = [tag for tag, _ in page.tags]
    assert names.count("svg") == 3 and names.count("table") >= 3 and "style" in names
    assert "FAIL" in page.text and "Audit of <batch> & co" in page.text
    assert any("Expert Determination" in text for text in page.text)
    assert "(0040,A730)[0]>(0040,A160)" in page.text  # tag paths, escaped in the source
    assert "(0040,A730)[0]&gt;(0040,A160)" in html


def test_html_escapes_everything() -> None:
    html = render_html(_sample(), title="<b>t</b>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<kept>" not in html and "&lt;kept&gt; &amp; &quot;quoted&quot;" in html
    assert "<b>t</b>" not in html


def test_passing_result_has_a_pass_headline() -> None:
    result = _result([Finding("safe_harbor", "R UIDs", "expected", "s", "i", "(0008,0018)", "remapped")])
    html = render_html(result, title="ok")
    assert 'class="headline pass"' in html and "No check failed." in html
    assert_self_contained(html)


def test_details_are_capped_per_study() -> None:
    findings = [Finding("safe_harbor", "private", "warn", "s", "i", f"(0009,{n:04X})", "private element kept")
                for n in range(MAX_DETAIL_ROWS + 5)]
    html = render_html(_result(findings), title="many")
    assert "5 more rows not shown" in html
    assert html.count("private element kept") == MAX_DETAIL_ROWS


def test_chart_geometry_has_no_long_digit_runs() -> None:
    svg = stacked_bars([("A names", {"fail": 12345, "warn": 3}), ("B geography", {"pass": 1})], title="t")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "http" not in svg
    attributes = re.sub(r"#[0-9a-f]{6}\b", "", " ".join(re.findall(r'="([^"]*)"', svg)))  # colours
    assert not re.search(r"\d{4,}", attributes)
    assert re.search(r'clip-path="url\(#p[a-z]{10}\)"', svg)
    root = ElementTree.fromstring(svg)  # well-formed, and every internal reference resolves
    ids = {element.get("id") for element in root.iter()}
    assert set(re.findall(r'(?:url\(#|href="#)([\w.-]+)', svg)) <= ids


def test_the_study_chart_shows_the_studies_with_most_failures() -> None:
    findings = [Finding("leak", "names", "fail", f"study-{n:02d}", "i", "raw bytes", "leak") for n in range(45)]
    html = render_html(_result(findings), title="many studies")
    assert f"({MAX_CHART_STUDIES} of 45 studies, most failures first)" in html


# -- real findings ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def naive_result(corpus: Corpus) -> AuditResult:
    """The Safe Harbor scan of the naive copies, studies and instances labelled by number."""
    result = AuditResult(checks_run=["safe_harbor"], date_mode="unknown",
                         regulatory_status=regulatory_status("unknown"))
    studies: dict[str, str] = {}
    for number, ds in enumerate(naive_copies(corpus)):
        study = studies.setdefault(str(ds.StudyInstanceUID), f"study-{len(studies) + 1}")
        result.findings += scan_safe_harbor(ds, study=study, instance=f"instance-{number}")
        result.instances += 1
    return result


def test_reports_of_a_naive_copy_fail_and_hold_no_planted_value(naive_result: AuditResult,
                                                                 corpus: Corpus, tmp_path: Path) -> None:
    write_html(naive_result, tmp_path / "a.html", title="Naive")
    write_json(naive_result, tmp_path / "a.json")
    html = (tmp_path / "a.html").read_text(encoding="utf-8")
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["passed"] is False and 'class="headline fail"' in html
    assert any(c.startswith("safe_harbor/A ") for c in data["failing_categories"])
    assert_self_contained(html)
    assert not [value for value in corpus.phi_values() if value in html or value in text]


# -- incomplete, skipped, what was audited ------------------------------------------------------
def _incomplete() -> AuditResult:
    result = _result([
        Finding("safe_harbor", "R UIDs", "expected", "study-1", "i-1", "(0008,0018)", "remapped"),
        Finding("leak", "originals", "incomplete", "study-1", "i-2", "", "no original matched: the leak check did not run"),
        Finding("leak", "all categories", "pass", "", "", "", "no identifying value of 2 originals found"),
        Finding("conformance", "dciodvfy", "skipped", "", "", "", "switched off (--no-conformance)"),
    ])
    result.with_originals = 2
    result.checks_run = ["safe_harbor", "leak", "consistency"]
    result.dataset, result.profile = "folder study-output", "radiology-research"
    return result


def test_an_incomplete_audit_says_so_with_counts_in_json_and_html() -> None:
    result = _incomplete()
    data = to_dict(result, generated_at=WHEN)
    assert (data["status"], data["passed"]) == ("INCOMPLETE", False)
    assert (data["instances"], data["with_originals"], data["without_originals"]) == (3, 2, 1)
    assert data["incomplete_categories"] == ["leak/originals"]
    assert data["checks_skipped"] == ["conformance/dciodvfy"]
    assert data["counts"]["by_verdict"]["incomplete"] == 1 and data["counts"]["by_verdict"]["skipped"] == 1
    rows = {(r["check"], r["category"]): r["result"] for r in data["counts"]["by_category"]}
    assert rows[("leak", "originals")] == "INCOMPLETE" and rows[("conformance", "dciodvfy")] == "SKIPPED"
    assert ("conformance", "(no findings)") not in rows  # a skipped check is never shown as passed
    assert {s["study"]: s["result"] for s in data["studies"]}["study-1"] == "INCOMPLETE"
    html = render_html(result, title="Audit")
    page = parse(html)
    assert 'class="headline incomplete"' in html and "INCOMPLETE" in page.text
    assert any("2 with their original, 1 without" in text for text in page.text)
    assert any("Skipped: conformance/dciodvfy" in text for text in page.text)
    assert_self_contained(html)


def test_the_report_names_dataset_profile_and_date_mode_and_carries_no_banner() -> None:
    data = to_dict(_incomplete(), generated_at=WHEN)
    assert (data["dataset"], data["profile"], data["date_mode"]) == ("folder study-output", "radiology-research", "shift")
    page = parse(render_html(_incomplete(), title="Audit"))
    for label, value in (("Dataset", "folder study-output"), ("Profile", "radiology-research"), ("Date mode", "shift")):
        assert page.text[page.text.index(label) + 1] == value
    assert not [text for text in page.text if "identified data" in text.lower()]
