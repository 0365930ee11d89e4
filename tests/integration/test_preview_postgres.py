"""The preview is a dry run on PostgreSQL too: the lookup database is unchanged, row for row
and relation for relation — a brand-new database stays without tables — and the read-only
session refuses writes even when asked directly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from anonlib.errors import StoreError
from anonlib.folder_run import RunSettings, run_folder
from anonlib.preview import preview_study
from anonlib.sources import FolderSource
from anonlib.store import PatientKey, SqlStore
from anonlib.synthetic import Corpus
from tests.pg_snapshot import snapshot

pytestmark = pytest.mark.integration


@pytest.fixture
def folder(corpus: Corpus, tmp_path: Path) -> FolderSource:
    """Patient-2's study alone."""
    target = tmp_path / "src"
    target.mkdir()
    for index, f in enumerate(f for f in corpus.files if f.patient == "patient-2"):
        shutil.copy(f.path, target / f"{index:03d}.dcm")
    return FolderSource(target)


def test_brand_new_database_stays_empty(folder: FolderSource, pg_url: str) -> None:
    before = snapshot(pg_url)
    assert before["relations"] == []
    study = str(folder.studies()["study"].iloc[0])
    preview = preview_study(folder, study, db_url=pg_url)
    assert preview.identity.provisional and not preview.identity.existing
    assert snapshot(pg_url) == before


def test_populated_database_is_unchanged(folder: FolderSource, pg_url: str, tmp_path: Path) -> None:
    run_folder(RunSettings(folder.root, tmp_path / "out", db_url=pg_url))
    before = snapshot(pg_url)
    assert before["rows"]["public.anonlib_patient"] and before["rows"]["public.anonlib_instance"]
    study = str(folder.studies()["study"].iloc[0])
    for instance in folder.instances(study)[:2]:
        preview = preview_study(folder, study, db_url=pg_url, instance=instance)
        assert preview.identity.existing and preview.identity.secret_existing
    assert snapshot(pg_url) == before


def test_readonly_session_refuses_writes(pg_url: str) -> None:
    SqlStore(pg_url).close()  # the schema
    before = snapshot(pg_url)
    store = SqlStore(pg_url, readonly=True)
    try:
        assert store.find_secret() is None
        with pytest.raises(StoreError, match="read-only"):
            store.secret()
        with pytest.raises(StoreError, match="read-only"):
            store.patient(PatientKey("1"))
        with pytest.raises(SQLAlchemyError, match="read-only transaction"), store._engine.begin() as conn:
            conn.execute(text("CREATE TABLE intruder (i int)"))
    finally:
        store.close()
    assert snapshot(pg_url) == before
