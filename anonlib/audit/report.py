"""Audit reports: a JSON summary for machines and one self-contained HTML page for people.

Both are built from :class:`~anonlib.audit.model.AuditResult` alone — findings that hold tag
paths, categories, counts and de-identified study/instance labels, never a value read from a
DICOM file — so a report cannot leak what the audit looked at. It names what was audited as the
operator named it (the folder's or node's name), the profile the outputs' markers name and the
date mode, and says PASS, FAIL or INCOMPLETE with the counts of instances with and without their
original; a check that could not run is shown as incomplete and one switched off as skipped.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anonlib import __version__
from anonlib.audit.model import VERDICTS, AuditResult
from anonlib.audit.report_html import badge, esc, page, section, table
from anonlib.audit.safe_harbor.dates import regulatory_status

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["to_dict", "write_json", "write_html", "render_html", "MAX_DETAIL_ROWS", "MAX_CHART_STUDIES"]

#: Rows of fail/warn details shown per study (the rest are counted; frame() has them all).
MAX_DETAIL_ROWS = 300
#: Studies in the per-study chart (those with the most failures).
MAX_CHART_STUDIES = 40
SET_WIDE = "(set-wide)"
#: The verdicts a person must act on, in the order shown.
_ACT_ON = ("fail", "incomplete", "warn")
_MEANING = {
    "fail": "blocks the release: an identifier remains, or a required marker is missing.",
    "warn": "needs review by a person: free text kept after cleaning, private elements, pixels "
            "at risk of burned-in text, text read in the pixels that matches no identifying value.",
    "expected": "present by design of the chosen method: the patient's pseudonym, remapped UIDs, "
                "shifted dates. Reported so that the regulatory status below can be judged.",
    "pass": "checked and clean: dummy values, markers present.",
    "incomplete": "could not be checked: a check that could not run (e.g. dciodvfy not installed), "
                  "an instance whose original was not found, or an image whose pixels could not be "
                  "decoded or read by OCR. The audit is INCOMPLETE, never a pass.",
    "skipped": "switched off on purpose (e.g. --no-conformance) or impossible by design (the leak "
               "check without originals): not checked, and not counted as passed.",
}


def _status(result: AuditResult) -> str:
    return result.regulatory_status or regulatory_status(result.date_mode or "unknown")


def _category_rows(result: AuditResult, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per check and category, plus a PASS row for each check that found nothing."""
    rows = [{"check": str(r["check"]), "category": str(r["category"]),
             **{v: int(r[v]) for v in VERDICTS}, "result": str(r["result"])}
            for r in result.summary(frame).to_dict("records")]
    seen = {row["check"] for row in rows}
    rows += [{"check": check, "category": "(no findings)", **dict.fromkeys(VERDICTS, 0),
              "result": "PASS"} for check in result.checks_run if check not in seen]
    return rows


def _study_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per de-identified study: instances, and findings by verdict."""
    if frame.empty:
        return []
    frame = frame.assign(study=frame["study"].replace("", SET_WIDE))
    counts = frame.groupby(["study", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(VERDICTS), fill_value=0)
    instances = frame[frame["instance"] != ""].groupby("study")["instance"].nunique()
    return [{"study": str(study), "instances": int(instances.get(study, 0)),
             **{v: int(counts.loc[study, v]) for v in VERDICTS},
             "result": "FAIL" if counts.loc[study, "fail"] else
             "INCOMPLETE" if counts.loc[study, "incomplete"] else "PASS"}
            for study in counts.index]


def to_dict(result: AuditResult, *, generated_at: dt.datetime | None = None) -> dict[str, Any]:
    """The JSON summary: verdict, counts per check/category/verdict, date mode and status."""
    return _to_dict(result, result.frame(), generated_at)


def _to_dict(result: AuditResult, frame: pd.DataFrame, generated_at: dt.datetime | None) -> dict[str, Any]:
    """:func:`to_dict` with the result's :meth:`~AuditResult.frame` already built."""
    by_check: dict[str, dict[str, int]] = {}
    for (check, verdict), count in frame.groupby(["check", "verdict"]).size().items():
        by_check.setdefault(str(check), dict.fromkeys(VERDICTS, 0))[str(verdict)] = int(count)
    when = generated_at or dt.datetime.now(dt.UTC)
    return {
        "status": result.status,
        "passed": result.passed,
        "generated_at": when.isoformat(timespec="seconds"),
        "anonlib_version": __version__,
        "dataset": result.dataset or "unknown",
        "profile": result.profile or "unknown",
        "instances": result.instances,
        "with_originals": result.with_originals,
        "without_originals": result.without_originals,
        "checks_run": list(result.checks_run),
        "checks_skipped": sorted({f"{f.check}/{f.category}" for f in result.findings if f.verdict == "skipped"}),
        "date_mode": result.date_mode or "unknown",
        "regulatory_status": _status(result),
        "failing_categories": result.failing_categories(),
        "incomplete_categories": [name for name, _ in result.counts("incomplete")],
        "counts": {
            "findings": len(frame),
            "by_verdict": {v: int((frame["verdict"] == v).sum()) for v in VERDICTS},
            "by_check": by_check,
            "by_category": _category_rows(result, frame),
        },
        "studies": _study_rows(frame),
    }


def write_json(result: AuditResult, path: Path) -> None:
    """Write :func:`to_dict` as UTF-8 JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_html(result: AuditResult, path: Path, *, title: str = "De-identification audit") -> None:
    """Write the self-contained HTML report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, title=title), encoding="utf-8")


# -- HTML ------------------------------------------------------------------------------------
def _headline(result: AuditResult, data: dict[str, Any]) -> str:
    if not result.instances:
        why = "No instance was audited."
    elif result.status == "PASS":
        why = "No check failed. Every check ran on every instance."
        if data["date_mode"] != "remove":
            why += " The dates are not Safe Harbor as written: see the regulatory status."
    elif result.status == "FAIL":
        why = "Failing: " + ", ".join(data["failing_categories"]) + "."
    else:
        why = ("Nothing failed, but not everything could be checked: "
               + ", ".join(f"{name} ({n})" for name, n in result.counts("incomplete")) + ".")
    if data["checks_skipped"]:
        why += " Skipped: " + ", ".join(data["checks_skipped"]) + "."
    meta = (f"Generated {data['generated_at']} by anonlib {data['anonlib_version']} · "
            f"{data['instances']} instance(s) audited, {data['with_originals']} with their original, "
            f"{data['without_originals']} without · checks: {', '.join(data['checks_run']) or 'none'}")
    return f'{badge(result.status)}<p>{esc(why)}</p><p class="meta">{esc(meta)}</p>'


def _what(data: dict[str, Any]) -> str:
    """What was audited: the dataset as the operator named it, the profile, the date mode."""
    rows = [("Dataset", data["dataset"]), ("Profile", data["profile"]), ("Date mode", data["date_mode"])]
    items = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in rows)
    return f'<dl class="what">{items}</dl>'


_LIMITS = (
    "Burned-in text is read with OCR in the released images the pixel check selects (every image "
    "at risk and small series in full, a sample of large cross-sectional series, all of a series "
    "once text is found in it; every image with --pixels all) and compared with the originals' "
    "names, IDs, dates and institutions; text OCR cannot read (faint, tiny, handwritten) is not "
    "found. Faces are judged from the header (RecognizableVisualFeatures, modality, body part).",
    "Free text is flagged, not understood: the leak check compares it with the originals when "
    "they are given; otherwise a person must read it.",
    "Pseudonyms and remapped UIDs are shown to differ from the originals only by the leak and "
    "consistency checks, and only for instances audited with their original.",
)


def _legend(result: AuditResult) -> str:
    items = "".join(f'<li><span class="v-{v}">{v}</span>: {esc(text)}</li>' for v, text in _MEANING.items())
    limits = "".join(f"<li>{esc(text)}</li>" for text in _LIMITS)
    originals = f"{result.with_originals} of {result.instances} instance(s) were audited with their original."
    return (f"<ul>{items}</ul><p><strong>Limits of this audit</strong></p><ul>{limits}</ul>"
            f'<p class="note">{esc(originals)}</p>')


def _charts(rows: list[dict[str, Any]], studies: list[dict[str, Any]]) -> str:
    from anonlib.audit.report_charts import stacked_bars  # matplotlib: only for the HTML report

    attention = [(f"{r['check']} / {r['category']}", r) for r in rows if r["fail"] or r["incomplete"] or r["warn"]]
    everything = [(f"{r['check']} / {r['category']}", r) for r in rows if sum(r[v] for v in VERDICTS)]
    per_study = {str(s["study"]): {v: s[v] for v in _ACT_ON}
                 for s in studies if any(s[v] for v in _ACT_ON)}  # the studies with findings to act on
    worst = sorted(per_study.items(), key=lambda kv: (-kv[1]["fail"], -kv[1]["incomplete"], -kv[1]["warn"], kv[0]))
    shown = f" ({MAX_CHART_STUDIES} of {len(worst)} studies, most failures first)" \
        if len(worst) > MAX_CHART_STUDIES else ""
    charts = [stacked_bars(attention, title="Findings to act on (fail, incomplete, warn) by check and category",
                           verdicts=_ACT_ON),
              stacked_bars(everything, title="All findings by check and category"),
              stacked_bars(worst[:MAX_CHART_STUDIES], title="Findings to act on by study" + shown,
                           verdicts=_ACT_ON)]
    return "".join(f'<div class="chart">{svg}</div>' for svg in charts)


def _details(frame: pd.DataFrame, study: str) -> str:
    rows = frame[(frame["study"] == study) & frame["verdict"].isin(_ACT_ON)]
    if rows.empty:
        return '<p class="note">No failing, incomplete or warning finding.</p>'
    grouped = (rows.groupby(["verdict", "check", "category", "path", "detail"])["instance"]
               .nunique().rename("instances").reset_index())
    grouped["order"] = grouped["verdict"].map({v: n for n, v in enumerate(_ACT_ON)})
    grouped = grouped.sort_values(["order", "check", "category", "path"])
    shown = grouped.head(MAX_DETAIL_ROWS)
    columns = ["verdict", "check", "category", "path", "detail", "instances"]
    body = table(columns, ([r[c] if c != "instances" else int(r[c]) for c in columns]
                           for r in shown.to_dict("records")))
    if len(grouped) > len(shown):
        body += (f'<p class="note">{len(grouped) - len(shown)} more rows not shown; '
                 "AuditResult.frame() holds every finding.</p>")
    return body


def _studies(frame: pd.DataFrame, data: dict[str, Any]) -> str:
    studies = data["studies"]
    if not studies:
        return '<p class="note">No findings.</p>'
    columns = ["study", "instances", *VERDICTS, "result"]
    overview = table(columns, ([s[c] for c in columns] for s in studies))
    frame = frame.assign(study=frame["study"].replace("", SET_WIDE))
    parts = []
    for study in studies:
        state = " open" if study["result"] != "PASS" else ""
        label = (f"{study['study']} — {study['result']}: {study['fail']} fail, {study['incomplete']} incomplete, "
                 f"{study['warn']} warn, "
                 f"{study['expected']} expected, {study['instances']} instance(s)")
        parts.append(f"<details{state}><summary>{esc(label)}</summary>"
                     f"{_details(frame, study['study'])}</details>")
    return overview + "".join(parts)


def render_html(result: AuditResult, *, title: str = "De-identification audit",
                generated_at: dt.datetime | None = None) -> str:
    """The report as one HTML document (inline CSS and SVG only)."""
    frame = result.frame()
    data = _to_dict(result, frame, generated_at)
    rows = data["counts"]["by_category"]
    summary = table(["check", "category", *VERDICTS, "result"],
                    ([r["check"], r["category"], *(r[v] for v in VERDICTS), r["result"]] for r in rows))
    body = "".join([
        _what(data),
        _headline(result, data),
        section("Regulatory status", f'<p class="status">{esc(data["regulatory_status"])}</p>'),
        section("What the verdicts mean", _legend(result)),
        section("Summary by check and category", summary),
        section("Charts", _charts(rows, data["studies"])),
        section("Studies", _studies(frame, data)),
    ])
    return page(title, body)
