"""One instance end to end — read, look up, de-identify, write, record — and a folder run.

:class:`InstanceProcessor` is what every caller shares (the folder CLI here; the constellation's
study job and the notebooks later): it owns the lookup store's identities and the sinks.
:func:`run_folder` walks a source folder, in one process or several, and returns a PHI-free
:class:`RunSummary`. A bad file is reported (its path and the reason) and skipped; the run goes
on. Only a failure of the lookup store stops it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from tqdm import tqdm

from anonlib.dicomio import (
    ParsedInstance,
    encode_instance,
    parse_instance,
    quiet_pydicom,
    read_instance,
)
from anonlib.engine import Identifiers, Lookup, Outcome, UidMapper, deidentify, needs_pixel_data, patient_key
from anonlib.errors import AnonlibError, ConfigError, DeidentificationError, InputError, StoreError
from anonlib.inputs import InputIndex, index_inputs
from anonlib.profile import Plan, SiteProfile, build_plan
from anonlib.sinks.folder import (
    FolderSink,
    ManifestRow,
    relative_path,
    update_manifest,
    write_list,
)
from anonlib.store import LookupStore, PatientIdentity, PatientKey, PseudonymPolicy, open_store
from anonlib.store.base import InstanceRecord, StudyRecord

__all__ = ["RunSettings", "FileResult", "RunSummary", "InstanceProcessor", "run_folder",
           "pseudonym_policy", "discover_files", "MANIFEST", "QUARANTINE_MANIFEST", "REJECTED_LIST",
           "CONFLICT_LIST"]

log = logging.getLogger("anonlib.pipeline")
MANIFEST = "manifest.csv"
QUARANTINE_MANIFEST = "quarantine.csv"
REJECTED_LIST = "rejected.csv"
CONFLICT_LIST = "conflicts.csv"


@dataclass(frozen=True)
class RunSettings:
    """Everything a folder run needs, built once at the entry point."""

    source: Path
    output: Path
    db_url: str | None = None
    profile: SiteProfile = field(default_factory=SiteProfile)
    workers: int = 1
    quarantine: Path | None = None
    progress: bool = False

    @property
    def quarantine_dir(self) -> Path:
        return self.quarantine or self.output.with_name(self.output.name + "-quarantine")


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file. ``source`` (and ``kept``, the input processed in place
    of a conflict or duplicate) are the operator's own paths, relative to the source folder;
    everything else is PHI-free. ``status``: written | unchanged | replaced (released) |
    quarantined | rejected | conflict | duplicate (see :mod:`anonlib.inputs`); ``change``: what
    the sink did with a delivered instance, released or quarantined (written | unchanged | replaced)."""

    source: str
    status: str
    output: str = ""
    reason: str = ""
    row: ManifestRow | None = None
    change: str = ""
    kept: str = ""


@dataclass
class RunSummary:
    """Counts and per-file results of a run."""

    results: list[FileResult] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    def changes(self, *changes: str) -> int:
        """How many delivered instances (released or quarantined) had one of these changes."""
        return sum(1 for r in self.results if r.change in changes)

    @property
    def processed(self) -> int:
        return self.count("written", "unchanged", "replaced")

    @property
    def quarantined(self) -> int:
        return self.count("quarantined")

    @property
    def rejected(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "rejected"]

    @property
    def conflicts(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "conflict"]

    @property
    def duplicates(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "duplicate"]

    def describe(self) -> str:
        """One line that accounts for every input (de-identified + quarantined + rejected +
        conflicts + duplicates = files), then what the sinks did on disk."""
        return (f"{len(self.results)} files: {self.processed} de-identified, {self.quarantined} "
                f"quarantined, {len(self.rejected)} rejected, {len(self.conflicts)} conflicts, "
                f"{len(self.duplicates)} duplicates; {self.changes('written')} written, "
                f"{self.changes('unchanged')} unchanged, {self.changes('replaced')} replaced")


def pseudonym_policy(profile: SiteProfile) -> PseudonymPolicy:
    low, high = profile.date_shift_days
    return PseudonymPolicy(prefix=profile.pseudonym_prefix, shift_min_days=low, shift_max_days=high)


class InstanceProcessor:
    """De-identifies instances with one plan and one lookup store, writing to folder sinks."""

    def __init__(self, plan: Plan, store: LookupStore, output: FolderSink,
                 quarantine: FolderSink) -> None:
        self.plan = plan
        self.store = store
        self.output = output
        self.quarantine = quarantine
        self._secret = store.secret()
        self._identities: dict[PatientKey, PatientIdentity] = {}
        self._studies: set[str] = set()
        self._pending: list[InstanceRecord] = []

    #: Instance records are written to the store in batches of this many (one transaction each).
    BATCH = 64

    def flush(self) -> None:
        """Write the buffered instance records to the store."""
        if self._pending:
            self.store.record_instances(self._pending)
            self._pending = []

    def uid_mapper(self) -> UidMapper:
        """The project's UID mapping (what the engine does to every UID)."""
        return UidMapper(self._secret, self.plan.uid_root)

    def identity(self, key: PatientKey) -> PatientIdentity:
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = self.store.patient(key)
        return found

    def deidentify_file(self, path: Path, label: str, known: Identifiers | None = None,
                        ) -> tuple[Outcome, bytes, PatientIdentity]:
        """Read and de-identify one file (no writing); InputError/DeidentificationError if bad.
        ``known``: identifiers of its study and patient beyond the file (see the engine)."""
        return self._deidentify_read(lambda pixels: read_instance(path, with_pixels=pixels, label=label),
                                     known)

    def deidentify_bytes(self, data: bytes, label: str, known: Identifiers | None = None,
                         ) -> tuple[Outcome, bytes, PatientIdentity]:
        """De-identify one instance held in memory (for example fetched from Orthanc)."""
        return self._deidentify_read(lambda pixels: parse_instance(data, label=label, with_pixels=pixels),
                                     known)

    def _deidentify_read(self, read: Callable[[bool], ParsedInstance], known: Identifiers | None = None,
                         ) -> tuple[Outcome, bytes, PatientIdentity]:
        """``read(with_pixels)`` once without pixel data, again with it only when a pixel-mask
        rule needs the pixels, then de-identify."""
        parsed = read(False)
        if parsed.pixel_bytes is not None and needs_pixel_data(parsed.dataset, self.plan):
            parsed = read(True)
        return self.deidentify_parsed(parsed, known)

    def deidentify_parsed(self, parsed: ParsedInstance, known: Identifiers | None = None,
                          ) -> tuple[Outcome, bytes, PatientIdentity]:
        identity = self.identity(patient_key(parsed.dataset))
        lookup = Lookup(self._secret, identity.pseudonym, identity.date_shift_days)
        outcome = deidentify(parsed.dataset, self.plan, lookup, copy=False, known=known)
        if outcome.pixels_cleaned:
            return outcome, encode_instance(outcome.dataset, None), identity
        return outcome, encode_instance(outcome.dataset, parsed.pixel_bytes, parsed.source), identity

    def deliver(self, outcome: Outcome, data: bytes, identity: PatientIdentity, label: str) -> FileResult:
        """Write a de-identified instance to the output (or quarantine) tree and record it."""
        keys = outcome.keys
        relative = relative_path(identity.pseudonym, keys.study_date, keys.new_study_uid,
                                 keys.series_number, keys.modality, keys.new_sop_uid)
        sink = self.quarantine if outcome.quarantine else self.output
        change = sink.write(relative, data)
        digest = hashlib.sha256(data).hexdigest()
        self._record(outcome, identity, relative, digest)
        row = ManifestRow(relative, identity.pseudonym, keys.new_study_uid, keys.new_series_uid,
                          keys.new_sop_uid, keys.sop_class_uid, keys.modality, keys.study_date,
                          keys.series_number, digest,
                          "quarantined" if outcome.quarantine else "written", outcome.quarantine or "")
        return FileResult(label, "quarantined" if outcome.quarantine else change, relative,
                          outcome.quarantine or "", row, change)

    def process(self, path: Path, label: str) -> FileResult:
        """De-identify ``path`` and deliver it; never raises for a bad file."""
        try:
            outcome, data, identity = self.deidentify_file(path, label)
            return self.deliver(outcome, data, identity, label)
        except (InputError, DeidentificationError) as exc:
            return FileResult(label, "rejected", reason=getattr(exc, "reason", str(exc)))
        except StoreError:
            raise
        except AnonlibError as exc:
            return FileResult(label, "rejected", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
            log.warning("unexpected %s while processing a file", type(exc).__name__)
            return FileResult(label, "rejected", reason=f"internal error ({type(exc).__name__})")

    def _record(self, outcome: Outcome, identity: PatientIdentity, relative: str, digest: str) -> None:
        keys = outcome.keys
        if keys.original_study_uid not in self._studies:
            self.store.record_study(StudyRecord(keys.original_study_uid, keys.original_accession,
                                                identity.pseudonym, keys.new_study_uid, keys.study_date))
            self._studies.add(keys.original_study_uid)
        self._pending.append(InstanceRecord(
            keys.original_sop_uid, keys.new_sop_uid, keys.original_study_uid,
            "quarantined" if outcome.quarantine else "written", relative,
            outcome.quarantine or "", digest))
        if len(self._pending) >= self.BATCH:
            self.flush()


# -- folder runs ------------------------------------------------------------------------------

def _check_locations(settings: RunSettings, db_url: str) -> None:
    source, output = settings.source.resolve(), settings.output.resolve()
    quarantine = settings.quarantine_dir.resolve()
    if not source.is_dir():
        raise ConfigError(f"{settings.source}: source folder does not exist")
    for inner, outer, what in ((output, source, "output"), (source, output, "source"),
                               (quarantine, output, "quarantine folder")):
        if inner == outer or outer in inner.parents:
            raise ConfigError(f"the {what} must not be inside (or equal to) the "
                              f"{'output' if outer == output else 'source'} folder")
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database).resolve()
        if output == database.parent or output in database.parents:
            raise ConfigError("the lookup store is the re-identification key: it must not live "
                              "inside the output folder")


def discover_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, leaving out a sink's unfinished ``.tmp-*`` files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))


_WORKER: InstanceProcessor | None = None


def _make_processor(settings: RunSettings, db_url: str) -> InstanceProcessor:
    quiet_pydicom()
    store = open_store(db_url, pseudonym_policy(settings.profile))
    return InstanceProcessor(build_plan(settings.profile), store, FolderSink(settings.output),
                             FolderSink(settings.quarantine_dir))


def _init_worker(settings: RunSettings, db_url: str) -> None:
    global _WORKER
    _WORKER = _make_processor(settings, db_url)


def _work(batch: list[tuple[str, str]]) -> list[FileResult]:
    assert _WORKER is not None
    results = [_WORKER.process(Path(path), label) for path, label in batch]
    _WORKER.flush()
    return results


@contextmanager
def _pool(settings: RunSettings, db_url: str) -> Iterator[ProcessPoolExecutor | None]:
    """The run's worker processes (None with one worker): they read the headers, then work."""
    if settings.workers <= 1:
        yield None
        return
    # Create the store (schema, secret) once before the workers race to open it.
    open_store(db_url, pseudonym_policy(settings.profile)).close()
    with ProcessPoolExecutor(settings.workers, initializer=_init_worker,
                             initargs=(settings, db_url)) as pool:
        yield pool


def _results(settings: RunSettings, db_url: str, items: list[tuple[str, str]],
             pool: ProcessPoolExecutor | None) -> Iterable[FileResult]:
    if pool is None:
        processor = _make_processor(settings, db_url)
        try:
            for path, label in items:
                yield processor.process(Path(path), label)
        finally:
            processor.flush()
            processor.store.close()
        return
    size = max(1, min(64, len(items) // (settings.workers * 4) or 1))
    for batch in pool.map(_work, [items[start:start + size] for start in range(0, len(items), size)]):
        yield from batch


def run_folder(settings: RunSettings, *, paths: Sequence[Path] | None = None,
               on_result: Callable[[FileResult, int, int], None] | None = None) -> RunSummary:
    """De-identify every file under ``settings.source`` (or only ``paths``, files under it) into
    ``settings.output``; ``on_result(result, done, total)`` is called after each file (progress
    bars in notebooks).

    A pre-pass (:mod:`anonlib.inputs`) reads every header first; of the files that share a SOP
    Instance UID only the first in sorted path order is processed, the others are listed in
    ``conflicts.csv``. So no two files of a run are written to one output, whatever the number of
    workers, and the manifest describes the bytes on disk. Results come in sorted path order."""
    from anonlib.store import default_store_url

    db_url = settings.db_url or default_store_url()
    _check_locations(settings, db_url)
    build_plan(settings.profile)  # fail on a bad profile before any work
    with _pool(settings, db_url) as pool:
        index = index_inputs(discover_files(settings.source) if paths is None else map(Path, paths),
                             settings.source, pool=pool)
        return _run(settings, db_url, index, pool, on_result)


def _run(settings: RunSettings, db_url: str, index: InputIndex, pool: ProcessPoolExecutor | None,
         on_result: Callable[[FileResult, int, int], None] | None) -> RunSummary:
    selected, skipped = index.selection()
    total = len(index.files)
    summary = RunSummary()
    manifest: dict[str, ManifestRow] = {}
    quarantined: dict[str, ManifestRow] = {}
    bar = tqdm(total=total, unit="file", disable=not settings.progress, file=sys.stderr,
               desc="de-identifying")

    def done(result: FileResult) -> None:
        summary.results.append(result)
        bar.update(1)
        if on_result is not None:
            on_result(result, len(summary.results), total)

    try:
        for skip in skipped:
            done(FileResult(skip.label, skip.status, reason=skip.reason, kept=skip.kept))
        for result in _results(settings, db_url, [(str(f.path), f.label) for f in selected], pool):
            if result.row is not None:
                (quarantined if result.status == "quarantined" else manifest)[result.row.path] = result.row
            done(result)
    finally:
        bar.close()
        order = {f.label: n for n, f in enumerate(index.files)}
        summary.results.sort(key=lambda r: order.get(r.source, total))
        settings.output.mkdir(parents=True, exist_ok=True)
        update_manifest(settings.output / MANIFEST, manifest)
        if quarantined:
            update_manifest(settings.quarantine_dir / QUARANTINE_MANIFEST, quarantined)
        write_list(settings.quarantine_dir / REJECTED_LIST, ["source", "reason"],
                   [[r.source, r.reason] for r in summary.rejected])
        write_list(settings.quarantine_dir / CONFLICT_LIST, ["source", "kept", "status", "reason"],
                   [[r.source, r.kept, r.status, r.reason] for r in summary.results if r.kept])
    return summary
