"""A study's de-identified result, kept privately until its delivery is verified.

When research (or a destination) is down, the study job fails after de-identifying and
auditing the study; its retry would fetch, de-identify and audit (dciodvfy, OCR) it all again.
Instead the job keeps what passed the gate — the encoded instances and their manifest rows —
under ``$ANONLIB_HOME/spool/<node>/<study>/`` (folders 0700, files 0600; de-identified data
only), keyed by everything the result depends on: the study's LastUpdate and instance IDs on
its node, the plan's fingerprint and the reviewers' decisions. A retry with the same key
delivers the kept result; any other key, or a file whose digest no longer matches its row,
discards it. The spool is removed once the delivery is verified (or the study held).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from anonlib.settings import private_dir
from anonlib.sinks.folder import ManifestRow

__all__ = ["Prepared", "Spool", "spool_key"]

log = logging.getLogger("anonlib.spool")

_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_STATE = "state.json"


@dataclass(frozen=True)
class Prepared:
    """A study de-identified and passed by the gate, ready to deliver: ``items`` are the
    released and quarantined instances (row, encoded bytes); ``instances`` how many were
    present when fetched, ``rejected`` how many of them could not be de-identified."""

    instances: int
    rejected: int
    new_study_uids: tuple[str, ...]
    items: tuple[tuple[ManifestRow, bytes], ...]
    reason: str = ""  # "partial: ..." when some instances were rejected (PHI-free)
    rejections: tuple[tuple[str, str], ...] = ()  # every rejected instance: (Orthanc ID, reason)


def spool_key(last_update: str, instance_ids: Sequence[str], plan_fingerprint: str, reviews: str) -> str:
    """What a kept result depends on, as one digest."""
    text = json.dumps([last_update, sorted(instance_ids), plan_fingerprint, reviews])
    return hashlib.sha256(text.encode()).hexdigest()


class Spool:
    """The kept results under ``root`` (``$ANONLIB_HOME/spool``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _folder(self, node: str, study_id: str) -> Path | None:
        if not (_SAFE.fullmatch(node) and _SAFE.fullmatch(study_id)):
            return None  # never a path built from something that is not an Orthanc name or ID
        return self.root / node / study_id

    def load(self, node: str, study_id: str, key: str) -> Prepared | None:
        """The kept result for ``key``, or None (nothing kept, another key, or damaged: then
        it is discarded)."""
        folder = self._folder(node, study_id)
        if folder is None or not (folder / _STATE).is_file():
            return None
        try:
            state = json.loads((folder / _STATE).read_text(encoding="utf-8"))
            if state.get("key") != key:
                raise ValueError("another state of the study")
            names = {f.name for f in fields(ManifestRow)}
            items = []
            for item in state["items"]:
                row = ManifestRow(**{k: v for k, v in item["row"].items() if k in names})
                data = (folder / item["file"]).read_bytes()
                if hashlib.sha256(data).hexdigest() != row.sha256:
                    raise ValueError("a kept file does not match its digest")
                items.append((row, data))
            rejections = tuple((str(i), str(r)) for i, r in state.get("rejections", []))
            return Prepared(int(state["instances"]), int(state["rejected"]),
                            tuple(state["new_study_uids"]), tuple(items), str(state.get("reason", "")), rejections)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.info("kept result of study %s of %s not used (%s)", study_id, node,
                     exc if isinstance(exc, ValueError) else type(exc).__name__)
            self.discard(node, study_id)
            return None

    def save(self, node: str, study_id: str, key: str, prepared: Prepared) -> None:
        """Keep ``prepared`` for ``key`` (replacing whatever was kept); best effort: a spool
        that cannot be written only costs a full retry."""
        folder = self._folder(node, study_id)
        if folder is None:
            return
        try:
            parent = private_dir(private_dir(self.root) / node)
            staging = Path(tempfile.mkdtemp(prefix=f".tmp-{study_id}-", dir=parent))  # 0700
            items = []
            for n, (row, data) in enumerate(prepared.items):
                name = f"{n:06d}.dcm"
                with os.fdopen(os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    out.write(data)
                items.append({"file": name, "row": asdict(row)})
            state = {"key": key, "instances": prepared.instances, "rejected": prepared.rejected,
                     "new_study_uids": list(prepared.new_study_uids), "items": items,
                     "reason": prepared.reason, "rejections": [list(r) for r in prepared.rejections]}
            with os.fdopen(os.open(staging / _STATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                           encoding="utf-8") as out:
                json.dump(state, out)
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(staging, folder)
        except OSError as exc:
            log.warning("could not keep the result of study %s of %s (%s)", study_id, node, type(exc).__name__)
            self.discard(node, study_id)

    def count(self, node: str, study_id: str, incident: str) -> int:
        """Count one more ``incident`` (a PHI-free word) for the study's kept result; how many
        there were so far (1 when nothing is kept: then nothing can be counted)."""
        folder = self._folder(node, study_id)
        if folder is None or not (folder / _STATE).is_file():
            return 1
        path = folder / "incidents.json"
        try:
            counts = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            counts[incident] = int(counts.get(incident, 0)) + 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(counts, out)
            return int(counts[incident])
        except (OSError, ValueError, TypeError):
            return 1

    def discard(self, node: str, study_id: str) -> None:
        """Remove what is kept for the study (and leftovers of an interrupted save)."""
        folder = self._folder(node, study_id)
        if folder is None:
            return
        shutil.rmtree(folder, ignore_errors=True)
        for stale in folder.parent.glob(f".tmp-{study_id}-*") if folder.parent.is_dir() else ():
            shutil.rmtree(stale, ignore_errors=True)
