"""The audit's vocabulary: what is audited, what is found, what the verdict is.

Everything here is PHI-free by construction. A :class:`Finding` names a check, a category, a
de-identified study and instance, a tag path and a description — never a value read from an
original or an output. Reports, logs and exit codes are built from findings only. The one
exception is :attr:`AuditResult.studies`, the pseudonym and study date each output study carries
(de-identified values), which :meth:`AuditResult.study_labels` shows only where the audit found
them de-identified; no report or JSON summary writes them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Check", "Verdict", "Status", "Finding", "AuditInput", "AuditResult", "CHECKS", "VERDICTS",
           "PATIENT_ID_PATH", "STUDY_DATE_PATH", "WITHHELD"]

Check = Literal["safe_harbor", "leak", "consistency", "conformance", "pixels"]
#: ``incomplete``: the check could not run (or not for every instance): never a pass.
#: ``skipped``: the check was switched off on purpose; shown as such, never as passed.
Verdict = Literal["fail", "incomplete", "warn", "expected", "pass", "skipped"]
VERDICTS: tuple[Verdict, ...] = ("fail", "incomplete", "warn", "expected", "pass", "skipped")
#: The audit's outcome: PASS only when every check ran on every instance and nothing failed.
Status = Literal["PASS", "FAIL", "INCOMPLETE"]
CHECKS: tuple[Check, ...] = ("safe_harbor", "leak", "consistency", "conformance", "pixels")
#: The tag paths of the values a study is named by in per-study tables.
PATIENT_ID_PATH = "(0010,0020)"
STUDY_DATE_PATH = "(0008,0020)"
#: What a per-study table shows instead of a value the audit did not find de-identified.
WITHHELD = "(withheld)"


@dataclass(frozen=True)
class Finding:
    """One observation. ``verdict`` fail blocks a release; warn and expected are reported."""

    check: Check
    category: str  # e.g. "A names", "C dates", "pseudonym", "reference", "dciodvfy", "markers"
    verdict: Verdict
    study: str = ""  # de-identified Study Instance UID (or "" for set-wide findings)
    instance: str = ""  # de-identified SOP Instance UID, or the output's relative path
    path: str = ""  # tag path such as (0040,A730)[0]>(0040,A160), or "raw bytes", "file name"
    detail: str = ""  # what was found, in words, with no value from the data


@dataclass
class AuditInput:
    """One de-identified instance to audit, with its original when known.

    ``label`` is PHI-free (a number, an Orthanc ID); ``original`` is the identified instance it
    came from (read at audit time, never written anywhere). Files are read only when needed, so
    a large folder is not held in memory.
    """

    label: str
    output: bytes | Path  # the bytes, or a file to read them from when needed
    original: bytes | Path | None = None


@dataclass
class AuditResult:
    """All findings of one audit, with what was audited and under which date mode."""

    findings: list[Finding] = field(default_factory=list)
    instances: int = 0
    with_originals: int = 0
    date_mode: str = ""  # shift | keep | remove | unknown, read from the outputs' markers
    regulatory_status: str = ""
    checks_run: list[str] = field(default_factory=list)
    dataset: str = ""  # what was audited, as the operator named it (a folder's or a node's name)
    profile: str = ""  # the de-identification profile named by the outputs' markers
    #: de-identified study → (PatientID, StudyDate) as the outputs carry them: shown only
    #: through :meth:`study_labels`, never written to a report
    studies: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        """FAIL when anything failed; INCOMPLETE when nothing failed but something could not be
        checked (a check that could not run, an instance without its original, nothing
        audited); PASS otherwise."""
        if any(f.verdict == "fail" for f in self.findings):
            return "FAIL"
        if self.instances == 0 or any(f.verdict == "incomplete" for f in self.findings):
            return "INCOMPLETE"
        return "PASS"

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def without_originals(self) -> int:
        """Instances audited without their original (the leak check did not run for them)."""
        return self.instances - self.with_originals

    def describe(self) -> str:
        """One PHI-free line: outcome, instances with and without their original, profile and
        date mode."""
        return (f"{self.status} — {self.instances} instances ({self.with_originals} with originals, "
                f"{self.without_originals} without), profile {self.profile or 'unknown'}, "
                f"date mode {self.date_mode or 'unknown'}")

    def counts(self, verdict: Verdict = "fail") -> list[tuple[str, int]]:
        """``(check/category, findings)`` with ``verdict``, most frequent first (PHI-free: for
        messages such as a held study's reason)."""
        found = Counter(f"{f.check}/{f.category}" for f in self.findings if f.verdict == verdict)
        return found.most_common()

    def failing_categories(self) -> list[str]:
        """``check/category`` of every failing finding, most frequent first."""
        counts = Counter(f"{f.check}/{f.category}" for f in self.findings if f.verdict == "fail")
        return [name for name, _ in counts.most_common()]

    def summary_rows(self) -> list[dict[str, str | int]]:
        """:meth:`summary` as rows (dicts), sorted by check and category, without pandas (whose
        import costs as much as auditing a hundred instances)."""
        counts: dict[tuple[str, str], Counter[str]] = {}
        for finding in self.findings:
            counts.setdefault((finding.check, finding.category), Counter())[finding.verdict] += 1
        rows: list[dict[str, str | int]] = []
        for (check, category), found in sorted(counts.items()):
            f, i, w, e, p, s = (found[verdict] for verdict in VERDICTS)
            result = "FAIL" if f else "INCOMPLETE" if i else "SKIPPED" if s and not (w or e or p) else "PASS"
            rows.append({"check": check, "category": category, **{v: found[v] for v in VERDICTS}, "result": result})
        return rows

    def frame(self) -> pd.DataFrame:
        """Every finding as a row (for notebooks and reports)."""
        import pandas as pd

        columns = ["check", "category", "verdict", "study", "instance", "path", "detail"]
        return pd.DataFrame([f.__dict__ for f in self.findings], columns=columns)

    def summary(self, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per check and category: counts by verdict and pass/fail. ``frame``: this
        result's :meth:`frame` when the caller already has it."""
        import pandas as pd

        frame = self.frame() if frame is None else frame
        if frame.empty:
            return pd.DataFrame(columns=["check", "category", *VERDICTS, "result"])
        table = (frame.groupby(["check", "category", "verdict"]).size().unstack(fill_value=0)
                 .reindex(columns=list(VERDICTS), fill_value=0).reset_index())
        table["result"] = ["FAIL" if f else "INCOMPLETE" if i else "SKIPPED" if s and not (w or e or p) else "PASS"
                           for f, i, w, e, p, s in zip(table["fail"], table["incomplete"], table["warn"],
                                                        table["expected"], table["pass"], table["skipped"])]
        return table

    def study_labels(self) -> dict[str, tuple[str, str]]:
        """Per de-identified study: the patient pseudonym and the study date its outputs carry,
        each replaced by :data:`WITHHELD` unless the audit found it de-identified — the leak
        check compared the study with its originals, and no finding of the study at that
        attribute failed, warned or was incomplete. A naive tool's output, whose PatientID is
        the original, is never shown."""
        leak_ran = "leak" in self.checks_run and self.with_originals > 0 and not any(
            f.check == "leak" and f.verdict in ("incomplete", "skipped") and not f.study for f in self.findings)
        unsafe: dict[str, set[str]] = {}
        for f in self.findings:
            if f.study and f.verdict in ("fail", "warn", "incomplete"):
                unsafe.setdefault(f.study, set()).add(
                    "*" if f.check == "leak" and f.verdict == "incomplete" else f.path)
        labels: dict[str, tuple[str, str]] = {}
        for study, (patient, date) in self.studies.items():
            paths = unsafe.get(study, set())
            shown = leak_ran and "*" not in paths
            labels[study] = (patient if shown and PATIENT_ID_PATH not in paths else WITHHELD,
                             date if shown and STUDY_DATE_PATH not in paths else WITHHELD)
        return labels

    def by_study(self) -> pd.DataFrame:
        """Failing and warning findings per de-identified study: the patient pseudonym and
        study date (see :meth:`study_labels`), the study's digest, check, category, verdict and
        count, sorted by patient and date."""
        import pandas as pd

        columns = ["patient", "study_date", "study", "check", "category", "verdict", "findings"]
        frame = self.frame()
        frame = frame[frame["verdict"].isin(["fail", "warn"])]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        table = frame.groupby(["study", "check", "category", "verdict"]).size().rename("findings").reset_index()
        labels = self.study_labels()
        table["patient"] = [labels.get(s, ("", ""))[0] for s in table["study"]]
        table["study_date"] = [labels.get(s, ("", ""))[1] for s in table["study"]]
        return table[columns].sort_values(["patient", "study_date", "study", "check", "category"],
                                          kind="stable").reset_index(drop=True)
