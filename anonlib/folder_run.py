"""A folder run: every file under a source folder de-identified into an organized tree.

:func:`run_folder` walks a source folder, in one process or several, and returns a PHI-free
:class:`RunSummary` that accounts for every input. A pre-pass (:mod:`anonlib.inputs`) reads each
header once: it resolves files that share a SOP Instance UID (conflicts, duplicates) and
collects the identifying values of every study and patient, so that a value carried by one
instance is scrubbed from the free text of all of them. A bad file is reported (its path and
the reason) and skipped; the run goes on. Only a failure of the lookup store stops it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from anonlib.dicomio import quiet_pydicom
from anonlib.engine import IdentifierIndex, Identifiers, ScopeKey, collect_identifiers, scope_key
from anonlib.errors import ConfigError, PixelError
from anonlib.inputs import InputFile, InputIndex, index_inputs
from anonlib.lazy_imports import settle
from anonlib.pipeline import (
    CONFLICT_LIST,
    MANIFEST,
    QUARANTINE_MANIFEST,
    REJECTED_LIST,
    FileResult,
    InstanceProcessor,
    pseudonym_policy,
)
from anonlib.pixels.select import ESCALATED, ImageInfo, Reading, image_info, plan_series
from anonlib.pixels.stage import check_engine, warm_up
from anonlib.profile import Plan, SiteProfile, build_plan
from anonlib.sinks.folder import FolderSink, ManifestRow, update_manifest, write_list
from anonlib.store import open_store
from anonlib.store.sqlite_file import sqlite_database

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["RunSettings", "RunSummary", "run_folder", "discover_files"]


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



@dataclass
class RunSummary:
    """Counts and per-file results of a run."""

    results: list[FileResult] = field(default_factory=list)
    total: int = 0  # the files of the run (results has one per file, fewer if it was cancelled)
    cancelled: bool = False  # stopped between two files before the last (see run_folder's ``stop``)

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
        conflicts + duplicates = files), then what the sinks did on disk. A cancelled run
        says so first, with the files it never reached."""
        head = (f"cancelled after {len(self.results)} of {self.total} files ({self.total - len(self.results)} "
                f"not processed): " if self.cancelled else "")
        return head + (f"{len(self.results)} files: {self.processed} de-identified, {self.quarantined} "
                f"quarantined, {len(self.rejected)} rejected, {len(self.conflicts)} conflicts, "
                f"{len(self.duplicates)} duplicates; {self.changes('written')} written, "
                f"{self.changes('unchanged')} unchanged, {self.changes('replaced')} replaced")



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
    database_name = _sqlite_database(db_url)
    if database_name not in (None, "", ":memory:"):
        database = Path(database_name).resolve()
        if output == database.parent or output in database.parents:
            raise ConfigError("the lookup store is the re-identification key: it must not live "
                              "inside the output folder")


def _sqlite_database(db_url: str) -> str | None:
    """The file of a SQLite store URL (None for other databases): without SQLAlchemy for the
    plain ``sqlite:///`` URLs, as SQLAlchemy reads any other."""
    plain = sqlite_database(db_url)
    if plain is not None:
        return plain
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    return url.database if url.get_backend_name() == "sqlite" else None


def discover_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, leaving out a sink's unfinished ``.tmp-*`` files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))


_WORKER: InstanceProcessor | None = None


def _make_processor(settings: RunSettings, db_url: str, plan: Plan | None = None) -> InstanceProcessor:
    """The processor of this process; ``plan``: the run's, already built from ``settings.profile``."""
    quiet_pydicom()
    store = open_store(db_url, pseudonym_policy(settings.profile))
    return InstanceProcessor(plan or build_plan(settings.profile), store, FolderSink(settings.output),
                             FolderSink(settings.quarantine_dir))


def _init_worker(settings: RunSettings, db_url: str) -> None:
    global _WORKER
    _WORKER = _make_processor(settings, db_url, _PLAN)  # the parent's plan, inherited by fork
    if _WORKER.plan.burned_in.reads_pixels:
        warm_up(_WORKER.plan.burned_in.engine)  # loads while this worker reads its share of headers


#: One file to process: its path, its label, the identifiers of its study and patient, and
#: what the pixel stage reads of it (None: decided from the file alone).
_Item = tuple[str, str, Identifiers | None, Reading | None]


def _work(batch: list[_Item]) -> list[FileResult]:
    assert _WORKER is not None
    results = [_WORKER.process(Path(path), label, known, reading) for path, label, known, reading in batch]
    _WORKER.flush()
    return results


def _collect_known(ds: Dataset) -> tuple[ScopeKey, Identifiers, ImageInfo]:
    """What the pre-pass keeps of each header besides its UIDs: the instance's study and
    patient, its identifying values (collected under the run's plan: the worker's, or the
    one :func:`run_folder` set in this process) and what the pixel stage's sampling needs."""
    plan = _WORKER.plan if _WORKER is not None else _PLAN
    assert plan is not None
    return scope_key(ds), collect_identifiers(ds, plan), image_info(ds, "", plan)


_PLAN: Plan | None = None


def _readings(selected: Sequence[InputFile]) -> tuple[dict[str, Reading], dict[str, str]]:
    """label → what the pixel stage reads of each selected file (the run's sampling), and
    label → its series (for escalation); empty unless the profile reads pixels."""
    plan = _WORKER.plan if _WORKER is not None else _PLAN
    if plan is None or not plan.burned_in.reads_pixels:
        return {}, {}
    infos = [replace(item.collected[2], key=item.label) for item in selected
             if isinstance(item.collected, tuple)]
    return plan_series(infos, plan.burned_in.sample_min_series), {i.key: i.series for i in infos}


def _known_by_file(index: InputIndex, plan: Plan) -> dict[str, Identifiers]:
    """label → the identifiers of the file's study and patient, from every readable header."""
    identifiers = IdentifierIndex(plan)
    scopes: dict[str, ScopeKey] = {}
    for item in index.files:
        if isinstance(item.collected, tuple):
            scope, found, _ = item.collected
            identifiers.add_identifiers(scope, found)
            scopes[item.label] = scope
    return {label: identifiers.known(scope) for label, scope in scopes.items()}


@contextmanager
def _pool(settings: RunSettings, db_url: str) -> Iterator[ProcessPoolExecutor | None]:
    """The run's worker processes (None with one worker): they read the headers, then work."""
    if settings.workers <= 1:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor

    if _PLAN is None or _PLAN.burned_in.reads_pixels:
        # The OCR engine loads in a thread of each worker while its main thread reads headers,
        # and Python 3.11's lazy modules are not thread-safe: load those the command line
        # deferred before forking. (Without OCR no second thread touches them: skipped, 0.05-0.1 s.)
        settle()
    # Create the store (schema, secret) once before the workers race to open it.
    open_store(db_url, pseudonym_policy(settings.profile)).close()
    with ProcessPoolExecutor(settings.workers, initializer=_init_worker,
                             initargs=(settings, db_url)) as pool:
        yield pool


#: A worker process costs about as much to start as a few files cost to process.
MIN_FILES_PER_WORKER = 8


def worker_count(requested: int, files: int) -> int:
    """How many workers a run of ``files`` files uses: ``requested`` at most, and no more than
    one per :data:`MIN_FILES_PER_WORKER` files (one file with ``--workers 2`` runs in this
    process: the output is the same, without the pool's start)."""
    return max(1, min(requested, files // MIN_FILES_PER_WORKER))


def task_sizes(files: int, workers: int) -> list[int]:
    """How the main pass splits ``files`` into tasks (in order): each task takes half a worker's
    share of what is left, at most 64 files and at least 4, so that the workers finish within a
    few files of each other while the tasks stay few (each ends with a store transaction, whose
    commit waits for the disk: 15 tasks for 300 files on 2 workers)."""
    sizes: list[int] = []
    left = files
    while left > 0:
        size = min(left, max(4, min(64, left // (workers * 2))))
        sizes.append(size)
        left -= size
    return sizes


def _results(settings: RunSettings, items: list[_Item], pool: ProcessPoolExecutor | None,
             processor: InstanceProcessor | None, stop: Callable[[], bool]) -> Iterable[FileResult]:
    """The results of ``items`` in order; once ``stop()`` says so, no further file is started
    (in this process: checked before each file; with workers: the tasks not yet started are
    cancelled, those already started finish and are yielded, so every file written is counted)."""
    if pool is None:
        assert processor is not None
        try:
            for path, label, known, reading in items:
                if stop():
                    return
                yield processor.process(Path(path), label, known, reading)
        finally:
            processor.flush()
        return
    if stop():
        return  # nothing submitted: a submitted task may start before it can be cancelled
    tasks, start = [], 0
    for size in task_sizes(len(items), settings.workers):
        tasks.append(items[start:start + size])
        start += size
    futures = [pool.submit(_work, task) for task in tasks]  # what pool.map does, with the futures kept
    for future in futures:
        if stop():
            for pending in futures:
                pending.cancel()  # only those not started yet
        if not future.cancelled():
            yield from future.result()


def run_folder(settings: RunSettings, *, paths: Sequence[Path] | None = None,
               on_result: Callable[[FileResult, int, int], None] | None = None,
               stop: Callable[[], bool] | None = None) -> RunSummary:
    """De-identify every file under ``settings.source`` (or only ``paths``, files under it) into
    ``settings.output``; ``on_result(result, done, total)`` is called after each file (progress
    bars in notebooks). ``stop()`` (a notebook's Cancel: ``threading.Event().is_set``) is asked
    between files: once true no further file is started, the manifests and lists describe what
    was done, and the summary says ``cancelled`` (every file is written whole or not at all).

    A pre-pass (:mod:`anonlib.inputs`) reads every header first; of the files that share a SOP
    Instance UID only the first in sorted path order is processed, the others are listed in
    ``conflicts.csv``. So no two files of a run are written to one output, whatever the number of
    workers, and the manifest describes the bytes on disk. Results come in sorted path order.
    The pre-pass also collects the identifying values of every study and patient, so that a
    value carried by one instance's header is scrubbed from the free text of all of them."""
    from anonlib.store import default_store_url

    global _PLAN
    db_url = settings.db_url or default_store_url()
    _check_locations(settings, db_url)
    plan = _PLAN = build_plan(settings.profile)  # fail on a bad profile before any work
    warming: threading.Thread | None = None
    files = discover_files(settings.source) if paths is None else [Path(p) for p in paths]
    settings = replace(settings, workers=worker_count(settings.workers, len(files)))
    if plan.burned_in.reads_pixels:
        try:
            check_engine(plan.burned_in.engine)
        except PixelError as exc:
            raise ConfigError(f"burned_in: ocr: {exc} (or choose --burned-in quarantine)") from exc
        if settings.workers <= 1:
            warming = warm_up(plan.burned_in.engine)  # loads while the pre-pass reads the headers
    try:
        with _pool(settings, db_url) as pool:
            # _collect_known reads public attributes and private person names only
            index = index_inputs(files, settings.source, tags=None, collect=_collect_known, pool=pool,
                                 limits=plan.limits, private=False)
            return _run(settings, db_url, index, _known_by_file(index, plan), pool, on_result,
                        stop or (lambda: False))
    finally:
        if warming is not None:
            warming.join()  # a short run may end before the engine has loaded (see warm_up)


class _NoBar:
    def update(self, _count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, shown: bool) -> Any:
    """A tqdm bar on stderr, or one that does nothing (tqdm is not imported for it)."""
    if not shown:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, desc="de-identifying")


def _run(settings: RunSettings, db_url: str, index: InputIndex, known: dict[str, Identifiers],
         pool: ProcessPoolExecutor | None,
         on_result: Callable[[FileResult, int, int], None] | None, stop: Callable[[], bool]) -> RunSummary:
    selected, skipped = index.selection()
    total = len(index.files)
    summary = RunSummary(total=total)
    manifest: dict[str, ManifestRow] = {}
    quarantined: dict[str, ManifestRow] = {}
    bar = _progress_bar(total, settings.progress)

    def done(result: FileResult) -> None:
        summary.results.append(result)
        bar.update(1)
        if on_result is not None:
            on_result(result, len(summary.results), total)

    processor = _make_processor(settings, db_url, _PLAN) if pool is None else None
    try:
        for skip in skipped:
            done(FileResult(skip.label, skip.status, reason=skip.reason, kept=skip.kept))
        readings, series = _readings(selected)
        items = [(str(f.path), f.label, known.get(f.label), readings.get(f.label)) for f in selected]
        first = [item for item in items if item[3] is None or item[3].how != "later"]
        later = [item for item in items if item[3] is not None and item[3].how == "later"]
        escalated: set[str] = set()

        def take(result: FileResult) -> None:
            if result.row is not None:
                (quarantined if result.status == "quarantined" else manifest)[result.row.path] = result.row
            if result.text_found and result.source in series:
                escalated.add(series[result.source])
            done(result)

        for result in _results(settings, first, pool, processor, stop):
            take(result)
        # The rest of each sampled series: read too where text was found in its sample.
        later = [(path, label, ids, ESCALATED if series.get(label) in escalated else reading)
                 for path, label, ids, reading in later]
        for result in _results(settings, later, pool, processor, stop):
            take(result)
        summary.cancelled = len(summary.results) < total
    finally:
        if processor is not None:
            processor.store.close()
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
