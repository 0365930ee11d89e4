"""What the preview panel shows, as pure functions (:mod:`anonlib.ui.preview_view`) and through
the panel without a kernel: the status filter ("kept" hidden by default) and the text search,
the legend read from PS3.15 Table E.1-1a's data file, the verdict on the instance shown and the
study's quarantined or rejected instances, the CSV download (its name carries no PHI), the
series and instance pickers reaching any object (SR, SEG), the busy indicator and the headless
HTML. Real files: pydicom's test files and anonlib's synthetic corpus."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib import workflows
from anonlib.errors import ConfigError
from anonlib.preview import DIFF_COLUMNS, QUARANTINE_COLUMNS, StudyPreview, preview_study
from anonlib.sources import FolderSource
from anonlib.synthetic import Corpus
from anonlib.ui import preview_panel
from anonlib.ui import preview_view as view

DATA = Path(view.__file__).parents[1] / "data" / "ps3.15_table_e1-1a_action_codes.csv"
PYDICOM_FILES = ("CT_small.dcm", "reportsi.dcm", "rtstruct.dcm")
SR_STORAGE = {"1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33"}
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> FolderSource:
    """pydicom's CT, SR and RT structure set, one study each."""
    root = tmp_path_factory.mktemp("pydicom-files")
    for name in PYDICOM_FILES:
        shutil.copy(get_testdata_file(name), root / name)  # type: ignore[arg-type]
    return FolderSource(root)


def _study_of(src: FolderSource, name: str) -> str:
    uid = str(pydicom.dcmread(src.root / name, stop_before_pixels=True).StudyInstanceUID)
    assert uid in set(src.studies()["study"])
    return uid


@pytest.fixture(scope="module")
def ct(folder: FolderSource, tmp_path_factory: pytest.TempPathFactory) -> StudyPreview:
    store = tmp_path_factory.mktemp("store") / "lookup.sqlite3"
    return preview_study(folder, _study_of(folder, "CT_small.dcm"), db_url=f"sqlite:///{store}")


@pytest.fixture(scope="module")
def follow_up_seg(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[FolderSource, StudyPreview]:
    """Patient-1's follow-up study (CT, MR, RT, SEG, SR, PR, SC, US), its SEG picked with the
    series and instance pickers' options."""
    src = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    [seg_series] = [key for label, key in preview_panel.series_options(src, study) if " · SEG · " in label]
    [(label, seg)] = preview_panel.instance_options(src, study, seg_series)
    assert label == f"1 / 1 · SEG · {Path(seg).name}"
    store = tmp_path_factory.mktemp("store") / "lookup.sqlite3"
    return src, preview_study(src, study, db_url=f"sqlite:///{store}", instance=seg)


# -- filter and search ---------------------------------------------------------------------------

def test_kept_is_hidden_by_default_and_each_status_can_be_shown(ct: StudyPreview) -> None:
    counts = view.status_counts(ct.diff)
    assert set(counts) == set(view.STATUSES) and sum(counts.values()) == len(ct.diff)
    assert counts["kept"] > 0 and counts["removed"] > 0
    shown = view.filter_diff(ct.diff)
    assert len(shown) == len(ct.diff) - counts["kept"] and "kept" not in set(shown["status"])
    assert list(shown.columns) == DIFF_COLUMNS
    for status in view.STATUSES:
        assert set(view.filter_diff(ct.diff, [status])["status"]) == ({status} if counts[status] else set())
    assert len(view.filter_diff(ct.diff, view.STATUSES)) == len(ct.diff)
    assert view.filter_diff(ct.diff, []).empty


def test_search_looks_in_path_keyword_and_name_case_insensitively(ct: StudyPreview) -> None:
    found = view.filter_diff(ct.diff, view.STATUSES, "patient's")
    assert len(found) >= 2 and all("patient's" in n.lower() for n in found["name"])
    by_keyword = view.filter_diff(ct.diff, view.STATUSES, "  patientname ")
    assert list(by_keyword["path"]) == ["(0010,0010)"]
    by_path = view.filter_diff(ct.diff, view.STATUSES, "(0010,")  # pattern characters taken as typed
    assert len(by_path) >= 3 and all(p.startswith("(0010,") for p in by_path["path"])
    assert "PatientName" not in set(view.filter_diff(ct.diff, ["kept"], "patientname")["keyword"])  # P changes it
    assert view.filter_diff(ct.diff, view.STATUSES, "no such element").empty
    original = ct.diff["original"][ct.diff["keyword"] == "PatientName"].iloc[0]
    assert view.filter_diff(ct.diff, view.STATUSES, original).empty  # values are not searched


# -- legend --------------------------------------------------------------------------------------

def test_legend_explains_every_code_present_with_the_standard_table_s_words(ct: StudyPreview) -> None:
    with DATA.open(encoding="utf-8") as f:
        standard = {row["code"]: row["meaning"] for row in csv.DictReader(f)}
    table = view.legend(ct.diff)
    assert list(table.columns) == view.LEGEND_COLUMNS
    present = {c for column in ("action", "code") for c in ct.diff[column] if c}
    assert set(table["code"]) == present and {"X", "U", "P", "A"} <= present
    meanings = dict(zip(table["code"], table["meaning"], strict=True))
    for code in present & set(standard):
        assert meanings[code] == standard[code]
    assert "pseudonym" in meanings["P"] and "markers" in meanings["A"]
    assert list(table["code"])[:2] == ["X", "Z"]  # single letters first, compound codes after
    assert "anonlib-legend" in view.legend_html(ct.diff) and "<details open" in view.legend_html(ct.diff)
    assert "<summary>Action codes: X, Z, " in view.legend_html(ct.diff, opened=False)


# -- CSV -----------------------------------------------------------------------------------------

def test_the_csv_holds_the_rows_and_its_name_no_phi(ct: StudyPreview, folder: FolderSource) -> None:
    shown = view.filter_diff(ct.diff)
    data = view.diff_csv(shown)
    back = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(back.columns) == DIFF_COLUMNS and len(back) == len(shown)
    assert list(back["path"]) == list(shown["path"]) and list(back["original"]) == list(shown["original"])
    name = view.csv_filename(data)
    assert re.fullmatch(r"anonlib-diff-[0-9a-f]{12}\.csv", name)
    header = pydicom.dcmread(folder.root / "CT_small.dcm", stop_before_pixels=True)
    for value in (header.PatientID, str(header.PatientName), header.StudyInstanceUID, header.SOPInstanceUID,
                  "CT_small"):
        assert str(value) not in name
    link = view.csv_link(shown, label="Download")
    href = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', link)
    assert href and base64.b64decode(href.group(1)) == data
    assert f'download="{name}"' in link and f"({len(shown)} rows)" in link
    assert view.csv_filename(view.diff_csv(ct.diff)) != name  # another content, another name


def test_the_csv_does_not_let_a_spreadsheet_run_a_value() -> None:
    frame = pd.DataFrame([{**dict.fromkeys(DIFF_COLUMNS, ""), "original": v}
                          for v in ("=HYPERLINK(1)", "+1+1", "@SUM(A1)", "-2+3", "-12.5\\3", "-.5", "Müller^Jürgen")])
    back = pd.read_csv(io.BytesIO(view.diff_csv(frame)), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(back["original"]) == ["'=HYPERLINK(1)", "'+1+1", "'@SUM(A1)", "-2+3", "-12.5\\3", "-.5",
                                      "Müller^Jürgen"]


# -- verdict and the instances not released ------------------------------------------------------

def test_pickers_reach_a_seg_and_its_verdict_is_released(follow_up_seg: tuple[FolderSource, StudyPreview]) -> None:
    src, preview = follow_up_seg
    sop_class = preview.diff[preview.diff["keyword"] == "SOPClassUID"]["original"].iloc[0]
    assert sop_class == SEG_STORAGE
    assert view.instance_verdict(preview) == view.Verdict("released")
    text = view.verdict_html(preview)
    assert "anonlib-verdict-released" in text and "RELEASED" in text and Path(preview.instance).name in text


def test_the_quarantined_instance_and_its_reason_are_shown(follow_up_seg: tuple[FolderSource, StudyPreview]) -> None:
    _, seg = follow_up_seg
    [problem] = seg.quarantine.to_dict("records")
    assert problem["outcome"] == "quarantined" and "RecognizableVisualFeatures" in problem["reason"]
    text = view.verdict_html(seg, {problem["instance"]: "10 / 10 · the US"})
    assert "1 quarantined of 16 instances" in text and "the US" in text and problem["reason"] in text
    assert problem["instance"] not in text  # the full key (a path with the patient's name) is not shown
    on_it = dataclasses.replace(seg, instance=problem["instance"])
    verdict = view.instance_verdict(on_it)
    assert verdict == view.Verdict("quarantined", problem["reason"])
    assert verdict.sentence().endswith(problem["reason"]) and "anonlib-verdict-quarantined" in view.verdict_html(on_it)
    assert list(view.problems(seg).columns) == view.PROBLEM_COLUMNS
    assert list(view.problems(seg)["instance"]) == [Path(problem["instance"]).name]


def test_a_rejected_instance_says_so(ct: StudyPreview) -> None:
    rejected = dataclasses.replace(ct, quarantine=pd.DataFrame(
        [{"instance": ct.instance, "outcome": "rejected", "reason": "not DICOM: no preamble"}], columns=QUARANTINE_COLUMNS))
    verdict = view.instance_verdict(rejected)
    assert verdict.outcome == "rejected" and "rejected (nothing written): not DICOM" in verdict.sentence()
    assert "1 rejected of 1 instances" in view.verdict_html(rejected)
    assert "None of the 1 instances" in view.verdict_html(ct)


def test_progress_counts_both_reads_of_every_instance(corpus: Corpus, tmp_path: Path) -> None:
    src = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[0]
    steps: list[tuple[int, int]] = []
    preview_study(src, study, db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}",
                  progress=lambda done, total: steps.append((done, total)))
    total = 2 * len(src.instances(study))
    assert {t for _d, t in steps} == {total} and steps[-1] == (total, total)
    assert [d for d, _t in steps] == sorted(d for d, _t in steps) and len(steps) >= total


# -- headless HTML and the panel -----------------------------------------------------------------

def test_headless_html_puts_the_verdict_and_images_above_the_filtered_diff(ct: StudyPreview,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[Any] = []
    monkeypatch.setattr(preview_panel, "show_html", lambda text: shown.append(("html", text)))
    monkeypatch.setattr(preview_panel, "show", lambda obj: shown.append(("figure", obj)))
    preview_panel.show_preview(ct)
    assert [kind for kind, _ in shown] == ["html", "figure", "html"] and view.no_image(ct) == ""
    head, diff = shown[0][1], shown[2][1]
    assert "anonlib-verdict" in head and "pseudonym" in head and "anonlib-diff-table" not in head
    assert "anonlib-legend" in diff and "anonlib-diff-table" in diff and 'class="status-kept"' not in diff
    assert f"{len(view.filter_diff(ct.diff))} of {len(ct.diff)} elements shown" in diff
    shown.clear()
    preview_panel.show_preview(ct, statuses="all", search="patient")
    assert 'class="status-kept"' in shown[2][1] and "matching “patient”" in shown[2][1]


def test_the_panel_picks_an_sr_filters_searches_and_offers_the_csv(folder: FolderSource,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    shown: list[str] = []
    monkeypatch.setattr(preview_panel, "show_html", shown.append)
    monkeypatch.setattr(preview_panel, "show", lambda obj: shown.append("<figure>"))
    during: list[tuple[bool, str]] = []
    steps: list[str] = []
    real = workflows.preview

    def preview(*args: Any, progress: Any = None, **kwargs: Any) -> StudyPreview:
        during.append((panel.button.disabled, panel.busy.value))

        def follow(done: int, total: int) -> None:
            progress(done, total)
            steps.append(panel.busy.value)

        found: StudyPreview = real(*args, progress=follow, **kwargs)
        return found

    monkeypatch.setattr(workflows, "preview", preview)
    sr = str(folder.root / "reportsi.dcm")
    panel = preview_panel.PreviewPanel(folder, db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}",
                                       study=_study_of(folder, "reportsi.dcm"), instance=sr)
    assert panel.instance.value == sr and panel.diff_box.layout.display == "none"
    panel.run()
    assert during == [(True, during[0][1])] and "preview of 1 instance: collecting identifying values 0 / 1" in during[0][1]
    assert "dry run 0 / 1" in steps[0] and "dry run 1 / 1" in steps[-1]  # its header read, then its dry run
    assert not panel.button.disabled and panel.busy.value == "" and panel.bar.value == panel.bar.max == 2
    assert panel.preview is not None and panel.preview.instance == sr
    assert set(panel.preview.diff[panel.preview.diff["keyword"] == "SOPClassUID"]["original"]) <= SR_STORAGE
    assert "anonlib-verdict-released" in shown[0]  # the verdict, then the images: an SR has none, one line says so
    assert "anonlib-no-image" in shown[1] and "no pixel data" in shown[1] and "<figure>" not in shown
    assert panel.diff_box.layout.display == ""
    rows = panel.table.value.count("<tr class=")
    assert rows == len(view.filter_diff(panel.preview.diff)) and 'class="status-kept"' not in panel.table.value
    panel.statuses["kept"].value = True
    assert panel.table.value.count("<tr class=") == len(panel.preview.diff) > rows
    assert panel.statuses["kept"].description == f"kept ({view.status_counts(panel.preview.diff)['kept']})"
    panel.search.value = "ContentSequence"
    assert 0 < panel.table.value.count("<tr class=") < rows
    assert panel.download.value.count('download="anonlib-diff') == 2 and "data:text/csv" in panel.download.value
    assert "anonlib-legend" in panel.legend.value


def test_a_failed_preview_gives_the_button_back_and_shows_one_error(folder: FolderSource,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    monkeypatch.setattr(preview_panel, "show_error", lambda out, exc: errors.append(str(exc)))

    def fail(*args: Any, **kwargs: Any) -> StudyPreview:
        raise ConfigError("the instance to preview is not one of the study's instances")

    monkeypatch.setattr(workflows, "preview", fail)
    panel = preview_panel.PreviewPanel(folder, db_url="")
    panel.run()
    assert errors == ["the instance to preview is not one of the study's instances"]
    assert not panel.button.disabled and panel.busy.value == "" and panel.diff_box.layout.display == "none"


def test_after_a_preview_the_picker_marks_the_quarantined_instance_and_the_verdict_names_it(
        corpus: Corpus, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shown: list[str] = []
    monkeypatch.setattr(preview_panel, "show_html", shown.append)
    widgets: list[Any] = []
    monkeypatch.setattr(preview_panel, "show",
                        lambda obj: widgets.append(obj) if type(obj).__name__ == "ITable" else shown.append("<figure>"))
    src = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    panel = preview_panel.PreviewPanel(src, db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}", study=study)
    assert panel.series.value == panel.series.options[0][1]  # a series and an instance chosen from the start
    assert panel.instance.value == src.instances(study)[0] == src.instances(study, panel.series.value)[0]
    [us_series] = [key for label, key in panel.series.options if " · US · " in label]
    panel.series.value = us_series
    [(label, us)] = panel.instance.options
    assert "⚠" not in label
    panel.run()
    assert panel.preview is not None and panel.preview.instance == us
    assert panel.instance.value == us and panel.series.value == us_series
    assert panel.instance.options[0][0] == f"{label} ⚠ quarantined"
    head = shown[0]
    assert "anonlib-verdict-quarantined" in head and "RecognizableVisualFeatures" in head
    assert "1 quarantined of" in head and "<table" not in head
    # those not released: an interactive table (sortable, searchable, paged) right under the verdict,
    # the instance by the same name as in the picker, with its reason
    [problems] = widgets
    assert "anonlib-problems" in problems.classes and "anonlib-itable" in problems.classes
    [row] = json.loads(problems._dt_args["data_json"])
    assert row[0] == label and "quarantined" in row and any("RecognizableVisualFeatures" in str(c) for c in row)
    assert shown[1] == "<figure>" and us not in head + json.dumps(row)  # a US has an image; its key (a path) is not shown
