"""What the notebooks do, as plain functions.

Widgets (:mod:`anonlib.ui`) only build the parameters of these functions and show their
results; headless runs (papermill) call them directly with the notebook's parameters. So an
interactive session and a batch run take exactly the same code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from anonlib.errors import ConfigError
from anonlib.profile import SiteProfile, load_site_profile

if TYPE_CHECKING:
    import pandas as pd

    from anonlib.audit.model import AuditResult
    from anonlib.audit.pixel_check import PixelMode
    from anonlib.folder_run import RunSummary
    from anonlib.preview import StudyPreview
    from anonlib.sources.base import Source

__all__ = ["Anonymized", "Browse", "browse", "preview", "anonymize", "job_states", "held_studies", "audit_target",
           "load_profile", "source"]

Progress = Callable[[int, int], None]


def source(spec: str) -> Source:
    """A source from a folder path, a constellation node name or an Orthanc URL."""
    from anonlib.sources import open_source

    found: Source = open_source(spec)
    return found


def load_profile(path: str) -> SiteProfile:
    """The site profile at ``path``, or the defaults for ``""``."""
    return load_site_profile(Path(path)) if path else SiteProfile()


@dataclass
class Browse:
    """Patients and studies of a source, filtered."""

    patients: pd.DataFrame
    studies: pd.DataFrame


def browse(src: Source, *, patient: str = "", date_from: str = "", date_to: str = "",
           modality: str = "", patients: pd.DataFrame | None = None) -> Browse:
    """The patients and the studies that match the filters (empty filter: everything).
    ``patients``: the source's patient table when the caller has just read it (not read again)."""
    from anonlib.sources.tables import match_patient

    studies = src.studies(patient=patient or None, date_from=date_from or None, date_to=date_to or None,
                          modality=modality or None)
    if patients is None:
        patients = src.patients()
    if patient:
        patients = patients[match_patient(patients, patient)]
    return Browse(patients.reset_index(drop=True), studies.reset_index(drop=True))


def preview(src: Source, study: str, *, db_url: str, profile: str = "", instance: str = "",
            progress: Progress | None = None) -> StudyPreview:
    """What de-identification would do to ``study`` — a dry run: nothing is written anywhere.
    ``progress(done, total)`` follows its reads (every instance is read twice)."""
    from anonlib.preview import preview_study

    return preview_study(src, study, db_url=db_url or None, profile=load_profile(profile),
                         instance=instance or None, progress=progress)


@dataclass
class Anonymized:
    """What :func:`anonymize` did. A folder source: the run's ``summary`` (the accounting the
    command line prints), the study of each input file (``study_of``: file label → study key)
    and where the manifests are. An Orthanc source: the ``queued`` jobs (study, job, new)."""

    summary: RunSummary | None = None
    study_of: dict[str, str] = field(default_factory=dict)
    output: Path | None = None
    quarantine: Path | None = None
    queued: pd.DataFrame | None = None


def anonymize(src: Source, studies: Sequence[str], *, output: str, db_url: str, profile: str = "",
              progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> Anonymized:
    """De-identify the chosen studies. A folder source is processed here, into ``output``; an
    Orthanc source's studies are put on the constellation's job queue (the workers deliver
    them). ``stop()`` (a Cancel button) is asked between files: once true the run ends cleanly
    and its summary says it was cancelled."""
    if not studies:
        raise ConfigError("choose at least one study to anonymize")
    if src.kind == "orthanc":
        return Anonymized(queued=_enqueue(src, studies))
    from anonlib.folder_run import RunSettings, run_folder
    from anonlib.sources.folder import FolderSource

    if not isinstance(src, FolderSource):
        raise ConfigError(f"cannot anonymize from a {src.kind} source here")
    if not output.strip():
        raise ConfigError("no output folder given: say where the de-identified copy goes")
    root = src.root
    study_of = {str(Path(key).relative_to(root)): study for study in studies for key in src.instances(study)}
    settings = RunSettings(root, Path(output), db_url=db_url or None, profile=load_profile(profile))
    summary = run_folder(settings, paths=[root / label for label in study_of],
                         on_result=(lambda _r, done, total: progress(done, total)) if progress else None, stop=stop)
    return Anonymized(summary, study_of, settings.output, settings.quarantine_dir)


def _enqueue(src: Source, studies: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    from anonlib.constellation.info import load_info
    from anonlib.jobs.commands import session

    info = load_info(env_fallback=False)
    rows = []
    with session(info) as current:
        for study in studies:
            queued = current.enqueue(src.name, study=study) or []
            rows += [{"study": study, "job": q.job_id, "new": q.created} for q in queued]
    return pd.DataFrame(rows, columns=["study", "job", "new"])


def job_states(limit: int = 200, *, studies: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The constellation's recent study jobs (PHI-free), newest first; ``studies``: only the
    latest job of each of these ``(node, study)`` (what a notebook queued)."""
    import pandas as pd

    from anonlib.constellation.info import load_info
    from anonlib.jobs.db import JobRow, JobsDb

    info = load_info(env_fallback=False)
    db = JobsDb(info.db_url)
    try:
        rows = db.jobs(limit=None, latest_of=list(studies)) if studies is not None else db.jobs(limit=limit)
        return pd.DataFrame([job.as_dict() for job in rows], columns=[f.name for f in fields(JobRow)])
    finally:
        db.close()


def held_studies() -> pd.DataFrame:
    """The constellation's studies held by the audit gate (never delivered), with the reason:
    the failing or incomplete categories and their counts (PHI-free). ``anonlib jobs retry
    --held`` processes them again after a fix."""
    import pandas as pd

    from anonlib.constellation.info import load_info
    from anonlib.jobs.db import JobsDb
    from anonlib.jobs.held import held_studies as held

    info = load_info(env_fallback=False)
    db = JobsDb(info.db_url)
    try:
        rows = [{"node": h.node, "study": h.study_id, "job": h.job_id, "instances": h.instances, "runs": h.runs,
                 "reason": h.reason} for h in held(db)]
    finally:
        db.close()
    return pd.DataFrame(rows, columns=["node", "study", "job", "instances", "runs", "reason"])


def audit_target(target: str, *, originals: str = "", db_url: str = "", output: str = "",
                 conformance: bool = True, progress: Progress | None = None,
                 pixels: PixelMode = "sample") -> tuple[AuditResult, Path | None]:
    """Audit a folder (or a constellation node) against its originals; writes the HTML and JSON
    reports into ``output`` when given. Returns the result and the HTML report's path.

    Fails closed like ``anonlib audit``: ``originals`` that do not exist, hold no DICOM file or
    name an unknown node, and a ``db_url`` that cannot be opened, raise
    :class:`~anonlib.errors.ConfigError`; an instance whose original is not found makes the
    result INCOMPLETE (``result.status``). ``""`` means no originals (the leak check is then
    shown as skipped). ``progress(done, total)`` follows the audit. ``pixels``: ``sample``
    (default), ``all`` or ``off`` — which released images the pixel check reads with OCR."""
    from anonlib.audit.report import write_html, write_json
    from anonlib.audit.sources import Located, audit_located

    located: Located
    if Path(target).is_dir():
        located = Path(target), Path(originals) if originals else None, None
    else:
        from anonlib.constellation.info import load_info

        info = load_info(env_fallback=False)
        located = (info.node(target).as_reader(), info.node(originals).as_reader() if originals else None,
                   None)  # the audit only reads
    from anonlib.engine.uids import UidMapper

    result = audit_located(*located, db_url=db_url or None, use_store=bool(db_url or originals),
                           conformance=conformance, uid_mapping=UidMapper, progress=progress,
                           pixels=pixels)
    html = None
    if output:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        html = folder / "audit-report.html"
        write_html(result, html, title="De-identification audit")
        write_json(result, folder / "audit-summary.json")
    return result, html
