"""Browse: the per-patient summary and the study order (pure functions of a studies table), and
the panel without a kernel on a folder of pydicom's CT_small in three series, one study
without PatientID: the newest study is selected at once, its series are titled, the slice
viewer shows the first slice and moves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from anonlib.sources.folder import FolderSource
from anonlib.sources.summary import (
    NO_PATIENT_ID,
    SUMMARY_COLUMNS,
    mark_missing_ids,
    newest_first,
    patient_summary,
)
from anonlib.ui import browse


def _studies() -> pd.DataFrame:
    rows = [
        ("s1", "P1", "P1", "Doe^Jane", "20210120", "CT/SEG", 2, 30),
        ("s2", "P1", "P1", "Doe^Jane", "20230105", "MR", 1, 10),
        ("s3", "P2", "P2", "Roe^Rick", "", "US", 1, 1),
        ("s4", "~study:9.9", "", "", "20220101", "CT", 3, 300),
    ]
    frame = pd.DataFrame(rows, columns=["study", "patient", "patient_id", "patient_name", "study_date",
                                        "modalities", "series", "instances"])
    return frame.astype({"series": "int64", "instances": "int64"})


def test_the_summary_counts_each_patients_studies_series_instances_dates_and_modalities() -> None:
    summary = patient_summary(_studies())
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary["patient"].tolist() == ["P1", "P2", "~study:9.9"]  # no PatientID last
    jane = summary.iloc[0].to_dict()
    assert (jane["studies"], jane["series"], jane["instances"]) == (2, 3, 40)
    assert (jane["first_date"], jane["last_date"], jane["modalities"]) == ("20210120", "20230105", "CT/MR/SEG")
    rick = summary.iloc[1].to_dict()
    assert (rick["first_date"], rick["last_date"]) == ("", "")  # undated, not invented
    assert summary["instances"].dtype == "int64"


def test_studies_newest_first_undated_last_and_no_blank_patient_id() -> None:
    ordered = newest_first(_studies())
    assert ordered["study"].tolist() == ["s2", "s4", "s1", "s3"]
    marked = mark_missing_ids(ordered)
    assert marked["patient_id"].tolist() == ["P1", NO_PATIENT_ID, "P1", "P2"]
    assert _studies()["patient_id"].tolist()[-1] == ""  # a copy: the input is untouched


def test_series_titles_and_study_labels() -> None:
    row = {"number": "3", "modality": "CT", "description": "AXIAL 5mm", "instances": 120}
    assert browse.series_title(row) == "Series 3 · CT · AXIAL 5mm · 120 instances"
    assert browse.series_title({"number": "", "modality": "", "description": "", "instances": 1}) \
        == "Series ? · no modality · no description · 1 instance"
    assert browse.study_label({"study_date": "20210120", "modalities": "CT", "description": "CHEST",
                               "patient_id": ""}) == f"2021-01-20 · CT · CHEST · {NO_PATIENT_ID}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two studies: one dated 2021 with a 3-slice series (InstanceNumbers against the z order)
    and a second series; one dated 2023 without PatientID."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    older, newer = generate_uid(), generate_uid()
    plan = [(older, "P1", "20210120", "1", [(1, 20.0), (2, 0.0), (3, 10.0)]), (older, "P1", "20210120", "2", [(1, 0.0)]),
            (newer, "", "20230105", "1", [(1, 0.0)])]
    for study, patient_id, date, number, slices in plan:
        series = generate_uid()
        for instance, z in slices:
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.PatientID, ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = patient_id, date, number, instance
            ds.ImagePositionPatient = [0.0, 0.0, z]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.save_as(tmp_path / f"{ds.SOPInstanceUID}.dcm")
    return tmp_path


def test_the_panel_selects_the_newest_study_and_shows_its_slices(folder: Path) -> None:
    panel = browse.BrowsePanel(FolderSource(folder))
    labels = [label for label, _key in panel.study.options]
    assert labels[0].startswith("2023-01-05") and labels[0].endswith(NO_PATIENT_ID)
    assert panel.study.value == panel.study.options[0][1]  # selected without a click
    assert panel.viewer_series.options and panel.viewer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    summary, studies = panel.summary_box.children[0], panel.studies_box.children[0]
    assert "anonlib-patient-summary" in summary.classes and "anonlib-studies" in studies.classes
    assert NO_PATIENT_ID in summary._dt_args["data_json"] and "2023-01-05" in studies._dt_args["data_json"]

    assert studies.selected_rows == [0]  # the selected study's row is highlighted
    studies.selected_rows = [1]  # a click on the 2021 study's row selects it: two series
    assert panel.study.value == panel.study.options[1][1]
    titles = [label for label, _ in panel.viewer_series.options]
    assert len(titles) == 2 and titles[0].startswith("Series 1 · CT · ") and titles[0].endswith(" · 3 instances")
    viewer = panel.viewer
    assert viewer.slider.max == 3 and viewer.label.value.startswith("slice 1 / 3 · instance 2")  # z = 0 first
    first = viewer.image.value
    viewer.slider.value = 3
    assert viewer.label.value.startswith("slice 3 / 3 · instance 1")  # z = 20 last
    viewer.preset.value = "lung"
    assert viewer.image.value != first


class _OneFile:
    """A source of one instance (the slice viewer asks only for instances and bytes)."""

    kind, name = "folder", "one"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def instances(self, study: str, series: str | None = None) -> list[str]:
        return ["only"]

    def read(self, instance: str) -> bytes:
        return self.data


def _bytes(ds: pydicom.Dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_the_viewer_says_in_one_line_why_a_slice_cannot_be_shown() -> None:
    from anonlib.ui.slice_viewer import SliceViewer

    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:100]  # shorter than Rows × Columns says
    viewer = SliceViewer(_OneFile(_bytes(ds)))  # type: ignore[arg-type]
    viewer.load("study", "series")
    assert viewer.image.value == b"" and "cannot show" in viewer.label.value
    assert "Traceback" not in viewer.label.value and "\n" not in viewer.label.value


def test_the_viewer_pages_through_the_frames_of_a_multi_frame_instance() -> None:
    from anonlib.ui.slice_viewer import SliceViewer

    path = get_testdata_file("emri_small.dcm")
    assert path is not None
    viewer = SliceViewer(_OneFile(_bytes(pydicom.dcmread(path))))  # type: ignore[arg-type]
    viewer.load("study", "series")
    assert viewer.slider.max == 10 and "frame 1 / 10" in viewer.label.value
    first = viewer.image.value
    viewer.slider.value = 10
    assert "frame 10 / 10" in viewer.label.value and viewer.image.value != first
