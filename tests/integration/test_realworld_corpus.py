"""Acceptance on real-world files nobody here wrote: every DICOM file shipped inside the PyPI
packages of the ``test`` extra (see tests/fixtures/realworld.py), through the real folder
pipeline and the real audit.

What must hold (issue 9, deliverable 8): each file is de-identified or rejected with a clear
reason; no two inputs silently share one output; no original UID and no identifying value
survives; no new dciodvfy error; and the audit of the output passes — zero false alarms.
Failure messages name the corpus files (package and path) behind each finding, never a value.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from anonlib.audit.model import AuditResult, Finding
from anonlib.audit.run import digest
from anonlib.audit.sources import audit_located
from anonlib.dicomvalues import is_kept_uid
from anonlib.engine import UidMapper
from anonlib.folder_run import RunSettings, RunSummary, run_folder
from tests.fixtures.realworld import RealCorpus

# The run and the audits read every image at risk with OCR (the pixel stage, then the audit's
# pixel check: about 1 s per image here, 100+ images): a module fixture may take more than the
# default 600 s on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

#: Statuses of an input that was de-identified and delivered (released or quarantined).
DELIVERED = frozenset({"written", "replaced", "unchanged", "quarantined"})
#: Inputs accounted for without being processed: another input with the same SOP Instance UID was.
ACCOUNTED = frozenset({"conflict", "duplicate"})
#: A reason that shows a crash instead of saying what is wrong with the file.
UNCLEAR = re.compile(r"internal error|traceback|\b[A-Z]\w*(?:Error|Exception)\b", re.IGNORECASE)
#: A UID worth searching for (issue 9: valid, at least 10 characters and 3 components).
UID = re.compile(r"^[0-9]+(\.[0-9]+){2,}$")
UID_TOKEN = re.compile(rb"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9]|\.[0-9])")


@dataclass
class Run:
    corpus: RealCorpus
    settings: RunSettings
    summary: RunSummary
    db_url: str

    def delivered(self) -> Iterator[tuple[str, Path]]:
        """(corpus file name, output file) of every input that was de-identified."""
        for result in self.summary.results:
            if result.status in DELIVERED and result.output:
                base = self.settings.quarantine_dir if result.status == "quarantined" else self.settings.output
                yield result.source, base / result.output


@pytest.fixture(scope="module")
def run(realworld_corpus: RealCorpus, tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("realworld-run")
    db_url = f"sqlite:///{base / 'lookup.sqlite3'}"
    settings = RunSettings(source=realworld_corpus.root, output=base / "output", db_url=db_url)
    return Run(realworld_corpus, settings, run_folder(settings), db_url)


@dataclass
class Audited:
    result: AuditResult
    origins: dict[str, list[str]]  # de-identified instance label → the corpus files behind it

    def failing(self, *checks: str) -> list[Finding]:
        return [f for f in self.result.findings if f.verdict in ("fail", "incomplete")
                and (not checks or f.check in checks)]

    def describe(self, findings: Iterable[Finding], limit: int = 40) -> str:
        """Failing findings grouped by check, category, tag path and detail, each with the
        corpus files that trigger it."""
        groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for f in findings:
            path = re.sub(r"\[\d+\]", "[*]", re.sub(r"entry \d+", "entry #", f.path))
            groups[(f.check, f.category, path, f.detail)].update(self.origins.get(f.instance, ["(set-wide)"]))
        lines = [f"{len(groups)} kinds of failing finding:"]
        for (check, category, path, detail), origins in sorted(groups.items())[:limit]:
            shown = sorted(origins)
            lines.append(f"- {check}/{category} at {path or '-'}: {detail}\n    " + "\n    ".join(
                shown[:6] + ([f"... and {len(shown) - 6} more"] if len(shown) > 6 else [])))
        return "\n".join(lines)


def _audit(run: Run, target: Path, pixels: str = "sample") -> Audited:
    origins: dict[str, list[str]] = defaultdict(list)
    for source, output in run.delivered():
        if output.is_relative_to(target) and output.is_file():
            uid = str(pydicom.dcmread(output, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            origins[digest(uid)].append(run.corpus.origin(source))
    start = time.perf_counter()
    result = audit_located(target, run.corpus.root, db_url=run.db_url, use_store=True, uid_mapping=UidMapper,
                           pixels=pixels)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    print(f"\naudit of {result.instances} real-world instances ({target.name}): {seconds:.1f} s, "
          f"{seconds / max(1, result.instances):.3f} s per instance")
    return Audited(result, dict(origins))


@pytest.fixture(scope="module")
def audited_output(run: Run) -> Audited:
    return _audit(run, run.settings.output)


@pytest.fixture(scope="module")
def audited_quarantine(run: Run) -> Audited:
    return _audit(run, run.settings.quarantine_dir, pixels="off")  # withheld: text is why they are there


def _survey(corpus: RealCorpus) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for item in corpus.files:
        ds = pydicom.dcmread(item.path, force=True, stop_before_pixels=True)
        meta = getattr(ds, "file_meta", Dataset())
        seen["syntax"].add(str(meta.get("TransferSyntaxUID", "")))
        seen["class"].add(str(ds.get("SOPClassUID", "")))
        seen["modality"].add(str(ds.get("Modality", "")))
        charset = ds.get("SpecificCharacterSet", "")
        seen["charset"].update([charset] if isinstance(charset, str) else [c for c in charset if c])
    return seen


def test_the_corpus_is_varied_real_world_data(realworld_corpus: RealCorpus) -> None:
    assert set(realworld_corpus.distributions()) == {"pydicom", "pydicom-data", "deid-data", "nibabel", "pynetdicom"}
    assert len(realworld_corpus.files) >= 250
    seen = _survey(realworld_corpus)
    assert len(seen["syntax"] - {""}) >= 12  # implicit/explicit LE, BE, deflate, RLE, JPEG, JPEG-LS, J2K
    assert {"CT", "MR", "US", "CR", "DX", "NM", "SEG", "SR", "RTDOSE", "RTPLAN", "RTSTRUCT", "ECG"} <= seen["modality"]
    assert {"1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.88.33",  # enhanced MR, comprehensive SR
            "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.481.8"} <= seen["class"]  # US multi-frame, RT ion plan
    assert {"ISO_IR 126", "ISO_IR 144", "ISO_IR 127", "ISO_IR 138", "ISO_IR 192", "GB18030",
            "ISO 2022 IR 13", "ISO 2022 IR 87", "ISO 2022 IR 149"} <= seen["charset"]


def test_every_file_is_deidentified_or_rejected_with_a_clear_reason(run: Run) -> None:
    results = {r.source: r for r in run.summary.results}
    assert set(results) == {f.path.name for f in run.corpus.files}
    unclear = [f"{run.corpus.origin(r.source)}: {r.status} {r.reason!r}" for r in results.values()
               if r.status not in DELIVERED | ACCOUNTED | {"rejected"} or UNCLEAR.search(r.reason)
               or (r.status == "rejected" and not r.reason)]
    assert not unclear, "\n".join(unclear)
    # Many of pydicom's files are re-encodings of one instance (one SOP Instance UID): the first
    # is de-identified, the others are conflicts; still, most files reach an output.
    delivered = run.summary.processed + run.summary.quarantined
    assert delivered >= len(results) // 2 and run.summary.conflicts, run.summary.describe()


def test_no_two_inputs_silently_share_one_output(run: Run) -> None:
    claimed: dict[Path, list[str]] = defaultdict(list)
    for source, output in run.delivered():
        claimed[output].append(run.corpus.origin(source))
    shared = {out: names for out, names in claimed.items() if len(names) > 1}
    assert not shared, f"{len(shared)} outputs claimed by several inputs:\n" + "\n".join(
        " + ".join(names) for names in shared.values())


def _uids(ds: Dataset) -> Iterator[tuple[int, str]]:
    meta = getattr(ds, "file_meta", None)
    for element in [*(meta.iterall() if meta is not None else []), *ds.iterall()]:
        if element.VR == "UI":
            for value in element.value if element.VM > 1 else [element.value]:
                text = str(value or "").strip(" \x00")
                if UID.match(text) and len(text) >= 10:
                    yield int(element.tag), text


def test_no_original_uid_survives_anywhere(run: Run) -> None:
    """An independent check (not the audit's): every UID of every original that the kept-UID
    policy does not keep is absent from every output's bytes."""
    originals: dict[str, set[str]] = defaultdict(set)
    for item in run.corpus.files:
        try:
            ds = pydicom.dcmread(item.path, force=True)
            found = [(tag, uid) for tag, uid in _uids(ds)]
        except Exception:  # noqa: BLE001 - an unreadable original was rejected; its UIDs come from what can be read
            continue
        for tag, uid in found:
            if not is_kept_uid(tag, uid):
                originals[uid].add(item.origin)
    survived = defaultdict(set)
    for source, output in run.delivered():
        for token in UID_TOKEN.findall(output.read_bytes()):
            if token.decode() in originals:
                survived[run.corpus.origin(source)].add(f"a UID of {sorted(originals[token.decode()])[0]}")
    assert not survived, "\n".join(f"{k}: {sorted(v)}" for k, v in sorted(survived.items()))


@pytest.mark.parametrize("tree", ["output", "quarantine"])
def test_the_audit_finds_no_original_uid_and_no_identifying_value(tree: str, request: pytest.FixtureRequest) -> None:
    audited: Audited = request.getfixturevalue(f"audited_{tree}")
    assert audited.result.with_originals == audited.result.instances > 0
    found = [f for f in audited.failing("leak", "consistency") if f.check == "leak" or f.category == "original UID"]
    assert not found, audited.describe(found)


@pytest.mark.parametrize("tree", ["output", "quarantine"])
def test_no_new_dciodvfy_error(tree: str, request: pytest.FixtureRequest) -> None:
    audited: Audited = request.getfixturevalue(f"audited_{tree}")
    assert "conformance" in audited.result.checks_run
    found = audited.failing("conformance")
    assert not found, audited.describe(found)


def test_the_audit_of_the_output_passes(audited_output: Audited) -> None:
    result = audited_output.result
    assert result.status == "PASS", f"{result.status}: {', '.join(result.failing_categories())}\n" + \
        audited_output.describe(audited_output.failing())
    assert result.instances >= 100


#: A few files of each kind for the command-line gate (kept small: the CLI runs twice).
CLI_SUBSET = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "test-SR.dcm",
              "reportsi.dcm", "chrRuss.dcm", "chrI2.dcm", "chrH31.dcm", "chrX1.dcm", "chrX2.dcm",
              "waveform_ecg.dcm", "eCT_Supplemental.dcm", "emri_small.dcm", "nicom/tests/data/0.dcm",
              "humans/ctbrain1.dcm", "SC_rgb_jpeg_gdcm.dcm")


def test_the_command_line_gate_passes_on_real_files(realworld_corpus: RealCorpus, tmp_path: Path) -> None:
    source = tmp_path / "input"
    source.mkdir()
    for item in realworld_corpus.files:
        if item.source.endswith(CLI_SUBSET):
            (source / item.path.name).write_bytes(item.path.read_bytes())
    assert len(list(source.iterdir())) == len(CLI_SUBSET)
    env = {**os.environ, "ANONLIB_HOME": str(tmp_path / "home")}
    db = f"sqlite:///{tmp_path / 'lookup.sqlite3'}"

    def anonlib(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonlib.cli", *args], capture_output=True, text=True,
                              env=env, timeout=600)

    done = anonlib("deidentify", str(source), str(tmp_path / "output"), "--db", db, "--no-progress")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    gate = anonlib("audit", str(tmp_path / "output"), "--originals", str(source), "--db", db)
    assert "Traceback" not in gate.stderr, gate.stderr
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "PASS" in gate.stdout
