"""How every table reads (anonlib.ui.tables, through render.table_html and the interactive
widget): headers, DICOM dates / times / date-times, person names, short UIDs with the full value
on hover, values of other shapes untouched, HTML in values escaped."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from anonlib.ui import render, tables

STUDY_UID = "1.2.826.0.1.3680043.10.543.76123086.354841.1"
ORTHANC_ID = "27f7126f-4f66fd49-b0c5a4c4-6f8f4a61-a1a6e2d5"


@pytest.mark.parametrize(("column", "label"), [
    ("patient_id", "Patient ID"), ("study_date", "Study Date"), ("sop_uid", "SOP UID"), ("status", "Status"),
    ("pixel stage", "Pixel Stage"), ("vr", "VR"), ("instances", "Instances")])
def test_headers_read_as_words(column: str, label: str) -> None:
    assert tables.header_label(column) == label


@pytest.mark.parametrize(("kind", "value", "shown"), [
    ("date", "20210120", "2021-01-20"),
    ("date", "1970.03.28", "1970-03-28"),  # ACR-NEMA's dotted form
    ("date", "2021", "2021"),  # not a full date: as it is
    ("date", "", ""),
    ("time", "143015.123", "14:30:15.123"),
    ("time", "0930", "09:30"),
    ("time", "993015", "993015"),  # no such hour: as it is
    ("datetime", "20210120143015+0100", "2021-01-20 14:30:15 +0100"),
    ("datetime", "20210120", "2021-01-20"),
    ("name", "Ravensworth^Florian^Peregrine", "Ravensworth, Florian Peregrine"),
    ("name", "Doe^Jane^^Dr^PhD", "Doe, Dr Jane, PhD"),
    ("name", "Yamada^Tarou=山田^太郎", "Yamada, Tarou = 山田, 太郎"),
    ("name", "ANONYMOUS", "ANONYMOUS"),
    ("name", None, ""),
    ("uid", STUDY_UID, STUDY_UID[:8] + "…" + STUDY_UID[-6:]),
    ("uid", ORTHANC_ID, ORTHANC_ID[:8] + "…" + ORTHANC_ID[-6:]),
    ("uid", "1.2.3", "1.2.3"),  # short: as it is
    ("uid", "~study:" + STUDY_UID, "~study:" + STUDY_UID[:8] + "…" + STUDY_UID[-6:]),
    ("uid", "/data/in/a.dcm", "/data/in/a.dcm"),  # not a UID: as it is
    ("text", "20210120", "20210120"),  # only date columns hold dates
    ("text", "Doe^Jane", "Doe^Jane"),
])
def test_values_are_shown_by_kind(kind: tables.Kind, value: object, shown: str) -> None:
    assert tables.format_value(kind, value) == shown


@pytest.mark.parametrize(("column", "dtype", "kind"), [
    ("study_date", object, "date"), ("birth_date", object, "date"), ("patient_name", object, "name"),
    ("study", object, "uid"), ("series", object, "uid"), ("sop_instance_uid", object, "uid"),
    ("series", "int64", "number"), ("instances", "int64", "number"), ("patient_id", object, "text"),
    ("accession", object, "text"), ("pseudonym", object, "text"), ("name", object, "text"),
    ("acquisition_datetime", object, "datetime"), ("study_time", object, "time")])
def test_column_kinds_follow_the_tables_naming(column: str, dtype: object, kind: str) -> None:
    values = pd.Series([1] if dtype == "int64" else ["x"], dtype=dtype)  # type: ignore[call-overload]
    assert tables.column_kind(column, values) == kind


def _studies() -> pd.DataFrame:
    return pd.DataFrame({
        "study": [STUDY_UID, "1.2.3"], "patient_id": ["1.2.840.10008.5.1.4.1.1.2.99999", "<b>x</b>"],
        "patient_name": ["Doe^Jane", "O'Hara^<script>alert(1)</script>"],
        "study_date": ["20210120", "2021"], "accession": ["20210120", "A&B"],
        "pseudonym": ["ANON-1.2.3.4.5.6.7.8.9.10.11", "P1"],
        "series": pd.Series([2, 10], dtype="int64")})


def test_table_html_formats_cells_and_keeps_the_full_uid_on_hover() -> None:
    text = render.table_html(_studies(), css_class="anonlib-studies")
    assert '<table class="anonlib-table anonlib-studies">' in text
    assert "<th>Patient ID</th>" in text and "<th>Study Date</th>" in text and "patient_id" not in text
    assert f'<span class="anonlib-uid" title="{STUDY_UID}">{STUDY_UID[:8]}…{STUDY_UID[-6:]}</span>' in text
    assert "<td>1.2.3</td>" in text  # a short key as it is, no title
    assert "<td>Doe, Jane</td>" in text and "<td>2021-01-20</td>" in text and "<td>2021</td>" in text
    # values of columns that are not dates, names or UIDs are never reshaped
    assert "<td>1.2.840.10008.5.1.4.1.1.2.99999</td>" in text  # a PatientID that looks like a UID
    assert "<td>20210120</td>" in text  # an accession number that looks like a date
    assert "<td>ANON-1.2.3.4.5.6.7.8.9.10.11</td>" in text
    assert "<td>2</td>" in text and "<td>10</td>" in text


def test_html_in_values_stays_escaped() -> None:
    text = render.table_html(_studies())
    assert "<script>" not in text and "<b>x</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "A&amp;B" in text
    hostile = pd.DataFrame({"study_uid": ['1.2.3.4.5.6.7.8.9.10.11.12.13"><script>x</script>']})
    assert "<script>" not in render.table_html(hostile)


def test_row_classes_and_the_row_limit_are_kept() -> None:
    diff = pd.DataFrame({"keyword": ["PatientName", "StudyDate", "Modality"], "status": ["removed", "changed", "kept"]})
    text = render.diff_html(diff, max_rows=2)
    assert re.findall(r'<tr class="status-(\w+)">', text) == ["removed", "changed"]
    assert "… 1 more rows" in text


def test_headers_never_break_inside_a_word() -> None:
    style = render.STYLE
    header = re.search(r"table\.anonlib-table th \{([^}]*)\}", style)
    assert header is not None and "white-space: nowrap" in header[1]
    assert "anywhere" not in style and "break-all" not in style


def test_the_interactive_table_shows_the_same_cells_offline() -> None:
    import json

    widget = tables.interactive_table(_studies(), css_class="anonlib-studies")
    assert type(widget).__name__ == "ITable"
    assert "anonlib-itable" in widget.classes and "anonlib-studies" in widget.classes
    args = widget._dt_args
    assert args["column_filters"] == "footer" and args["pageLength"] == 10
    assert args["layout"]["topStart"] == "search"  # kept on short tables
    data = json.loads(args["data_json"])
    assert data[0][2] == "Doe, Jane" and data[0][-1] == 2  # formatted text; numbers stay numbers
    assert "&lt;script&gt;" in data[1][2]  # escaped: the widget shows HTML (for the UID titles)
    assert "http" not in json.dumps(args)  # nothing fetched from a CDN
    assert [c for c in tables.display_frame(_studies()).columns][:3] == ["Study", "Patient ID", "Patient Name"]
