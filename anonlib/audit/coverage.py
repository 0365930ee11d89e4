"""What the audit did not check, said as findings: a check switched off is ``skipped``; a check
that could not run, or an instance audited without its original, is ``incomplete``. Neither is
ever shown as passed (an incomplete finding makes the audit INCOMPLETE, see
:attr:`~anonlib.audit.model.AuditResult.status`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from anonlib.audit.model import Check, Finding

__all__ = ["DCIODVFY", "conformance_unavailable", "dciodvfy_available", "missing_original", "skipped_checks"]

#: The conformance validator (Debian package dicom3tools).
DCIODVFY = "dciodvfy"

_WHY_OFF: Mapping[str, str] = {"conformance": "switched off (--no-conformance)",
                               "pixels": "switched off (--pixels off): burned-in text was not read"}
_CATEGORY: Mapping[str, str] = {"safe_harbor": "all categories", "leak": "all categories",
                                "consistency": "all categories", "conformance": "dciodvfy",
                                "pixels": "all categories"}


def skipped_checks(enabled: Mapping[Check, bool], *, originals_given: bool,
                   expect_originals: bool = False) -> list[Finding]:
    """One ``skipped`` finding per check switched off, and for the leak check when no original
    was given at all (unless originals were expected: then each instance is incomplete)."""
    found = [Finding(check, _CATEGORY[check], "skipped", detail=_WHY_OFF.get(check, "switched off"))
             for check, on in enabled.items() if not on]
    if enabled.get("leak", False) and not originals_given and not expect_originals:
        found.append(Finding("leak", "all categories", "skipped", detail="no originals given"))
    return found


def missing_original(study: str, instance: str, *, unreadable: bool = False) -> Finding:
    """The leak check could not run for this instance: no original matched (or it was
    unreadable)."""
    why = "its original could not be read" if unreadable else "no original matched"
    return Finding("leak", "originals", "incomplete", study, instance, "",
                   f"{why}: the leak check did not run for this instance")


def dciodvfy_available(executable: str = DCIODVFY) -> bool:
    """Whether ``dciodvfy`` is on PATH."""
    return shutil.which(executable) is not None


def conformance_unavailable(instances: int) -> Finding:
    """dciodvfy is missing: the conformance of ``instances`` instances was not checked."""
    return Finding("conformance", "dciodvfy", "incomplete", detail=(
        f"{DCIODVFY} not found on PATH (install dicom3tools): the conformance of {instances} "
        "instance(s) was not checked"))
