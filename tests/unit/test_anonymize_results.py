"""The anonymize notebook's results and progress: the summary banner and per-study table are the
run's own accounting (rejected and quarantined studies first, highlighted); Cancel stops a run
between files with nothing half-written and a summary that says so; the live progress of queued
studies polls a (fake) queue until every study is done or held, or is stopped; and the panel
runs its work in a thread, so Cancel and the live table work in a kernel."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib import workflows
from anonlib.folder_run import RunSettings, RunSummary, discover_files, run_folder
from anonlib.sources.folder import FolderSource
from anonlib.synthetic import Corpus
from anonlib.ui import anonymize_panel, job_progress, run_results


def _study_of(root: Path) -> dict[str, str]:
    """file label → its StudyInstanceUID ("unreadable" for a file that is not DICOM)."""
    found = {}
    for path in discover_files(root):
        try:
            study = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        except Exception:  # noqa: BLE001 - a bad file of the corpus
            study = "unreadable"
        found[str(path.relative_to(root))] = study
    return found


@pytest.fixture(scope="module")
def corpus_run(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("results")
    src = tmp / "src"
    shutil.copytree(corpus.root, src)
    shutil.copy(get_testdata_file("CT_small.dcm"), src / "ct_small.dcm")  # a study of its own
    summary = run_folder(RunSettings(src, tmp / "out", db_url=f"sqlite:///{tmp / 'lookup.sqlite3'}"))
    return summary, _study_of(src), tmp / "out"


def test_the_study_table_accounts_for_every_file_with_problems_first(
        corpus_run: tuple[RunSummary, dict[str, str], Path]) -> None:
    summary, study_of, _ = corpus_run
    assert summary.quarantined and summary.rejected  # the corpus has both
    table = run_results.study_results(summary, study_of, {"unreadable": "bad files"})
    assert "not processed" not in table.columns  # not cancelled
    assert len(table) == len(set(study_of.values()))
    # the summary's own counts, split by study: they add up to the run's
    for column, total in (("files", len(summary.results)), ("de-identified", summary.processed),
                          ("quarantined", summary.quarantined), ("rejected", len(summary.rejected)),
                          ("written", summary.changes("written"))):
        assert table[column].sum() == total, column
    statuses = list(table["status"])
    assert statuses[0] == "rejected" and "bad files" in set(table[table["status"] == "rejected"]["study"])
    assert statuses.index("quarantined") < statuses.index("done")
    assert statuses == sorted(statuses, key=run_results.STATUSES.index)
    quarantined = table[table["status"] == "quarantined"].iloc[0]
    pseudonym, folder = quarantined["output"].split("/")  # where its files are: pseudonym/date_study
    assert pseudonym.startswith("ANON") and folder[:8].isdigit()
    assert quarantined["reasons"]  # why, with a count


def test_the_banner_and_html_use_the_runs_accounting(corpus_run: tuple[RunSummary, dict[str, str], Path]) -> None:
    summary, study_of, out = corpus_run
    banner = run_results.summary_banner(summary)
    assert summary.describe() in banner and "attention" in banner and "Cancelled" not in banner
    assert f"<b>{len(summary.rejected)}</b> rejected" in banner
    assert f"<b>{summary.quarantined}</b> quarantined" in banner
    assert f"<b>{summary.changes('written')}</b> written" in banner
    done = workflows.Anonymized(summary, study_of, out, out.with_name("out-quarantine"))
    headless = run_results.results_html(done, interactive=False)
    assert "<a " not in headless and f"<code>{out / 'manifest.csv'}</code>" in headless
    assert "quarantine.csv</code>" in headless
    assert 'class="status-rejected"' in headless and 'class="status-quarantined"' in headless
    assert "anonlib-results" in headless and "anonlib-problem-files" in headless
    problems = run_results.problem_files(summary)
    assert len(problems) == summary.quarantined + len(summary.rejected)
    assert list(problems["status"]) == sorted(problems["status"], key=["rejected", "quarantined"].index)


def test_links_open_in_jupyterlab_under_its_root_and_are_plain_text_elsewhere(tmp_path: Path) -> None:
    manifest = tmp_path / "out" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("path\n")
    notebooks = tmp_path / "notebooks"
    link = run_results.file_link(manifest, interactive=True, root=tmp_path, cwd=notebooks)
    assert "href='../out/manifest.csv'" in link
    outside = run_results.file_link(manifest, interactive=True, root=notebooks, cwd=notebooks)
    assert "href" not in outside and str(manifest) in outside
    assert "href" not in run_results.file_link(manifest, interactive=False, root=tmp_path, cwd=notebooks)


def test_cancel_stops_between_files_with_nothing_half_written(corpus: Corpus, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(corpus.root, src)
    stop = threading.Event()

    def on_result(_result: Any, done: int, _total: int) -> None:
        if done == 3:
            stop.set()  # the Cancel button

    out = tmp_path / "out"
    summary = run_folder(RunSettings(src, out, db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}"),
                         on_result=on_result, stop=stop.is_set)
    files = discover_files(src)
    assert summary.cancelled and len(summary.results) == 3 and summary.total == len(files)
    assert summary.describe().startswith(f"cancelled after 3 of {len(files)} files ({len(files) - 3} not processed): ")
    written = sorted(out.rglob("*.dcm"))
    assert not [p for p in out.rglob(".tmp-*")]
    released = [r for r in summary.results if r.status in ("written", "unchanged", "replaced")]
    assert len(written) == len(released)
    for path in written:  # whole files, each in the manifest
        assert pydicom.dcmread(path).SOPInstanceUID
    manifest = pd.read_csv(out / "manifest.csv")
    assert sorted(manifest["path"]) == sorted(str(p.relative_to(out)) for p in written)
    banner = run_results.summary_banner(summary)
    assert f"Cancelled: 3 of {len(files)} files processed, {len(files) - 3} not started" in banner
    table = run_results.study_results(summary, _study_of(src))
    assert table["not processed"].sum() == len(files) - 3 and "cancelled" in set(table["status"])
    assert table["files"].sum() == len(files)


def test_cancel_with_worker_processes_counts_every_file_written(corpus: Corpus, tmp_path: Path) -> None:
    """With workers, the tasks not started are cancelled and those already started finish: every
    file on disk is in the results and the manifest, and the rest is not processed."""
    src = tmp_path / "src"
    shutil.copytree(corpus.root, src)
    stop = threading.Event()
    out = tmp_path / "out"
    summary = run_folder(RunSettings(src, out, db_url=f"sqlite:///{tmp_path / 'lookup.sqlite3'}", workers=2),
                         on_result=lambda _r, done, _t: stop.set() if done == 1 else None, stop=stop.is_set)
    assert summary.cancelled and 1 <= len(summary.results) < summary.total == len(discover_files(src))
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.dcm"))
    released = [r for r in summary.results if r.status in ("written", "unchanged", "replaced")]
    assert len(written) == len(released) and sorted(pd.read_csv(out / "manifest.csv")["path"]) == written
    assert summary.describe().startswith(f"cancelled after {len(summary.results)} of {summary.total} files")


# -- live progress of queued studies ------------------------------------------------------------

QUEUED = [("intake", "s1"), ("intake", "s2")]


def _jobs(*states: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"id": n + 10, "node": "intake", "study_id": study, "status": status, "attempts": 1,
                          "outcome": "done" if status == "succeeded" else "", "error_class": ""}
                         for n, (study, status) in enumerate(states)])


HELD = pd.DataFrame([{"node": "intake", "study": "s2", "job": 11, "instances": 2, "runs": 1,
                      "reason": "audit failed: leak/A names (2)"}])
NO_HELD = HELD.iloc[0:0]


def test_study_progress_names_each_queued_studys_state_and_the_held_reason() -> None:
    early = job_progress.study_progress(QUEUED, _jobs(("s1", "doing")), NO_HELD)
    assert list(early["state"]) == ["running", "waiting"] and not job_progress.settled(early)
    late = job_progress.study_progress(QUEUED, _jobs(("s1", "succeeded"), ("s2", "succeeded")), HELD)
    assert list(late["state"]) == ["done", "held"] and job_progress.settled(late)
    assert late.loc[1, "reason"] == "audit failed: leak/A names (2)"
    retried = job_progress.study_progress(QUEUED, _jobs(("s1", "failed"), ("s2", "todo")), HELD)
    assert list(retried["state"]) == ["failed", "queued"]  # a held study queued again is not held


def test_the_poller_polls_until_every_study_has_settled() -> None:
    answers = [_jobs(("s1", "todo"), ("s2", "todo")), _jobs(("s1", "doing"), ("s2", "todo")),
               _jobs(("s1", "succeeded"), ("s2", "succeeded"))]
    seen: list[list[str]] = []
    poller = job_progress.Poller(lambda: job_progress.study_progress(QUEUED, answers.pop(0), HELD),
                                 lambda table: seen.append(list(table["state"])), on_error=pytest.fail,
                                 interval=0).start()
    poller.thread.join(timeout=30)
    assert not poller.thread.is_alive()
    assert seen == [["queued", "queued"], ["running", "queued"], ["done", "held"]] and not answers


def test_the_poller_stops_when_asked_and_reports_an_error_once() -> None:
    seen: list[object] = []

    def update(table: pd.DataFrame) -> None:
        seen.append(table)
        if len(seen) == 2:
            poller.stop()  # Cancel

    poller = job_progress.Poller(lambda: job_progress.study_progress(QUEUED, _jobs(), NO_HELD), update,
                                 on_error=pytest.fail, interval=0)
    poller.start().thread.join(timeout=30)
    assert len(seen) == 2 and poller.stopped and poller.polls == 2
    errors: list[Exception] = []

    def broken() -> pd.DataFrame:
        raise ConnectionError("database gone")

    failing = job_progress.Poller(broken, pytest.fail, on_error=errors.append, interval=0).start()
    failing.thread.join(timeout=30)
    assert [str(e) for e in errors] == ["database gone"]


# -- the panel, without a kernel ----------------------------------------------------------------

def _html(panel: anonymize_panel.AnonymizePanel) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in panel.out.outputs)


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        shutil.copy(get_testdata_file(name), src / name)
    face = pydicom.dcmread(get_testdata_file("MR_small.dcm"))  # a face that cannot be cleaned: quarantined
    face.RecognizableVisualFeatures = "YES"
    face.SOPInstanceUID = face.SOPInstanceUID + ".9"
    face.save_as(src / "face.dcm")
    return src


def test_the_panel_runs_in_a_thread_and_shows_the_summary_and_studies(small_folder: Path, tmp_path: Path) -> None:
    panel = anonymize_panel.AnonymizePanel(FolderSource(small_folder), db_url=f"sqlite:///{tmp_path / 'l.sqlite3'}",
                                           output=str(tmp_path / "out"))
    panel.studies.value = tuple(key for _label, key in panel.studies.options)
    panel.run().join(timeout=120)
    assert panel.count.value == "4 / 4 files" and (panel.bar.value, panel.bar.max) == (4, 4)
    assert not panel.button.disabled and panel.cancel.disabled
    html = _html(panel)
    assert "Done: 4 files" in html and "anonlib-results" in html and "manifest.csv" in html
    assert html.index('class="status-quarantined"') < html.index('class="status-done"')  # its study first
    heading, table = panel.files.children  # the file list: an interactive table
    assert heading.value == "<h4>Files not released (1)</h4>" and "anonlib-problem-files" in table.classes
    for path in small_folder.iterdir():  # the operator sees the studies by date and description, not by name
        assert str(pydicom.dcmread(path, stop_before_pixels=True).PatientName) not in html


def test_the_output_field_chooses_where_the_copy_goes_and_an_empty_one_is_refused(small_folder: Path,
                                                                                 tmp_path: Path) -> None:
    """The notebook's ``output`` is only the field's first value: the user points the copy
    elsewhere from the panel; an emptied field is one line, and nothing is written anywhere."""
    panel = anonymize_panel.AnonymizePanel(FolderSource(small_folder), db_url=f"sqlite:///{tmp_path / 'l.sqlite3'}",
                                           output=str(tmp_path / "default"))
    assert panel.output_field.value == str(tmp_path / "default") and panel.output_field in panel.children
    panel.studies.value = tuple(key for _label, key in panel.studies.options)
    panel.output_field.value = str(tmp_path / "mine")
    panel.run().join(timeout=120)
    assert (tmp_path / "mine" / "manifest.csv").is_file() and not (tmp_path / "default").exists()
    before = sorted(p.name for p in tmp_path.iterdir())
    panel.output_field.value = "  "
    panel.run().join(timeout=120)
    assert "no output folder given" in _html(panel) and "Traceback" not in _html(panel)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cancel_in_the_panel_stops_the_run_and_says_so(small_folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    panel = anonymize_panel.AnonymizePanel(FolderSource(small_folder), db_url=f"sqlite:///{tmp_path / 'l.sqlite3'}",
                                           output=str(tmp_path / "out"))
    panel.studies.value = tuple(key for _label, key in panel.studies.options)
    shown = panel._progress

    def progress(done: int, total: int, unit: str = "files") -> None:
        shown(done, total, unit)
        if done == 1:
            panel.request_cancel()  # what a click does, between two files

    monkeypatch.setattr(panel, "_progress", progress)
    panel.run().join(timeout=120)
    html = _html(panel)
    assert "Cancelled: 1 of 4 files processed, 3 not started" in html
    assert panel.count.value == "1 / 4 files (cancelled)" and not panel.button.disabled


class _Node:
    kind, name = "orthanc", "intake"

    def studies(self) -> pd.DataFrame:
        return pd.DataFrame([{"study": s, "study_date": "", "modalities": "CT", "description": "", "patient_name": "X"}
                             for _, s in QUEUED])


def test_a_queued_run_shows_live_progress_until_done_or_held(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [_jobs(("s1", "todo"), ("s2", "doing")), _jobs(("s1", "succeeded"), ("s2", "succeeded"))]
    asked: list[object] = []
    monkeypatch.setattr(anonymize_panel.workflows, "anonymize", lambda *a, **k: workflows.Anonymized(
        queued=pd.DataFrame({"study": ["s1", "s2"], "job": [10, 11], "new": [True, True]})))

    def job_states(**kwargs: Any) -> pd.DataFrame:
        asked.append(kwargs["studies"])
        return answers.pop(0)

    monkeypatch.setattr(anonymize_panel.workflows, "job_states", job_states)
    monkeypatch.setattr(anonymize_panel.workflows, "held_studies", lambda: HELD)
    panel = anonymize_panel.AnonymizePanel(_Node(), db_url="", output="")  # type: ignore[arg-type]
    panel.POLL_SECONDS = 0
    panel.studies.value = ("s1", "s2")
    panel.run().join(timeout=30)
    assert panel.poller is not None
    panel.poller.thread.join(timeout=30)
    assert asked == [QUEUED, QUEUED] and not answers
    assert "2 studies queued" in _html(panel)
    assert "status-held" in panel.live.value and "audit failed: leak/A names (2)" in panel.live.value
    assert "1 held by the audit gate" in panel.live.value and panel.count.value == "2 / 2 studies settled"
    assert not panel.button.disabled
