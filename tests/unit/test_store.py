"""Contract tests of the lookup store, run on MemoryStore and, over a SQLite file, on both
SQL stores: SqlStore (SQLAlchemy) and SqliteStore (the standard library's sqlite3, the default).

``StoreContract`` is reused by tests/integration/test_store_postgres.py for PostgreSQL, and so
is :func:`run_race` (several processes asking for the same identities at the same moment).
"""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing as closing_resource
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from anonlib.errors import ConfigError, StoreError
from anonlib.store import (
    DeliveryRecord,
    InstanceRecord,
    LookupStore,
    MemoryData,
    MemoryStore,
    PatientKey,
    PixelBox,
    PixelFindings,
    PseudonymPolicy,
    Region,
    ReviewDecision,
    SqliteStore,
    SqlStore,
    StudyRecord,
    default_store_url,
    open_store,
    rules,
    tables,
)
from anonlib.store import lite as lite_module
from anonlib.store.db import make_engine
from anonlib.store.sqlite_file import render_sqlite_url, sqlite_database
from anonlib.store.tables import metadata, patient, schema_version, secret

PHI_ID = "PHI-7731-DOE^JANE"
"""A patient ID that must never appear in an error message or its traceback."""
PSEUDONYM = re.compile(r"ANON[0-9A-HJKMNP-TV-Z]{8}")
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?")

Opener = Callable[..., LookupStore]


class StoreContract:
    """Behaviour every LookupStore shows. Subclasses provide ``opener`` (each call opens
    another handle on the same data, like reopening) and ``breaker`` (makes it fail)."""

    @pytest.fixture
    def closing(self) -> Iterator[list[LookupStore]]:
        """Stores the opener made; closed after the test."""
        stores: list[LookupStore] = []
        yield stores
        for store in stores:
            store.close()

    @pytest.fixture
    def opener(self) -> Opener:
        raise NotImplementedError

    @pytest.fixture
    def breaker(self) -> Callable[[LookupStore], None]:
        raise NotImplementedError

    def test_same_key_same_identity_across_reopen(self, opener: Opener) -> None:
        first = opener()
        identity = first.patient(PatientKey("12345", "HOSP"))
        assert first.patient(PatientKey("12345", "HOSP")) == identity
        first.close()
        assert opener().patient(PatientKey("12345", "HOSP")) == identity

    def test_deliveries_are_upserted_per_node_and_study(self, opener: Opener) -> None:
        from anonlib.store import DeliveryRecord

        store = opener()
        first = DeliveryRecord("intake", "abc-1", "20260101T000000", 3, 2, 1, "2.25.1", "done")
        store.record_delivery(first)
        store.record_delivery(DeliveryRecord("other", "abc-1", "x", 1, 1, 0, "2.25.9", "done"))
        grown = DeliveryRecord("intake", "abc-1", "20260102T000000", 4, 3, 1, "2.25.1", "done")
        store.record_delivery(grown)
        assert opener().deliveries("intake") == {"abc-1": replace(grown, runs=2)}
        with pytest.raises(StoreError):
            store.record_delivery(DeliveryRecord("intake", "abc-2", "", 0, 0, 0, "", "lost"))

    def test_different_keys_get_different_pseudonyms(self, opener: Opener) -> None:
        store = opener()
        identities = [store.patient(PatientKey(f"P{i}")) for i in range(100)]
        assert len({i.pseudonym for i in identities}) == 100
        assert all(PSEUDONYM.fullmatch(i.pseudonym) for i in identities)

    def test_issuer_distinguishes_patients(self, opener: Opener) -> None:
        store = opener()
        keys = [PatientKey("123"), PatientKey("123", "A"), PatientKey("123", "B")]
        assert len({store.patient(k).pseudonym for k in keys}) == 3
        assert {k for k, _ in store.patients()} == set(keys)

    def test_pseudonym_not_derived_from_id(self, opener: Opener) -> None:
        store = opener(PseudonymPolicy(prefix="S-"))
        pseudonym = store.patient(PatientKey("ABCDEFGH")).pseudonym
        assert re.fullmatch(r"S-[0-9A-HJKMNP-TV-Z]{8}", pseudonym)
        assert "ABCDEFGH" not in pseudonym

    def test_shift_never_zero_and_within_range(self, opener: Opener) -> None:
        store = opener(PseudonymPolicy(shift_min_days=-2, shift_max_days=2))
        shifts = {store.patient(PatientKey(f"S{i}")).date_shift_days for i in range(200)}
        assert shifts == {-2, -1, 1, 2}

    @pytest.mark.parametrize(("low", "high", "expected"), [(0, 1, 1), (-1, 0, -1), (7, 7, 7)])
    def test_shift_narrow_ranges(self, opener: Opener, low: int, high: int, expected: int) -> None:
        store = opener(PseudonymPolicy(shift_min_days=low, shift_max_days=high))
        assert {store.patient(PatientKey(f"N{i}")).date_shift_days for i in range(20)} == {expected}

    def test_default_shift_range(self, opener: Opener) -> None:
        store = opener()
        for i in range(50):
            assert -3652 <= store.patient(PatientKey(f"D{i}")).date_shift_days <= -366

    def test_find_patient_never_creates(self, opener: Opener) -> None:
        store = opener()
        assert store.find_patient(PatientKey("404")) is None
        assert list(store.patients()) == []
        identity = store.patient(PatientKey("404"))
        assert store.find_patient(PatientKey("404")) == identity
        assert store.find_patient(PatientKey("404", "OTHER")) is None
        assert list(store.patients()) == [(PatientKey("404"), identity)]

    def test_secret_created_once_and_stable(self, opener: Opener) -> None:
        first = opener()
        value = first.secret()
        assert isinstance(value, bytes) and len(value) == 32
        assert first.secret() == value
        first.close()
        assert opener().secret() == value

    def test_study_upsert(self, opener: Opener) -> None:
        store = opener()
        pseudonym = store.patient(PatientKey("1")).pseudonym
        assert store.study("1.2.3") is None
        store.record_study(StudyRecord("1.2.3", "ACC1", pseudonym, "2.25.9", "20200101"))
        updated = StudyRecord("1.2.3", "ACC2", pseudonym, "2.25.9", "")
        store.record_study(updated)
        assert store.study("1.2.3") == updated

    def test_study_needs_known_pseudonym_and_unique_new_uid(self, opener: Opener) -> None:
        store = opener()
        with pytest.raises(StoreError):
            store.record_study(StudyRecord("1.2.3", "", "ANON00000000", "2.25.9", ""))
        pseudonym = store.patient(PatientKey("1")).pseudonym
        store.record_study(StudyRecord("1.2.3", "", pseudonym, "2.25.9", ""))
        with pytest.raises(StoreError):
            store.record_study(StudyRecord("1.2.4", "", pseudonym, "2.25.9", ""))

    def test_instance_upsert(self, opener: Opener) -> None:
        store = opener()
        assert store.instance("1.2.3.4") is None
        written = InstanceRecord("1.2.3.4", "2.25.4", "1.2.3", "written", "a/b.dcm", "", "ab" * 32)
        store.record_instance(written)
        assert store.instance("1.2.3.4") == written
        quarantined = InstanceRecord("1.2.3.4", "2.25.4", "1.2.3", "quarantined", reason="burnt-in")
        store.record_instance(quarantined)
        other = InstanceRecord("1.2.3.10", "2.25.10", "1.2.3", "written", "a/c.dcm")
        store.record_instance(other)
        assert opener().instance("1.2.3.4") == quarantined
        assert list(store.instances()) == [other, quarantined]

    def test_pixel_findings_are_upserted_filtered_and_discarded(self, opener: Opener) -> None:
        store = opener()
        assert store.pixel_findings() == []
        masked = PixelFindings("1.2.3.4", "2.25.4", "masked",
                               boxes=(PixelBox(0, 10, 20, 30, 8, 0.97), PixelBox(2, 0, 0, 5, 5, 0.5)))
        store.record_pixel_findings(masked)
        failed = PixelFindings("1.2.3.10", "2.25.10", "quarantined", "pixels: cannot decode (JPEG 2000 needs a plugin)")
        store.record_pixel_findings(failed)
        again = opener()
        assert again.pixel_findings() == [failed, masked]  # ordered by original SOP UID (code points)
        assert again.pixel_findings("masked") == [masked] and again.pixel_findings("quarantined") == [failed]
        found = again.pixel_findings("masked")[0]
        assert isinstance(found.boxes, tuple) and found.boxes[0] == PixelBox(0, 10, 20, 30, 8, 0.97)
        now_clean = PixelFindings("1.2.3.4", "2.25.4", "quarantined", "pixels: OCR failed (engine)")
        store.record_pixel_findings(now_clean)  # processed again: replaced whole, boxes too
        assert again.pixel_findings("quarantined") == [failed, now_clean] and again.pixel_findings("masked") == []
        store.discard_pixel_findings("1.2.3.10", "1.2.3.99")  # 1.2.3.99 has none: nothing happens
        store.discard_pixel_findings()
        assert opener().pixel_findings() == [now_clean]

    def test_review_decisions_latest_wins_with_time(self, opener: Opener) -> None:
        from datetime import UTC, datetime, timedelta

        store = opener()
        assert store.review("1.2.3.4") is None and store.reviews() == []
        before = datetime.now(UTC) - timedelta(seconds=5)
        store.record_review(ReviewDecision("1.2.3.4", "reject", reviewer="dr. who"))
        first = opener().review("1.2.3.4")
        assert first is not None and first.decision == "reject" and first.reviewer == "dr. who"
        assert first.decided_at is not None and first.decided_at.tzinfo is not None
        assert before <= first.decided_at <= datetime.now(UTC) + timedelta(seconds=5)
        regions = (Region(0, 1, 2, 30, 40), Region(1, 0, 0, 8, 8))
        when = datetime(2026, 12, 6, 18, 0, 0, 123456, tzinfo=UTC)
        store.record_review(ReviewDecision("1.2.3.4", "mask", regions, "", when))
        store.record_review(ReviewDecision("1.2.3.10", "release"))
        again = opener()
        assert again.review("1.2.3.4") == ReviewDecision("1.2.3.4", "mask", regions, "", when)
        assert [d.original_sop_uid for d in again.reviews()] == ["1.2.3.10", "1.2.3.4"]
        assert again.reviews()[0].decision == "release" and again.reviews()[0].regions == ()

    @pytest.mark.parametrize("bad", [
        PixelFindings("", "2.25.1", "masked"),
        PixelFindings("1.2", "2.25.1", "released"),
        PixelFindings("1.2", "2.25.1", "masked", boxes=(PixelBox(0, -1, 0, 5, 5, 0.9),)),
        PixelFindings("1.2", "2.25.1", "masked", boxes=(PixelBox(0, 0, 0, 0, 5, 0.9),)),
        PixelFindings("1.2", "2.25.1", "masked", boxes=(PixelBox(0, 0, 0, 5, 5, float("nan")),)),
        PixelFindings("1.2", "2.25.1", "masked", boxes=(Region(0, 0, 0, 5, 5),)),  # type: ignore[arg-type]
        ReviewDecision("", "release"),
        ReviewDecision("1.2", "approve"),
        ReviewDecision("1.2", "mask"),  # mask without a region
        ReviewDecision("1.2", "release", (Region(0, 0, 0, 5, 5),)),  # regions only with mask
        ReviewDecision("1.2", "mask", (Region(0, 0, 0, 5, 0),)),
        ReviewDecision("1.2", "mask", (Region(-1, 0, 0, 5, 5),)),
        ReviewDecision("1.2", "mask", (Region(0, 0.5, 0, 5, 5),)),  # type: ignore[arg-type]
    ])
    def test_invalid_findings_and_decisions_rejected(self, opener: Opener, bad: PixelFindings | ReviewDecision) -> None:
        store = opener()
        with pytest.raises(StoreError):
            if isinstance(bad, PixelFindings):
                store.record_pixel_findings(bad)
            else:
                store.record_review(bad)
        assert store.pixel_findings() == [] and store.reviews() == []

    def test_invalid_records_rejected(self, opener: Opener) -> None:
        store = opener()
        with pytest.raises(StoreError):
            store.record_instance(InstanceRecord("1.2", "2.25.1", "1", "lost"))
        with pytest.raises(StoreError):
            store.patient(PatientKey(""))
        assert store.instance("1.2") is None and list(store.patients()) == []

    def test_pseudonym_collision_is_retried(
        self, opener: Opener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = opener()
        taken = store.patient(PatientKey("first")).pseudonym
        offers = iter([taken, taken, "ANONZZZZZZZZ"])
        monkeypatch.setattr(rules, "new_pseudonym", lambda policy: next(offers))
        assert store.patient(PatientKey("second")).pseudonym == "ANONZZZZZZZZ"

    def test_no_free_pseudonym_is_an_error_without_phi(
        self, opener: Opener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = opener()
        taken = store.patient(PatientKey("first")).pseudonym
        monkeypatch.setattr(rules, "new_pseudonym", lambda policy: taken)
        with pytest.raises(StoreError) as caught:
            store.patient(PatientKey(PHI_ID))
        assert_no_phi(caught.value)
        assert store.find_patient(PatientKey(PHI_ID)) is None

    def test_failures_carry_no_phi(
        self, opener: Opener, breaker: Callable[[LookupStore], None]
    ) -> None:
        store = opener()
        store.patient(PatientKey(PHI_ID))
        breaker(store)
        for call in (store.patient, store.find_patient):
            with pytest.raises(StoreError) as caught:
                call(PatientKey(PHI_ID, "ISSUER-" + PHI_ID))
            assert_no_phi(caught.value)

    def test_closed_store_refuses(self, opener: Opener) -> None:
        store = opener()
        store.close()
        with pytest.raises(StoreError):
            store.patient(PatientKey("1"))


def assert_no_phi(error: BaseException) -> None:
    """Neither the message nor anything printed with its traceback names the patient."""
    rendered = "".join(traceback.format_exception(error))
    assert PHI_ID not in rendered
    assert "DOE" not in rendered


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def opener(self, closing: list[LookupStore]) -> Opener:
        data = MemoryData()

        def open_(policy: PseudonymPolicy = rules.DEFAULT_POLICY) -> LookupStore:
            closing.append(MemoryStore(policy, data))
            return closing[-1]

        return open_

    @pytest.fixture
    def breaker(self) -> Callable[[LookupStore], None]:
        return lambda store: store.close()


SQLITE_STORES = {"sqlalchemy": SqlStore, "sqlite3": SqliteStore}


class TestSqliteStore(StoreContract):
    @pytest.fixture(params=sorted(SQLITE_STORES))
    def kind(self, request: pytest.FixtureRequest) -> str:
        """Which SQL store opens the SQLite file (every test runs on both)."""
        return str(request.param)

    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'lookup.sqlite3'}"

    @pytest.fixture
    def opener(self, url: str, kind: str, closing: list[LookupStore]) -> Opener:
        def open_(policy: PseudonymPolicy = rules.DEFAULT_POLICY) -> LookupStore:
            closing.append(SQLITE_STORES[kind](url, policy))
            return closing[-1]

        return open_

    @pytest.fixture
    def breaker(self, url: str) -> Callable[[LookupStore], None]:
        return lambda store: drop_all_tables(url)

    def test_sqlite_file_is_in_wal_mode(self, opener: Opener, tmp_path: Path) -> None:
        opener().secret()
        with closing_sqlite(tmp_path / "lookup.sqlite3") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_processes_race_for_the_same_identities(self, url: str, kind: str) -> None:
        check_race(url, open_together=True, kind=kind)

    def test_an_older_database_gains_the_pixel_tables(self, url: str, kind: str, tmp_path: Path) -> None:
        """A store created before the pixel stage (no findings or review tables) gets them when a
        writer opens it; a read-only opener sees none and creates nothing."""
        SqlStore = SQLITE_STORES[kind]  # noqa: N806 - the class under test
        SqlStore(url).close()
        with closing_sqlite(tmp_path / "lookup.sqlite3") as conn:
            conn.execute("DROP TABLE anonlib_pixel_finding")
            conn.execute("DROP TABLE anonlib_review")
            conn.commit()
        with SqlStore(url, readonly=True) as reader:
            assert reader.pixel_findings() == [] and reader.review("1.2") is None and reader.reviews() == []
            with pytest.raises(StoreError, match="read-only"):
                reader.record_review(ReviewDecision("1.2", "reject"))
        with SqlStore(url) as writer:
            writer.record_review(ReviewDecision("1.2", "reject"))
        with SqlStore(url, readonly=True) as reader:
            assert [d.decision for d in reader.reviews()] == ["reject"]

    def test_unopenable_file_is_a_store_error(self, kind: str, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="could not open.*unable to open database file"):
            SQLITE_STORES[kind](f"sqlite:///{tmp_path / 'missing' / 'dir' / 'lookup.sqlite3'}")

    def test_both_stores_create_the_same_schema_and_read_each_other(self, tmp_path: Path) -> None:
        files = {}
        for kind, store_class in SQLITE_STORES.items():
            files[kind] = tmp_path / f"{kind}.sqlite3"
            store_class(f"sqlite:///{files[kind]}").close()
        schemas = {}
        for kind, path in files.items():
            with closing_sqlite(path) as conn:
                schemas[kind] = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall()
        assert schemas["sqlite3"] == schemas["sqlalchemy"]
        assert lite_module.SCHEMA_VERSION == tables.SCHEMA_VERSION
        assert len(schemas["sqlite3"]) == 22  # 10 tables, 3 indexes, 9 automatic ones
        url = f"sqlite:///{files['sqlite3']}"
        with SqliteStore(url) as lite:
            identity = lite.patient(PatientKey(PHI_ID))
            lite.record_review(ReviewDecision("1.2", "mask", (Region(0, 1, 2, 3, 4),), "me"))
            lite.record_pixel_findings(PixelFindings("1.2", "2.5", "masked", "", (PixelBox(0, 1, 2, 3, 4, 0.5),)))
            expected = (lite.secret(), lite.reviews(), lite.pixel_findings())
        with SqlStore(url) as sql:
            assert sql.patient(PatientKey(PHI_ID)) == identity
            assert (sql.secret(), sql.reviews(), sql.pixel_findings()) == expected

    def test_both_stores_write_the_same_rows(self, tmp_path: Path) -> None:
        """The same calls leave the same rows (times apart: they are the moment of writing)."""
        decided = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        rows = {}
        for kind, store_class in SQLITE_STORES.items():
            path = tmp_path / f"{kind}.sqlite3"
            with store_class(f"sqlite:///{path}") as store:
                pseudonym = store.patient(PatientKey("P1", "ISS")).pseudonym
                store.record_study(StudyRecord("1.2.3", "ACC", pseudonym, "2.25.1", "20200101"))
                store.record_study(StudyRecord("1.2.3", "ACC2", pseudonym, "2.25.1", "20200102"))
                store.record_instances([InstanceRecord("1.2.3.4", "2.25.2", "1.2.3", "written", "a/b.dcm", "", "ff"),
                                        InstanceRecord("1.2.3.5", "2.25.3", "1.2.3", "quarantined", "", "why")])
                store.record_instance(InstanceRecord("1.2.3.4", "2.25.2", "1.2.3", "written", "a/c.dcm", "", "ee"))
                store.record_delivery(DeliveryRecord("node", "abc", "20200101T000000", 2, 1, 1, "2.25.1", "done"))
                store.record_delivery(DeliveryRecord("node", "abc", "20200102T000000", 3, 2, 1, "2.25.1", "held", "r"))
                store.record_pixel_findings(PixelFindings("1.2.3.4", "2.25.2", "masked", "",
                                                          (PixelBox(0, 1, 2, 3, 4, 0.75),)))
                store.record_pixel_findings(PixelFindings("1.2.3.5", "2.25.3", "quarantined", "pixels: x"))
                store.discard_pixel_findings("1.2.3.5", "9.9")
                store.record_review(ReviewDecision("1.2.3.4", "mask", (Region(0, 5, 6, 7, 8),), "rev", decided))
                assert store.deliveries("node", []) == {}
                assert list(store.deliveries("node", ["abc"])) == ["abc"]
            with closing_sqlite(path) as conn:
                rows[kind] = {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                              for table in ("anonlib_patient", "anonlib_study", "anonlib_instance", "anonlib_delivery",
                                            "anonlib_pixel_finding", "anonlib_review", "anonlib_schema_version")}

        def without_times(found: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {table: [tuple(v for v in row if not (isinstance(v, str) and TIME.fullmatch(v)))
                            for row in table_rows] for table, table_rows in found.items()}

        assert rows["sqlite3"]["anonlib_review"] == rows["sqlalchemy"]["anonlib_review"]  # the given time
        lite, sql = without_times(rows["sqlite3"]), without_times(rows["sqlalchemy"])
        for table in lite:
            if table == "anonlib_patient":  # random pseudonym and shift: the key and the row count
                assert [r[1:3] for r in lite[table]] == [r[1:3] for r in sql[table]]
            elif table == "anonlib_study":
                assert [r[:2] + r[3:] for r in lite[table]] == [r[:2] + r[3:] for r in sql[table]]
            else:
                assert lite[table] == sql[table], table


def closing_sqlite(path: Path) -> closing_resource[sqlite3.Connection]:
    return closing_resource(sqlite3.connect(path))


def drop_all_tables(url: str) -> None:
    engine = make_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


BAD_POLICIES = [
    PseudonymPolicy(shift_min_days=10, shift_max_days=-10),
    PseudonymPolicy(shift_min_days=0, shift_max_days=0),
    PseudonymPolicy(prefix="BAD^PREFIX"),
    PseudonymPolicy(prefix="X" * 33),
]


@pytest.mark.parametrize("policy", BAD_POLICIES)
def test_invalid_policy_is_a_config_error(policy: PseudonymPolicy, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        MemoryStore(policy)
    for store_class in SQLITE_STORES.values():
        with pytest.raises(ConfigError):
            store_class(f"sqlite:///{tmp_path / 'lookup.sqlite3'}", policy)
    assert not (tmp_path / "lookup.sqlite3").exists()


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "not a url", "sqlite+nodriver:///x"])
def test_unsupported_url_is_a_config_error_without_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SqlStore(url)
    assert "secret" not in str(caught.value)


def test_open_store_defaults_to_sqlite_in_anonlib_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "anonlib"
    monkeypatch.setenv("ANONLIB_HOME", str(home))
    assert default_store_url() == f"sqlite:///{home / 'lookup.sqlite3'}"
    store = open_store(None)
    assert isinstance(store, SqliteStore)
    value = store.secret()
    store.close()
    assert (home / "lookup.sqlite3").is_file()
    assert (home.stat().st_mode & 0o777) == 0o700
    monkeypatch.delenv("ANONLIB_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_url() == f"sqlite:///{tmp_path / 'xdg' / 'anonlib' / 'lookup.sqlite3'}"
    with SqlStore(f"sqlite:///{home / 'lookup.sqlite3'}") as again:
        assert again.secret() == value


@pytest.mark.parametrize("database", ["/tmp/a b/look+up%.sqlite3", "relative/x.db", ":memory:", "/ü/ä?.db", ""])
def test_plain_sqlite_urls_read_and_render_as_sqlalchemy_does(database: str) -> None:
    from sqlalchemy.engine import URL, make_url

    rendered = URL.create("sqlite", database=database).render_as_string(hide_password=False)
    assert render_sqlite_url(database) == rendered
    assert sqlite_database(rendered) == (make_url(rendered).database or "")


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "sqlite+aiosqlite:///x.db", "sqlite:///x.db?mode=ro",
                                 "sqlite://host/x.db", "not a url"])
def test_other_urls_are_left_to_sqlalchemy(url: str) -> None:
    assert sqlite_database(url) is None


def test_opening_the_default_store_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    script = (f"import sys; from anonlib.store import open_store; open_store({url!r}).secret(); "
              "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])


# --- several processes at once -------------------------------------------------------------

RACE_PROCESSES = 8
RACE_KEYS = [PatientKey(f"RACE-{i}", "ISSUER" if i % 2 else "") for i in range(6)]


def race_worker(url: str, open_together: bool, barrier: Any, results: Any, kind: str = "") -> None:
    """One process: (optionally wait, then) open the store; then for each key wait for the
    others and ask for its identity at the same moment; also ask for the secret together."""
    try:
        if open_together:
            barrier.wait(timeout=120)
        store = SQLITE_STORES[kind](url) if kind else open_store(url)
        barrier.wait(timeout=120)
        value = store.secret().hex()
        identities = []
        for key in RACE_KEYS:
            barrier.wait(timeout=120)
            identity = store.patient(key)
            identities.append((identity.pseudonym, identity.date_shift_days))
        store.close()
        results.put(("ok", value, identities))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        barrier.abort()  # release the others at once instead of after their timeout
        results.put(("error", repr(exc), []))


def run_race(url: str, open_together: bool, processes: int = RACE_PROCESSES, kind: str = "") -> list[Any]:
    """Start ``processes`` spawned workers on ``url`` (opened by ``SQLITE_STORES[kind]``, or by
    :func:`open_store`); return what each reported."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=race_worker, args=(url, open_together, barrier, results, kind))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    return reports


def check_race(url: str, open_together: bool, kind: str = "") -> None:
    """All processes saw one secret and one identity per key; the tables hold one row each."""
    reports = run_race(url, open_together, kind=kind)
    assert [r for r in reports if r[0] != "ok"] == []
    assert len({r[1] for r in reports}) == 1
    assert len({tuple(r[2]) for r in reports}) == 1
    assert len({pseudonym for pseudonym, _ in reports[0][2]}) == len(RACE_KEYS)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(patient)) == len(RACE_KEYS)
        assert conn.scalar(select(func.count()).select_from(secret)) == 1
        assert conn.scalar(select(func.count()).select_from(schema_version)) == 1
    engine.dispose()
