"""The preview is a dry run: it predicts exactly what the real run writes, labels a provisional
identity as such, and writes nothing (SQLite store byte-identical, no file created)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pydicom
import pytest
from matplotlib.figure import Figure

from anonlib.errors import ConfigError, StoreError
from anonlib.folder_run import RunSettings, run_folder
from anonlib.preview import DIFF_COLUMNS, QUARANTINE_COLUMNS, SUMMARY_COLUMNS, StudyPreview, preview_study
from anonlib.profile import parse_site_profile
from anonlib.sources import FolderSource
from anonlib.store import MemoryStore, PatientKey, open_store
from anonlib.synthetic import Corpus

STATUSES = {"removed", "changed", "kept", "added"}


def _copy(corpus: Corpus, label: str, target: Path, study: int = 0) -> tuple[FolderSource, str]:
    uid = next(p for p in corpus.patients if p.label == label).study_uids[study]
    target.mkdir()
    for f in corpus.files:
        if f.patient == label and pydicom.dcmread(f.path, stop_before_pixels=True).StudyInstanceUID == uid:
            shutil.copy(f.path, target / f"{len(list(target.iterdir())):03d}.dcm")
    return FolderSource(target), uid


def _row(preview: StudyPreview, path: str) -> dict[str, str]:
    rows = preview.diff[preview.diff["path"] == path].to_dict("records")
    assert len(rows) == 1, path
    return {str(k): str(v) for k, v in rows[0].items()}


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def follow_up(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> StudyPreview:
    """Patient-1's follow-up study (CT, MR, RT, SEG, SR, GSPS, SC, US), unknown to the store."""
    source = FolderSource(corpus.root)
    store = tmp_path_factory.mktemp("nostore") / "lookup.sqlite3"
    return preview_study(source, corpus.patients[0].study_uids[1], db_url=f"sqlite:///{store}")


def test_diff_shape(follow_up: StudyPreview) -> None:
    diff = follow_up.diff
    assert list(diff.columns) == DIFF_COLUMNS and diff["path"].is_unique
    assert set(diff["status"]) == STATUSES
    assert set(diff["action"]) <= set("XZDKCUPA")
    assert all(isinstance(v, str) for column in DIFF_COLUMNS for v in diff[column])
    assert diff["path"].str.contains(r"\)\[1\]>\(").any()  # nested items, at every depth


def test_diff_rows_say_what_and_why(follow_up: StudyPreview) -> None:
    pseudonym = follow_up.identity.pseudonym
    name = _row(follow_up, "(0010,0010)")
    assert (name["keyword"], name["name"], name["status"], name["action"]) == (
        "PatientName", "Patient's Name", "changed", "P")
    assert name["deidentified"] == pseudonym and name["original"] and name["original"] != pseudonym
    assert name["rule"] == "anonlib default"  # anonlib's layer: a pseudonym, not an empty name
    address = _row(follow_up, "(0008,0081)")  # InstitutionAddress
    assert (address["status"], address["action"], address["rule"]) == ("removed", "X", "PS3.15 E.1-1 Basic Profile")
    others = _row(follow_up, "(0010,1002)")  # OtherPatientIDsSequence: removed with its items
    assert (others["status"], others["action"], others["deidentified"]) == ("removed", "X", "")
    nested = _row(follow_up, "(0010,1002)[0]>(0010,0020)")
    assert nested["status"] == "removed" and "removed with its sequence (0010,1002)" in nested["rule"]
    marker = _row(follow_up, "(0012,0062)")
    assert (marker["status"], marker["action"], marker["original"], marker["deidentified"]) == (
        "added", "A", "", "YES")
    study_date = _row(follow_up, "(0008,0020)")
    shifted = dt.datetime.strptime(study_date["original"], "%Y%m%d") + dt.timedelta(
        days=follow_up.identity.date_shift_days)
    assert study_date["deidentified"] == shifted.strftime("%Y%m%d") and study_date["status"] == "changed"
    assert _row(follow_up, "(0008,0060)")["status"] == "kept"


def test_rule_names_layer_and_note(follow_up: StudyPreview, corpus: Corpus) -> None:
    source = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    sr = next(k for k in source.instances(study) if pydicom.dcmread(k, stop_before_pixels=True).Modality == "SR")
    preview = preview_study(source, study, db_url=None, instance=sr)
    assert preview.instance == sr and "Type 2 in comprehensive-sr" in " ".join(preview.diff["rule"])
    assert "PS3.15 E.1-1 Basic Profile (kept: Type 2 in comprehensive-sr)" in set(preview.diff["rule"])


def test_summary_and_quarantine(follow_up: StudyPreview) -> None:
    summary = follow_up.summary
    assert list(summary.columns) == SUMMARY_COLUMNS and follow_up.instances == 16
    assert set(summary["status"]) == STATUSES
    assert summary["elements"].dtype == "int64" and summary["instances"].max() == 16
    removed = summary[(summary["status"] == "removed") & (summary["action"] == "X")].iloc[0]
    assert removed["instances"] == 16 and removed["elements"] > 16
    # counts for every instance: more than the one instance shown
    assert summary["elements"].sum() > len(follow_up.diff)
    quarantine = follow_up.quarantine
    assert list(quarantine.columns) == QUARANTINE_COLUMNS
    assert list(quarantine["outcome"]) == ["quarantined"]  # the US (a face); the SC's text is masked
    assert all(quarantine["reason"].str.len() > 10)


def test_images(follow_up: StudyPreview) -> None:
    assert follow_up.original_image.shape == (128, 128)
    assert (follow_up.original_image == follow_up.deidentified_image).all()  # a CT: pixels untouched
    figure = follow_up.images()
    assert isinstance(figure, Figure) and len([ax for ax in figure.axes if ax.images]) == 2
    assert isinstance(follow_up.figure(), Figure)


def test_new_patient_is_provisional_and_nothing_is_created(corpus: Corpus, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path / "home"))
    source, study = _copy(corpus, "patient-2", tmp_path / "src")
    preview = preview_study(source, study, db_url=None)
    identity = preview.identity
    assert not identity.existing and not identity.secret_existing and identity.provisional
    assert identity.describe().startswith("PROVISIONAL") and "UIDs shown are provisional" in identity.describe()
    assert identity.pseudonym.startswith("ANON") and identity.date_shift_days < 0
    assert not (tmp_path / "home").exists()  # no default store, not even its folder
    store = tmp_path / "lookup.sqlite3"
    preview_study(source, study, db_url=f"sqlite:///{store}")
    assert not store.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_preview_predicts_the_real_run_and_writes_nothing(corpus: Corpus, tmp_path: Path) -> None:
    source, study = _copy(corpus, "patient-2", tmp_path / "src")
    db_url = f"sqlite:///{tmp_path / 'lookup.sqlite3'}"
    profile = parse_site_profile({"name": "t", "remove": ["SeriesDescription"]})
    run_folder(RunSettings(tmp_path / "src", tmp_path / "out", db_url=db_url, profile=profile))
    before = _files(tmp_path)
    chosen = source.instances(study)[6]
    preview = preview_study(source, study, db_url=db_url, profile=profile, instance=chosen)
    assert _files(tmp_path) == before  # the store (and everything else) byte-for-byte unchanged
    identity = preview.identity
    assert identity.existing and identity.secret_existing and not identity.provisional
    store = open_store(db_url)
    assert store.find_patient(PatientKey(*next((p.patient_id, p.issuer) for p in corpus.patients
                                               if p.label == "patient-2"))).pseudonym == identity.pseudonym
    store.close()
    series = _row(preview, "(0008,103E)")
    assert (series["status"], series["action"], series["rule"]) == ("removed", "X", "site profile 't'")
    new_uid = _row(preview, "(0008,0018)")["deidentified"]
    output = next(pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == new_uid)
    kept = preview.diff[(preview.diff["status"] != "removed") & ~preview.diff["path"].str.contains(">")]
    assert set(kept["path"]) == ({f"({e.tag.group:04X},{e.tag.element:04X})" for e in output}
                                 | {f"({e.tag.group:04X},{e.tag.element:04X})" for e in output.file_meta})
    for row in kept.to_dict("records"):
        group, element = (int(x, 16) for x in str(row["path"])[1:-1].split(","))
        elem = (output.file_meta if group == 2 else output)[(group << 16) | element]
        if elem.VR not in ("SQ", "OB", "OW", "UN"):
            value = "\\".join(map(str, elem.value)) if elem.VM > 1 else str(elem.value if elem.value is not None else "")
            assert value == row["deidentified"], row["path"]
    assert preview.quarantine.empty


def test_bad_instance_choice(follow_up: StudyPreview, corpus: Corpus) -> None:
    with pytest.raises(ConfigError, match="not one of the study's instances"):
        preview_study(FolderSource(corpus.root), corpus.patients[0].study_uids[0], db_url=None,
                      instance=follow_up.instance)


def test_readonly_sqlite_store_refuses_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    writer = open_store(url)
    secret, identity = writer.secret(), writer.patient(PatientKey("1", "H"))
    writer.close()
    before = _files(tmp_path)
    with open_store(url, readonly=True) as reader:  # type: ignore[attr-defined]
        assert reader.find_secret() == secret and reader.secret() == secret
        assert reader.patient(PatientKey("1", "H")) == identity
        assert reader.find_patient(PatientKey("2", "H")) is None
        with pytest.raises(StoreError, match="read-only"):
            reader.patient(PatientKey("2", "H"))
        with pytest.raises(StoreError, match="read-only"):
            reader.record_instances([])
    assert _files(tmp_path) == before
    with open_store(f"sqlite:///{tmp_path / 'new.sqlite3'}", readonly=True) as empty:  # type: ignore[attr-defined]
        assert empty.find_secret() is None and list(empty.patients()) == [] and empty.study("1") is None
        with pytest.raises(StoreError, match="read-only"):
            empty.secret()
    assert not (tmp_path / "new.sqlite3").exists()


def test_memory_store_find_secret() -> None:
    store = MemoryStore()
    assert store.find_secret() is None
    assert store.find_secret() is None  # finding creates nothing
    assert store.secret() == store.find_secret()


class _Truncating(FolderSource):
    """A folder whose first instance arrives cut in half (as from a failing transfer)."""

    def read(self, instance: str) -> bytes:
        data = super().read(instance)
        return data[: len(data) // 2] if instance == self.instances(self.studies()["study"].iloc[0])[0] else data


def test_rejected_instance_is_reported_and_the_rest_previewed(corpus: Corpus, tmp_path: Path) -> None:
    _copy(corpus, "patient-2", tmp_path / "src")
    source = _Truncating(tmp_path / "src")
    study = str(source.studies()["study"].iloc[0])
    first = source.instances(study)[0]
    preview = preview_study(source, study, db_url=None, instance=first)
    assert preview.quarantine.to_dict("records") == [
        {"instance": first, "outcome": "rejected", "reason": preview.quarantine["reason"].iloc[0]}]
    assert "truncated" in preview.quarantine["reason"].iloc[0] or "readable" in preview.quarantine["reason"].iloc[0]
    assert preview.diff.empty and preview.summary["instances"].max() == preview.instances - 1
    assert preview.image_notes == ("rejected", "rejected")


def test_quarantined_instance_is_labelled(corpus: Corpus) -> None:
    source = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    us = next(k for k in source.instances(study) if pydicom.dcmread(k, stop_before_pixels=True).Modality == "US")
    preview = preview_study(source, study, db_url=None, instance=us)
    assert preview.quarantined is not None and "RecognizableVisualFeatures" in preview.quarantined
    titles = [ax.get_title() for ax in preview.images().axes]
    assert titles == ["original", "de-identified (quarantined: not released)"]


def test_burned_in_banner_is_masked_in_the_preview(corpus: Corpus) -> None:
    source = FolderSource(corpus.root)
    study = corpus.patients[0].study_uids[1]
    sc = next(k for k in source.instances(study) if pydicom.dcmread(k, stop_before_pixels=True).Modality == "OT")
    preview = preview_study(source, study, db_url=None, instance=sc)
    assert preview.quarantined is None and preview.original_image.ndim == 3
    assert preview.original_image.shape[:2] == (48, 128)  # the 96 x 256 capture, halved
    banner = (slice(1, 21), slice(1, 90))
    assert preview.original_image[banner].max() > 200  # white letters before
    assert preview.deidentified_image[banner].max() < 30  # masked after
    picture = (slice(26, 44), slice(20, 110))
    assert (preview.original_image[picture] == preview.deidentified_image[picture]).all()


def test_the_text_found_and_masked_is_drawn(tmp_path: Path) -> None:
    """A burned-in image: OCR's boxes outlined in red on the original, the masked ones in green
    on the de-identified image; a reviewer's rejection in the store is previewed as the run
    would apply it, and nothing is written."""
    import numpy as np

    from anonlib.pixels.draw import FOUND, MASKED
    from anonlib.pixels.review import REJECTED
    from anonlib.store import ReviewDecision, SqlStore
    from tests.burned_in import LINES, write_burned_in

    path = write_burned_in(tmp_path / "src")
    source = FolderSource(tmp_path / "src")
    study = str(source.studies()["study"].iloc[0])
    preview = preview_study(source, study, db_url=None)
    assert len(preview.found_boxes) >= 2 and preview.masked_boxes == preview.found_boxes
    assert preview.frame_shape == (256, 256) and preview.quarantine.empty and preview.quarantined is None
    assert min(b.y for b in preview.found_boxes) <= LINES[0][1] + 8
    figure = preview.images()
    before, after = (np.asarray(ax.images[0].get_array()) for ax in figure.axes if ax.images)
    assert (before == FOUND).all(axis=2).sum() > 20 and not (before == MASKED).all(axis=2).any()
    assert (after == MASKED).all(axis=2).sum() > 20 and not (after == FOUND).all(axis=2).any()
    assert "box(es) masked" in figure.axes[1].get_title()

    url = f"sqlite:///{tmp_path / 'lookup.sqlite3'}"
    with SqlStore(url) as store:
        store.record_review(ReviewDecision(str(pydicom.dcmread(path).SOPInstanceUID), "reject"))
    files = _files(tmp_path)
    rejected = preview_study(source, study, db_url=url)
    assert rejected.quarantined == REJECTED and rejected.masked_boxes == ()
    assert rejected.found_boxes == preview.found_boxes  # what OCR found, drawn all the same
    assert _files(tmp_path) == files
