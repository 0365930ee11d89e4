"""Re-identification against a real PostgreSQL lookup store (issue 13, item 7): pydicom's test
files de-identified into it by the CLI; lookups give the originals back; the access log there
holds no value; the export matches the store; a version-1 database gains the new tables."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import delete, func, select, text

from anonlib import cli
from anonlib.store.db import make_engine
from anonlib.store.sql import SqlStore
from anonlib.store.tables import access_log, schema_version, uid

FILES = ("CT_small.dcm", "MR_small.dcm")


def _deidentify(tmp_path: Path, url: str) -> list[tuple[pydicom.Dataset, pydicom.Dataset]]:
    """(original, de-identified) headers of each file, matched by the store's instance map."""
    src = tmp_path / "in"
    src.mkdir()
    for name in FILES:
        shutil.copy(str(get_testdata_file(name)), src / name)
    assert cli.main(["deidentify", str(src), str(tmp_path / "out"), "--db", url, "--burned-in", "allow",
                     "--no-progress"]) == 0
    originals = {str(ds.PatientID): ds for ds in (pydicom.dcmread(p, stop_before_pixels=True)
                                                  for p in sorted(src.iterdir()))}
    pairs = []
    for path in sorted((tmp_path / "out").rglob("*.dcm")):
        out = pydicom.dcmread(path, stop_before_pixels=True)
        with SqlStore(url) as store:
            patient = next(k for k, i in store.patients() if i.pseudonym == out.PatientID)
        pairs.append((originals[patient.patient_id], out))
    assert len(pairs) == len(FILES)
    return pairs


def test_lookups_export_and_access_log_on_postgresql(pg_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _deidentify(tmp_path, pg_url)
    capsys.readouterr()
    for original, out in pairs:
        for query, expected in ((out.PatientID, original.PatientID), (out.StudyInstanceUID, original.StudyInstanceUID),
                                (out.SOPInstanceUID, original.SOPInstanceUID),
                                (out.SeriesInstanceUID, original.SeriesInstanceUID)):
            assert cli.main(["reidentify", str(query), "--db", pg_url, "--user", "pg-user"]) == 0
            assert capsys.readouterr().out == f"{expected}\n"
    assert cli.main(["reidentify", "2.25.1", "--db", pg_url]) == 1  # never issued

    target = tmp_path / "keys"
    assert cli.main(["mapping", "export", str(target), "--db", pg_url, "--user", "pg-user"]) == 0
    with (target / "patid_mapping.csv").open(newline="") as handle:
        patid = list(csv.reader(handle))
    with (target / "uid_mapping.csv").open(newline="") as handle:
        uids = list(csv.reader(handle))
    assert patid[0] == uids[0] == ["id_old", "id_new"]
    assert sorted(map(tuple, patid[1:])) == sorted((str(o.PatientID), str(d.PatientID)) for o, d in pairs)
    exported = {tuple(row) for row in uids[1:]}
    assert len(exported) == len(uids) - 1
    for o, d in pairs:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword in o:
                assert (str(o[keyword].value), str(d[keyword].value)) in exported, keyword

    engine = make_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(select(access_log).order_by(access_log.c.id)).all()
    engine.dispose()
    assert [(r.action, r.result) for r in rows] == (
        [("lookup", "patient"), ("lookup", "study"), ("lookup", "instance"), ("lookup", "uid")] * len(pairs)
        + [("lookup", "not found"), ("export", "patid_mapping.csv, uid_mapping.csv")])
    assert rows[-1].entries == len(patid) + len(uids) - 2
    assert all(r.accessed_at.utcoffset() is not None for r in rows)  # timestamptz
    values = {str(v) for o, d in pairs for ds in (o, d)
              for v in (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)}
    for row in rows:
        assert not any(value in str(cell) for cell in row for value in values), row


def test_a_version_1_database_gains_the_new_tables(pg_url: str) -> None:
    SqlStore(pg_url).close()
    engine = make_engine(pg_url)
    with engine.begin() as conn:  # back to what anonlib 1 created
        conn.execute(text("DROP TABLE anonlib_access_log"))
        conn.execute(text("DROP TABLE anonlib_uid"))
        conn.execute(delete(schema_version))
        conn.execute(schema_version.insert().values(version=1))
    with SqlStore(pg_url, readonly=True) as reader:
        assert reader.access_log() == []  # read-only: nothing created
    with SqlStore(pg_url) as store:
        assert store.access_log() == []
    with engine.connect() as conn:
        assert conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars().all() == [1, 2]
        assert conn.scalar(select(func.count()).select_from(access_log)) == 0
        assert conn.scalar(select(func.count()).select_from(uid)) == 0  # back, empty
    engine.dispose()
