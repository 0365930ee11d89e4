"""Acceptance: de-identify the synthetic multi-patient corpus (every object type, PHI planted
everywhere) with a real PostgreSQL lookup store and two worker processes, then prove the
guarantees: no planted value anywhere, one pseudonym and one date shift per patient, every
reference resolved, no original UID, no new dciodvfy error, markers, quarantine, rejects, and a
second run that changes nothing."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import text

from anonlib.audit.dciodvfy import introduced_errors, run_dciodvfy
from anonlib.audit.references import identities, references
from anonlib.constellation.manage import drop_databases
from anonlib.engine.uids import UidMapper, is_registry_uid
from anonlib.folder_run import RunSettings, RunSummary, run_folder
from anonlib.pipeline import MANIFEST
from anonlib.store import LookupStore, open_store
from anonlib.synthetic import Corpus
from tests.fixtures.pg import DATABASE_PREFIX, _admin_engine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_pg_url(pg_admin_url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url

    admin = _admin_engine(pg_admin_url)
    name = DATABASE_PREFIX + secrets.token_hex(6)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.dispose()
        drop_databases(pg_admin_url, name)


@dataclass
class Run:
    corpus: Corpus
    settings: RunSettings
    summary: RunSummary
    store: LookupStore

    def outputs(self) -> dict[str, Path]:
        """original SOP Instance UID → output file (released or quarantined)."""
        found = {}
        for record in self.store.instances():
            base = self.settings.output if record.status == "written" else self.settings.quarantine_dir
            found[record.original_sop_uid] = base / record.output
        return found

    def pairs(self) -> Iterator[tuple[str, Path, Dataset, Path, Dataset]]:
        """(patient label, original path, original, output path, output) for each instance."""
        outputs = self.outputs()
        for item in self.corpus.files:
            if item.expect == "reject":
                continue
            original = pydicom.dcmread(item.path)
            out_path = outputs[str(original.SOPInstanceUID)]
            yield item.patient, item.path, original, out_path, pydicom.dcmread(out_path)


@pytest.fixture(scope="module")
def run(corpus: Corpus, module_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("deid") / "output"
    settings = RunSettings(source=corpus.root, output=out, db_url=module_pg_url, workers=2)
    summary = run_folder(settings)
    return Run(corpus, settings, summary, open_store(module_pg_url))


def test_every_file_has_its_expected_fate(run: Run) -> None:
    by_source = {r.source: r for r in run.summary.results}
    assert len(by_source) == len(run.corpus.files)
    for item in run.corpus.files:
        result = by_source[str(item.path.relative_to(run.corpus.root))]
        expected = {"deidentify": {"written"}, "quarantine": {"quarantined"}, "reject": {"rejected"}}
        assert result.status in expected[item.expect], (item.kind, result.status, result.reason)
        if item.expect != "deidentify":
            assert result.reason, "quarantined and rejected files carry a reason"


def test_quarantined_instances_never_reach_the_output(run: Run) -> None:
    released = {p.name for p in run.settings.output.rglob("*.dcm")}
    quarantined = [p for p in run.settings.quarantine_dir.rglob("*.dcm")]
    assert quarantined and not released & {p.name for p in quarantined}
    assert (run.settings.quarantine_dir / "quarantine.csv").read_text().count("RecognizableVisualFeatures") >= 1


def _needles(corpus: Corpus) -> list[tuple[str, str, re.Pattern[bytes]]]:
    """(category, value, pattern) for every planted value; short numbers match whole tokens
    only (a 5-digit ZIP inside a 39-digit random UID is not a leak)."""
    found = []
    for patient in corpus.patients:
        for category, values in patient.values.items():
            for value in values:
                if len(value) < 3:
                    continue
                escaped = re.escape(value.lower().encode("utf-8"))
                if value.replace(".", "").isdigit() and len(value) < 10:
                    escaped = rb"(?<![0-9.])" + escaped + rb"(?![0-9])"
                found.append((category, value, re.compile(escaped)))
    return found


def test_no_planted_value_anywhere_in_output(run: Run) -> None:
    needles = _needles(run.corpus)
    assert len(needles) > 200
    leaks = []
    roots = [run.settings.output, run.settings.quarantine_dir]
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.name == "rejected.csv":
                continue  # rejected.csv lists the operator's own input paths, outside the output
            blob = path.read_bytes().lower()
            name = str(path.relative_to(root)).lower().encode()
            for category, value, pattern in needles:
                if pattern.search(blob) or pattern.search(name):
                    leaks.append((category, str(path.relative_to(root))))
    assert not leaks, leaks[:20]


def test_no_planted_value_in_any_element_at_any_depth(run: Run) -> None:
    needles = _needles(run.corpus)
    for _, _, _, out_path, out in run.pairs():
        for element in out.iterall():
            if element.VR in ("OB", "OW", "OF", "OD", "UN", "SQ"):
                continue
            value = str(element.value).lower().encode("utf-8", "replace")
            for category, planted, pattern in needles:
                assert not pattern.search(value), (category, str(element.tag), out_path.name)


def test_one_pseudonym_and_one_date_shift_per_patient(run: Run) -> None:
    pseudonyms: dict[str, set[str]] = defaultdict(set)
    shifts: dict[str, set[int]] = defaultdict(set)
    studies: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for label, _, original, _, out in run.pairs():
        pseudonyms[label].add(str(out.PatientID))
        assert str(out.PatientName) == str(out.PatientID)
        before, after = str(original.get("StudyDate", "")), str(out.get("StudyDate", ""))
        if re.fullmatch(r"\d{8}", before) and re.fullmatch(r"\d{8}", after):
            delta = dt.datetime.strptime(after, "%Y%m%d") - dt.datetime.strptime(before, "%Y%m%d")
            shifts[label].add(delta.days)
            studies[label][str(original.StudyInstanceUID)] = (before, after)
    assert all(len(p) == 1 for p in pseudonyms.values()), pseudonyms
    assert len({next(iter(p)) for p in pseudonyms.values()}) == len(pseudonyms), "shared pseudonym"
    assert all(len(s) == 1 and 0 not in s for s in shifts.values()), shifts
    longitudinal = [dates for dates in studies.values() if len(dates) >= 2]
    assert longitudinal, "the corpus has a patient with two studies"
    for dates in longitudinal:  # intervals between a patient's studies are preserved
        (b1, a1), (b2, a2) = list(dates.values())[:2]
        days = lambda x, y: (dt.datetime.strptime(x, "%Y%m%d") - dt.datetime.strptime(y, "%Y%m%d")).days  # noqa: E731
        assert days(b1, b2) == days(a1, a2) != 0


def test_store_holds_one_identity_per_patient_key(run: Run) -> None:
    keys = {(p.patient_id, p.issuer) for p in run.corpus.patients if p.patient_id}
    stored = {(k.patient_id, k.issuer): v for k, v in run.store.patients()}
    assert keys <= set(stored)
    same_id = [k for k in keys if sum(1 for j in keys if j[0] == k[0]) > 1]
    assert same_id, "the corpus has two patients sharing an ID under different issuers"
    assert len({stored[k].pseudonym for k in same_id}) == len(same_id)


def test_every_reference_resolves_exactly_as_before(run: Run) -> None:
    mapper = UidMapper(run.store.secret())
    pairs = list(run.pairs())
    original_ids = {uid for _, _, o, _, _ in pairs for uid in identities(o).values()}
    output_ids = {uid for _, _, _, _, d in pairs for uid in identities(d).values()}
    checked = 0
    for _, _, original, _, out in pairs:
        before = {(r.path, r.kind): r.uid for r in references(original)}
        after = {(r.path, r.kind): r.uid for r in references(out)}
        assert set(after) <= set(before), "references appeared from nowhere"
        for path, kind in set(before) - set(after):  # removed by design only: patient, private
            assert kind == "patient" or re.match(r"\([0-9A-F]{3}[13579BDF],", path), (path, kind)
        for key, uid in before.items():
            if key not in after:
                continue
            assert after[key] == mapper(uid)
            if uid in original_ids:
                assert after[key] in output_ids, key
                checked += 1
    assert checked > 50


def test_no_original_uid_survives(run: Run) -> None:
    originals = set()
    for _, _, original, _, _ in run.pairs():
        for element in original.iterall():
            if element.VR == "UI":
                values = element.value if isinstance(element.value, list) else [element.value]
                originals.update(str(v) for v in values if v and not is_registry_uid(str(v)))
    assert len(originals) > 100
    for _, _, _, out_path, _ in run.pairs():
        blob = out_path.read_bytes()
        for uid in originals:
            assert uid.encode() not in blob, out_path.name


def test_markers_on_every_output(run: Run) -> None:
    for _, _, _, _, out in run.pairs():
        assert out.PatientIdentityRemoved == "YES"
        assert {"113100", "113107"} <= {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_no_new_dciodvfy_error_on_any_object_type(run: Run) -> None:
    kinds = set()
    for _, original_path, original, out_path, _ in run.pairs():
        kinds.add(str(original.Modality))
        new = introduced_errors(run_dciodvfy(original_path), run_dciodvfy(out_path))
        assert not new, (str(original.Modality), new)
    assert {"CT", "MR", "RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "SR", "PR"} <= kinds


def test_pixel_data_is_copied_unchanged_unless_text_was_masked(run: Run) -> None:
    masked = 0
    for _, _, original, _, out in run.pairs():
        if "PixelData" not in original:
            continue
        if original.Modality == "OT":  # the screen capture: its burned-in banner is masked
            masked += 1
            assert out.PixelData != original.PixelData and out.BurnedInAnnotation == "NO"
            assert (out.pixel_array[30:, 120:] == original.pixel_array[30:, 120:]).all()
        else:
            assert out.PixelData == original.PixelData, (original.Modality, original.get("ImageType"), out.get("BurnedInAnnotation"))
    assert masked >= 1


def test_second_run_changes_nothing(run: Run) -> None:
    manifest = (run.settings.output / MANIFEST).read_bytes()
    files = sorted(p for p in run.settings.output.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = run_folder(RunSettings(source=run.corpus.root, output=run.settings.output,
                                   db_url=run.settings.db_url, workers=1))
    assert again.count("written", "replaced") == 0
    assert again.count("unchanged") == run.summary.count("written")
    assert (run.settings.output / MANIFEST).read_bytes() == manifest
    assert sorted(p for p in run.settings.output.rglob("*") if p.is_file()) == files
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files)
    assert sum(1 for _ in run.store.patients()) == len({(k.patient_id, k.issuer) for k, _ in run.store.patients()})
