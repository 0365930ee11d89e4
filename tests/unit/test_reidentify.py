"""Re-identification for authorised users (issue 13, item 7): ``anonlib reidentify`` and
``anonlib mapping``, on SQLite stores built by de-identifying pydicom's own test files.

The lookups must give back the true originals; the access log must hold who, when and what kind,
never a value (neither the query nor the answer, nor a plain digest of either); the export must
match the store and never land inside an output tree.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib import cli
from anonlib.constellation.info import ConstellationInfo
from anonlib.engine import UidMapper
from anonlib.errors import ConfigError
from anonlib.mapping_export import OUTPUT_MARKERS, export_mapping, output_tree_of
from anonlib.pipeline import MANIFEST, QUARANTINE_MANIFEST
from anonlib.reidentify import accessor, open_key_store, reidentify, value_digest
from anonlib.store import (
    AccessEntry,
    InstanceRecord,
    MemoryStore,
    PatientKey,
    SqliteStore,
    StudyRecord,
    open_store,
)
from anonlib.store import Original as StoreOriginal
from anonlib.store.sql import SqlStore
from anonlib.store.sqlite_schema import TABLES

#: pydicom's bundled files (offline), each one patient, one study, one instance.
FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "waveform_ecg.dcm")


@dataclass(frozen=True)
class Original:
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass(frozen=True)
class Deidentified:
    """One de-identified output file and the original it came from."""

    pseudonym: str
    study_uid: str
    series_uid: str
    sop_uid: str
    original: Original


@dataclass(frozen=True)
class Project:
    root: Path
    url: str
    output: Path
    outputs: tuple[Deidentified, ...]


def _originals(src: Path) -> dict[str, Original]:
    found = {}
    for path in sorted(src.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[str(ds.SOPInstanceUID)] = Original(str(ds.PatientID), str(ds.StudyInstanceUID),
                                                 str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The test files de-identified by the CLI into an output tree, with their SQLite store."""
    root = tmp_path_factory.mktemp("reid")
    src = root / "in"
    src.mkdir()
    for name in FILES:
        shutil.copy(str(get_testdata_file(name)), src / name)
    url = f"sqlite:///{root / 'store.sqlite3'}"
    assert cli.main(["deidentify", str(src), str(root / "out"), "--db", url, "--burned-in", "allow",
                     "--no-progress"]) == 0
    originals = _originals(src)
    # Each output's original: the store's instance map read directly (independent of the code under test).
    with sqlite3.connect(root / "store.sqlite3") as conn:
        by_new = dict(conn.execute("SELECT new_sop_uid, original_sop_uid FROM anonlib_instance").fetchall())
    outputs = []
    for path in sorted((root / "out").rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        outputs.append(Deidentified(str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                    str(ds.SOPInstanceUID), originals[by_new[str(ds.SOPInstanceUID)]]))
    assert len(outputs) == len(FILES)
    return Project(root, url, root / "out", tuple(outputs))


@pytest.fixture
def store_copy(project: Project, tmp_path: Path) -> str:
    """A fresh copy of the project's store (tests that write the access log stay independent)."""
    shutil.copy(project.root / "store.sqlite3", tmp_path / "store.sqlite3")
    return f"sqlite:///{tmp_path / 'store.sqlite3'}"


def _log_rows(url: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT * FROM anonlib_access_log ORDER BY id").fetchall()


def _assert_no_value(rows: list[tuple[object, ...]], values: set[str]) -> None:
    """No cell holds a value, its SHA-256 or its SHA-1 (a plain digest is as good as the value
    to anyone with a list of candidates)."""
    forbidden = set(values)
    for value in values:
        forbidden |= {hashlib.sha256(value.encode()).hexdigest(), hashlib.sha1(value.encode()).hexdigest()}
    for row in rows:
        for cell in row:
            text = str(cell)
            assert not any(v and (v in text or text in v and len(text) >= 8) for v in forbidden), row


# --- lookups ---------------------------------------------------------------------------------


def test_pseudonyms_and_uids_lead_back_to_the_true_originals(project: Project, store_copy: str) -> None:
    with open_store(store_copy) as store:
        for out in project.outputs:
            patient = reidentify(store, out.pseudonym, "alice")
            assert patient is not None and (patient.kind, patient.value) == ("patient", out.original.patient_id)
            study = reidentify(store, out.study_uid, "alice")
            assert study is not None and (study.kind, study.value) == ("study", out.original.study_uid)
            instance = reidentify(store, f" {out.sop_uid}\n", "alice")  # pasted with white space
            assert instance is not None and (instance.kind, instance.value) == ("instance", out.original.sop_uid)
            assert out.pseudonym != out.original.patient_id and out.sop_uid != out.original.sop_uid


def test_every_replaced_uid_leads_back_to_its_original(project: Project, store_copy: str) -> None:
    """Series and frame-of-reference UIDs too: the engine's every replacement is on record."""
    with open_store(store_copy) as store:
        for out in project.outputs:
            series = reidentify(store, out.series_uid, "alice")
            assert series is not None and (series.kind, series.value) == ("uid", out.original.series_uid)
        ct = next(o for o in project.outputs if o.original.patient_id == "1CT1")
        original = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
        new = pydicom.dcmread(next(project.output.rglob(f"*{ct.sop_uid}*")), stop_before_pixels=True)
        found = reidentify(store, str(new.FrameOfReferenceUID), "alice")
        assert found is not None and found.value == original.FrameOfReferenceUID


def test_originals_and_unknown_values_are_not_found(project: Project, store_copy: str) -> None:
    """Only the stored map answers: an original value (the reverse direction), an unknown UID
    and an empty query find nothing — and are logged all the same."""
    out = project.outputs[0]
    with open_store(store_copy) as store:
        for value in (out.original.patient_id, out.original.sop_uid, out.original.series_uid, "2.25.1", "  "):
            assert reidentify(store, value, "bob") is None
        log = store.access_log()
    assert [(e.result, e.entries) for e in log] == [("not found", 0)] * 5


def test_a_store_from_before_the_uid_table_still_answers_studies_and_instances(project: Project,
                                                                              store_copy: str) -> None:
    with sqlite3.connect(store_copy.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM anonlib_uid")
    out = project.outputs[0]
    with open_store(store_copy) as store:
        assert reidentify(store, out.sop_uid, "x") == StoreOriginal("instance", out.original.sop_uid)
        assert reidentify(store, out.study_uid, "x") == StoreOriginal("study", out.original.study_uid)
        assert reidentify(store, out.series_uid, "x") is None
        assert len(store.uid_map()) == 2 * len(project.outputs)


def test_the_cli_prints_the_original_on_stdout_and_nothing_in_logs(
        project: Project, store_copy: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    out = project.outputs[0]
    caplog.set_level(logging.DEBUG)
    assert cli.main(["-v", "reidentify", out.pseudonym, "--db", store_copy, "--user", "alice"]) == 0
    assert cli.main(["reidentify", out.sop_uid, "--db", store_copy, "--user", "alice"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{out.original.patient_id}\n{out.original.sop_uid}\n"
    assert captured.err == ""
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (out.pseudonym, out.original.patient_id, out.sop_uid, out.original.sop_uid):
        assert value not in logged


def test_an_unknown_value_is_a_clear_message_and_exit_1(project: Project, store_copy: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reidentify", "2.25.1234", "--db", store_copy]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "not found" in captured.err and "2.25.1234" not in captured.err


def test_without_the_store_nothing_is_looked_up_and_no_store_is_created(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    assert cli.main(["reidentify", "ANON12345678", "--db", f"sqlite:///{missing}"]) == 2
    assert "no lookup store" in capsys.readouterr().err
    assert not missing.exists()
    with pytest.raises(ConfigError):
        open_key_store("sqlite://")  # an in-memory store is a new, empty one


def test_a_store_without_a_patient_id_gives_back_the_substitute_key(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    with open_store(url) as store:
        pseudonym = store.patient(PatientKey("~study:1.2.3")).pseudonym
    assert cli.main(["reidentify", pseudonym, "--db", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "~study:1.2.3\n" and "had no PatientID" in captured.err


# --- the access log --------------------------------------------------------------------------


def test_access_log_rows_carry_who_when_and_kind_but_no_value(project: Project, store_copy: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = project.outputs[1]
    monkeypatch.setenv("ANONLIB_USER", "carol")
    for value in (out.pseudonym, out.study_uid, out.sop_uid, out.pseudonym, "2.25.999"):
        cli.main(["reidentify", value, "--db", store_copy])
    rows = _log_rows(store_copy)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("carol", "lookup", "patient", 1), ("carol", "lookup", "study", 1), ("carol", "lookup", "instance", 1),
        ("carol", "lookup", "patient", 1), ("carol", "lookup", "not found", 0)]
    digests = [r[6] for r in rows]
    assert digests[0] == digests[3] and len(set(digests)) == 4 and all(len(d) == 16 for d in digests)
    with open_store(store_copy) as store:
        assert digests[0] == value_digest(store.find_secret(), out.pseudonym)  # keyed: checkable with the store
    _assert_no_value(rows, {out.pseudonym, out.study_uid, out.sop_uid, out.original.patient_id,
                            out.original.study_uid, out.original.sop_uid, "2.25.999"})


def test_no_answer_when_the_access_log_cannot_be_written(project: Project, store_copy: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Fail closed: a store whose access log refuses rows gives no answer."""
    with sqlite3.connect(store_copy.removeprefix("sqlite:///")) as conn:
        conn.execute("CREATE TRIGGER no_log BEFORE INSERT ON anonlib_access_log BEGIN SELECT RAISE(ABORT, 'x'); END")
    assert cli.main(["reidentify", project.outputs[0].pseudonym, "--db", store_copy]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and "could not record access" in captured.err


def test_the_log_is_shown_newest_first_without_values(project: Project, store_copy: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = project.outputs[2]
    cli.main(["reidentify", out.pseudonym, "--db", store_copy, "--user", "dave"])
    cli.main(["reidentify", "nothing", "--db", store_copy, "--user", "erin"])
    capsys.readouterr()
    assert cli.main(["reidentify", "--log", "--db", store_copy]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert cli.main(["mapping", "log", "--db", store_copy, "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == shown[:1]
    assert len(shown) == 2 and "erin" in shown[0] and "not found" in shown[0] and "dave" in shown[1]
    assert shown[0].endswith("UTC") is False and " UTC " in shown[0]
    for value in (out.pseudonym, out.original.patient_id):
        assert value not in "\n".join(shown)


def test_accessor_is_the_option_then_the_environment_then_the_os_user() -> None:
    assert accessor("  x ", {"ANONLIB_USER": "y"}) == "x"
    assert accessor(None, {"ANONLIB_USER": "y"}) == "y"
    assert accessor(None, {}) not in ("", "y")


# --- the mapping export ----------------------------------------------------------------------


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_export_writes_the_store_as_midi_b_csvs_privately(project: Project, store_copy: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "keys" / "export"
    assert cli.main(["mapping", "export", str(target), "--db", store_copy, "--user", "frank"]) == 0
    assert "RE-IDENTIFY" in capsys.readouterr().out
    patid, uids = _read_csv(target / "patid_mapping.csv"), _read_csv(target / "uid_mapping.csv")
    assert patid[0] == uids[0] == ["id_old", "id_new"]
    assert sorted(map(tuple, patid[1:])) == sorted({(o.original.patient_id, o.pseudonym) for o in project.outputs})
    exported = [tuple(row) for row in uids[1:]]
    assert len(exported) == len({old for old, _ in exported})  # each original once
    for o in project.outputs:  # the keys of every instance, checked against its files
        for pair in ((o.original.study_uid, o.study_uid), (o.original.series_uid, o.series_uid),
                     (o.original.sop_uid, o.sop_uid)):
            assert pair in exported
    with open_store(store_copy) as store:
        mapper = UidMapper(store.secret())
    assert all(mapper(old) == new for old, new in exported)  # and every row is the project's mapping
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    for name in ("patid_mapping.csv", "uid_mapping.csv"):
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in target.iterdir()) == ["patid_mapping.csv", "uid_mapping.csv"]
    rows = _log_rows(store_copy)
    assert [(r[2], r[3], r[5], r[6]) for r in rows] == [("frank", "export", len(patid) - 1 + len(uids) - 1, "")]
    _assert_no_value(rows, {v for row in patid[1:] + uids[1:] for v in row})


def test_export_inside_an_output_tree_is_refused(project: Project, store_copy: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    inside = project.output / "keys"
    quarantine = project.output.with_name("out-quarantine") / "k"  # nothing quarantined: not there yet
    for target in (project.output, inside, quarantine):
        assert cli.main(["mapping", "export", str(target), "--db", store_copy]) == 2, target
        assert "inside the output tree" in capsys.readouterr().err
    assert not inside.exists() and not quarantine.exists() and not (project.output / "patid_mapping.csv").exists()
    assert _log_rows(store_copy) == []  # refused before anything was read or logged


def test_the_constellation_export_folder_is_an_output_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, export = tmp_path / "home", tmp_path / "export"
    monkeypatch.setenv("ANONLIB_HOME", str(home))
    ConstellationInfo(home=str(home), nodes={}, export_dir=str(export), db_url="postgresql://x/y").save(
        home / "constellation.json")
    assert output_tree_of(export / "a" / "b") == export.resolve()
    assert output_tree_of(tmp_path / "elsewhere") is None
    with pytest.raises(ConfigError, match="inside the output tree"):
        export_mapping(MemoryStore(), export / "keys", "me")


def test_output_markers_are_the_pipelines(tmp_path: Path) -> None:
    assert set(OUTPUT_MARKERS) == {MANIFEST, QUARANTINE_MANIFEST}
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / QUARANTINE_MANIFEST).write_text("")
    assert output_tree_of(tmp_path / "q" / "deeper" / "still", {}) == (tmp_path / "q").resolve()


def test_export_into_a_folder_open_to_others_is_refused(store_copy: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with open_store(store_copy) as store, pytest.raises(ConfigError, match="open to other users"):
        export_mapping(store, shared, "me", {})
    assert list(shared.iterdir()) == []


# --- the store: every implementation, and the schema migration --------------------------------


@pytest.mark.parametrize("make", [lambda p: SqliteStore(f"sqlite:///{p}"), lambda p: SqlStore(f"sqlite:///{p}"),
                                  lambda p: MemoryStore()], ids=["sqlite3", "sqlalchemy", "memory"])
def test_every_store_answers_the_same(make: object, tmp_path: Path) -> None:
    store = make(tmp_path / "s.sqlite3")  # type: ignore[operator]
    try:
        identity = store.patient(PatientKey("P1", "ISSUER"))
        store.record_study(StudyRecord("1.2.3", "", identity.pseudonym, "2.25.7", ""))
        store.record_uids({"1.2.3": "2.25.7", "1.2.3.4": "2.25.8", "1.2.3.5": "2.25.9"})
        store.record_uids({"1.2.3.5": "2.25.10"})  # recorded once: the mapping never changes
        store.record_instances([InstanceRecord("1.2.3.4", "2.25.8", "1.2.3", "written")])
        assert store.original_patient(identity.pseudonym).issuer == "ISSUER"
        assert store.original_uid("2.25.7") == StoreOriginal("study", "1.2.3")
        assert store.original_uid("2.25.8") == StoreOriginal("instance", "1.2.3.4")
        assert store.original_uid("2.25.9") == StoreOriginal("uid", "1.2.3.5")
        assert store.original_uid("2.25.10") is None
        assert store.uid_map() == [("1.2.3", "2.25.7"), ("1.2.3.4", "2.25.8"), ("1.2.3.5", "2.25.9")]
        for n in range(3):
            store.record_access(AccessEntry(f"u{n}", "lookup", "patient", 1, "d"))
        assert [e.accessor for e in store.access_log(2)] == ["u2", "u1"]
        assert all(e.accessed_at is not None and e.accessed_at.utcoffset() is not None for e in store.access_log())
        with pytest.raises(Exception, match="action must be"):
            store.record_access(AccessEntry("u", "delete"))
    finally:
        store.close()


@pytest.mark.parametrize("store_class", [SqliteStore, SqlStore], ids=["sqlite3", "sqlalchemy"])
def test_a_version_1_store_gains_the_new_tables_when_opened(store_class: type, tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as conn:  # what anonlib 1 created
        for name, statements in TABLES:
            if name not in ("anonlib_access_log", "anonlib_uid"):
                for statement in statements:
                    conn.execute(statement)
        conn.execute("INSERT INTO anonlib_schema_version (version) VALUES (1)")
    with SqliteStore(f"sqlite:///{path}", readonly=True) as reader:
        assert reader.access_log() == []  # a read-only open creates nothing
    with store_class(f"sqlite:///{path}") as store:
        store.record_access(AccessEntry("me", "export", "x", 2))
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM anonlib_schema_version ORDER BY 1")] == [1, 2]
        assert conn.execute("SELECT accessor, entries FROM anonlib_access_log").fetchall() == [("me", 2)]
        assert conn.execute("SELECT count(*) FROM anonlib_uid").fetchone() == (0,)
