"""Burned-in text benchmark (issue 10): box recall, over-masking and speed per OCR engine.

    .venv/bin/python bench/burnedin.py [--count 200] [--seed 0] [--engines rapidocr,tesseract]
                                       [--mode cli|direct] [--smoke] [--record] [--json FILE]

Generates the synthetic set (:mod:`anonlib.synthetic.burnedin`: images with their own synthetic
header values burned in, a quarter without text, truth boxes in ``truth.json``), then per engine
runs the real thing black-box — ``anonlib deidentify IN OUT --ocr-engine ENGINE`` (``cli``) — or
the pixel API alone (``direct``: ``find_text`` + ``mask_text`` on each file, no policy, no
sampling), and scores the output against the truth:

* **recall**: a truth box counts as *masked* when >= 90 % of its pixels changed (or hold the
  value the masker wrote over the rest of the box: background that already had the fill value
  cannot change — then >= 90 % of the other pixels, the ink, must have changed), or as *withheld* when its instance was not released (quarantined or rejected;
  input and output are matched by SOP Instance UID through the run's lookup store). Reported for
  identifying text (every kind but ``technical``) and for all text, with the misses by size,
  colour, font, position, kind and canvas.
* **over-masking**: the share of pixels changed outside the truth boxes, median and p95 over the
  released images with text, and over the released text-free images.
* **speed**: images per second for the whole run, and (direct mode) seconds per image.

Recognized text is never printed; the truth text is synthetic. ``--record`` appends the result
as markdown to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut

from anonlib.synthetic.burnedin import TRUTH_FILE, write_set

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
MASKED_SHARE = 0.9
IDENTIFYING = frozenset({"name", "id", "birth_date", "institution", "accession", "study_date"})


# ---------------------------------------------------------------- comparing pixels


def comparable(ds: Dataset) -> np.ndarray:
    """Frames × rows × cols × samples: stored values for greyscale, RGB for colour (palette
    colour through its table, YBR converted), so that input and output compare whatever
    colour space either was written in."""
    array = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        array = array[None]
    if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    if array.ndim == 3:
        array = array[..., None]
    return np.asarray(array)


def box_share(before: np.ndarray, after: np.ndarray, box: dict[str, int]) -> float:
    """The share of the box's pixels that are masked: changed, or holding the value most of the
    changed pixels took (the fill) already — but no more than the share of the pixels that did
    not hold the fill before (all of the ink, on a background of the fill value) that changed."""
    f, x, y, w, h = box["frame"], box["x"], box["y"], box["width"], box["height"]
    old, new = before[f, y:y + h, x:x + w], after[f, y:y + h, x:x + w]
    changed = (old != new).any(axis=-1)
    if not changed.any():
        return 0.0
    values, counts = np.unique(new[changed].reshape(-1, new.shape[-1]), axis=0, return_counts=True)
    fill = values[np.argmax(counts)]
    hidden = changed | (new == fill).all(axis=-1)
    visible_before = ~(old == fill).all(axis=-1)  # everything that could show text: must change
    return min(float(hidden.mean()), float(changed[visible_before].mean()) if visible_before.any() else 1.0)


def outside_share(before: np.ndarray, after: np.ndarray, boxes: Iterable[dict[str, int]]) -> float:
    """The share of the pixels outside every truth box (all frames) that changed."""
    changed = (before != after).any(axis=-1)
    outside = np.ones(changed.shape, dtype=bool)
    for box in boxes:
        outside[box["frame"], box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = False
    return float(changed[outside].mean()) if outside.any() else 0.0


# ---------------------------------------------------------------- scoring a run


@dataclass
class Verdict:
    """What a run did with one input: ``released`` with the output file, or withheld with the
    reason (PHI-free, from the quarantine or reject list); ``seconds`` when timed alone."""

    released: bool
    output: Path | None = None
    reason: str = ""
    seconds: float | None = None


@dataclass
class BoxScore:
    box: dict[str, Any]
    canvas: str
    share: float
    withheld: bool
    path: str = ""

    @property
    def hidden(self) -> bool:
        return self.withheld or self.share >= MASKED_SHARE


@dataclass
class Score:
    """Every box's fate and every released image's over-masking."""

    boxes: list[BoxScore] = field(default_factory=list)
    over_text: list[float] = field(default_factory=list)
    over_free: list[float] = field(default_factory=list)
    over_by_file: dict[str, float] = field(default_factory=dict)
    withheld: Counter[str] = field(default_factory=Counter)
    withheld_free: int = 0
    incomparable: int = 0
    files: int = 0


def score_file(result: Score, entry: dict[str, Any], before: np.ndarray, after: np.ndarray | None,
               reason: str = "") -> None:
    """Add one file: ``after`` is None when it was withheld (``reason``)."""
    result.files += 1
    boxes = entry["boxes"]
    if after is None:
        result.withheld[reason or "withheld"] += 1
        result.withheld_free += not boxes
        result.boxes += [BoxScore(box, entry["canvas"], 0.0, True, entry["path"]) for box in boxes]
        return
    if after.shape != before.shape:  # fail closed: what cannot be compared is not masked
        result.incomparable += 1
        result.boxes += [BoxScore(box, entry["canvas"], 0.0, False, entry["path"]) for box in boxes]
        return
    result.boxes += [BoxScore(box, entry["canvas"], box_share(before, after, box), False, entry["path"])
                     for box in boxes]
    over = outside_share(before, after, boxes)
    (result.over_text if boxes else result.over_free).append(over)
    result.over_by_file[entry["path"]] = over


def _p(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _size(box: dict[str, Any]) -> str:
    size = int(box["size"])
    return "8-10" if size <= 10 else "11-14" if size <= 14 else "16-22" if size <= 22 else "24-40"


def misses_by(boxes: Sequence[BoxScore], key: Callable[[BoxScore], str]) -> dict[str, tuple[int, int]]:
    """(missed, total) per value of ``key``."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for b in boxes:
        table[key(b)][0] += not b.hidden
        table[key(b)][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(table.items())}


def summarize(result: Score) -> dict[str, Any]:
    """Recall, over-masking and the breakdown of misses (counts only, never text)."""
    phi = [b for b in result.boxes if b.box["kind"] in IDENTIFYING]

    def recall(boxes: Sequence[BoxScore]) -> float:
        return sum(b.hidden for b in boxes) / len(boxes) if boxes else float("nan")

    return {
        "files": result.files,
        "boxes": len(result.boxes),
        "phi_boxes": len(phi),
        "recall_phi": recall(phi),
        "recall_all": recall(result.boxes),
        "masked_phi": sum(not b.withheld and b.hidden for b in phi),
        "withheld_phi": sum(b.withheld for b in phi),
        "over_text_median": _p(result.over_text, 50),
        "over_text_p95": _p(result.over_text, 95),
        "over_free_median": _p(result.over_free, 50),
        "over_free_p95": _p(result.over_free, 95),
        "free_changed": sum(v > 0 for v in result.over_free),
        "free_released": len(result.over_free),
        "withheld_free": result.withheld_free,
        "withheld": dict(result.withheld),
        "incomparable": result.incomparable,
        "misses": {
            "size": misses_by(phi, lambda b: _size(b.box)),
            "colour": misses_by(phi, lambda b: str(b.box["colour"])),
            "font": misses_by(phi, lambda b: str(b.box["font"])),
            "antialias": misses_by(phi, lambda b: "antialiased" if b.box["antialias"] else "aliased"),
            "position": misses_by(phi, lambda b: str(b.box["position"])),
            "kind": misses_by(result.boxes, lambda b: str(b.box["kind"])),
            "canvas": misses_by(phi, lambda b: b.canvas),
        },
        "missed": [dict(path=b.path, canvas=b.canvas, share=round(b.share, 3),
                        **{k: v for k, v in b.box.items() if k != "text"})
                   for b in result.boxes if not b.hidden],
        "over_masked_files": dict(sorted(result.over_by_file.items(), key=lambda kv: -kv[1])[:20]),
    }


def score_run(set_dir: Path, verdicts: dict[str, Verdict]) -> dict[str, Any]:
    """Score every file of the set at ``set_dir`` against what the run did with it."""
    truth = json.loads((set_dir / TRUTH_FILE).read_text())
    result = Score()
    for entry in truth["files"]:
        before = comparable(pydicom.dcmread(set_dir / entry["path"]))
        verdict = verdicts.get(entry["sop_instance_uid"], Verdict(False, reason="no output, no record"))
        after = None
        if verdict.released and verdict.output is not None:
            try:
                after = comparable(pydicom.dcmread(verdict.output))
            except Exception:  # noqa: BLE001 - an unreadable output hides nothing
                after = np.zeros((0,))
        score_file(result, entry, before, after, verdict.reason)
    summary = summarize(result)
    seconds = [v.seconds for v in verdicts.values() if v.seconds is not None]
    if seconds:
        summary["seconds_per_image_median"] = statistics.median(seconds)
        summary["seconds_per_image_p95"] = _p(seconds, 95)
    return summary


# ---------------------------------------------------------------- running the engines


def run_direct(engine: str, set_dir: Path, out: Path) -> dict[str, Verdict]:
    """The pixel API alone on every file: find_text + mask_text, written to ``out``."""
    from anonlib.pixels import PixelError, detector, find_text, mask_text

    det = detector(engine)
    verdicts: dict[str, Verdict] = {}
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((set_dir / "images").iterdir()):
        ds = pydicom.dcmread(path)
        start = time.perf_counter()
        try:
            boxes = find_text(ds, det)
            mask_text(ds, boxes)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
        except PixelError as exc:
            verdicts[ds.SOPInstanceUID] = Verdict(False, reason=f"pixels: {exc}", seconds=time.perf_counter() - start)
            continue
        (out / path.name).write_bytes(buffer.getvalue())
        verdicts[ds.SOPInstanceUID] = Verdict(True, out / path.name, seconds=time.perf_counter() - start)
    return verdicts


def run_cli(engine: str, set_dir: Path, work: Path) -> dict[str, Verdict]:
    """``anonlib deidentify`` on the set's folder; outputs matched through the lookup store."""
    from anonlib.pipeline import REJECTED_LIST
    from anonlib.store import open_store

    out, quarantine, db = work / "out", work / "quarantine", f"sqlite:///{work}/lookup.sqlite3"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ANONLIB_HOME=str(work / "home"))
    command = [str(ROOT / ".venv" / "bin" / "anonlib"), "deidentify", str(set_dir / "images"), str(out),
               "--ocr-engine", engine, "--db", db, "--quarantine", str(quarantine), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=6 * 3600)
    if done.returncode not in (0, 1):
        raise SystemExit(f"anonlib deidentify failed (exit {done.returncode}): {done.stderr[-2000:]}")
    rejected: dict[str, str] = {}
    if (quarantine / REJECTED_LIST).is_file():
        with (quarantine / REJECTED_LIST).open(newline="") as handle:
            rejected = {Path(row["source"]).name: row["reason"] for row in csv.DictReader(handle)}
    truth = json.loads((set_dir / TRUTH_FILE).read_text())
    verdicts: dict[str, Verdict] = {}
    with open_store(db, readonly=True) as store:
        for entry in truth["files"]:
            uid, name = entry["sop_instance_uid"], Path(entry["path"]).name
            record = store.instance(uid)
            if record is None:
                verdicts[uid] = Verdict(False, reason=f"rejected: {rejected.get(name, 'no record')}")
            elif record.status == "quarantined":
                verdicts[uid] = Verdict(False, reason=record.reason or "quarantined")
            else:
                verdicts[uid] = Verdict(True, out / record.output)
    return verdicts


# ---------------------------------------------------------------- reporting


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs visible (shared), Python {platform.python_version()}, {platform.system()}"


def describe_set(set_dir: Path) -> str:
    truth = json.loads((set_dir / TRUTH_FILE).read_text())
    files = truth["files"]
    boxes = [b for f in files for b in f["boxes"]]
    canvases = Counter(f["canvas"] for f in files)
    syntaxes = Counter(pydicom.uid.UID(f["transfer_syntax"]).name for f in files)
    return (f"{len(files)} images (seed {truth['seed']}): {sum(not f['boxes'] for f in files)} without text, "
            f"{sum(f['frames'] > 1 for f in files)} multi-frame; {len(boxes)} text boxes "
            f"({sum(b['kind'] in IDENTIFYING for b in boxes)} identifying). Canvases: "
            + ", ".join(f"{k} {v}" for k, v in sorted(canvases.items()))
            + ". Syntaxes: " + ", ".join(f"{k} {v}" for k, v in syntaxes.most_common()) + ".")


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.2f} %"


def markdown_row(engine: str, mode: str, s: dict[str, Any]) -> str:
    withheld = "; ".join(f"{n} {r}" for r, n in sorted(s["withheld"].items(), key=lambda kv: -kv[1])) or "none"
    per_image = f"{s['seconds_per_image_median']:.2f} s" if "seconds_per_image_median" in s else "—"
    return (f"| {engine} | {mode} | {s['recall_phi']:.3f} ({s['masked_phi']} masked + {s['withheld_phi']} withheld "
            f"of {s['phi_boxes']}) | {s['recall_all']:.3f} | {_pct(s['over_text_median'])} / {_pct(s['over_text_p95'])} "
            f"| {_pct(s['over_free_median'])} / {_pct(s['over_free_p95'])} ({s['free_changed']} of {s['free_released']} "
            f"changed) | {s['images_per_second']:.2f} | {per_image} | {withheld} |")


TABLE_HEAD = ("| engine | mode | recall, identifying boxes | recall, all boxes | over-masking with text "
              "(median / p95) | over-masking without text (median / p95) | images/s | s/image (median) "
              "| withheld (by reason) |\n|---|---|---|---|---|---|---|---|---|")


def misses_table(s: dict[str, Any]) -> str:
    lines = []
    for facet, table in s["misses"].items():
        cells = ", ".join(f"{k} {m}/{n}" for k, (m, n) in table.items() if m) or "none"
        lines.append(f"  - {facet}: {cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default="rapidocr,tesseract")
    parser.add_argument("--mode", choices=("cli", "direct"), default="cli")
    parser.add_argument("--smoke", action="store_true", help="8 images, first engine only (CI)")
    parser.add_argument("--record", action="store_true", help="append the result to bench/RESULTS.md")
    parser.add_argument("--json", type=Path, help="write the summaries as JSON here")
    parser.add_argument("--work", type=Path, help="keep the set and outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    engines = args.engines.split(",")[:1] if args.smoke else args.engines.split(",")
    count = 8 if args.smoke else args.count
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        set_dir = work / "set"
        start = time.perf_counter()
        write_set(set_dir, count=count, seed=args.seed)
        print(f"set: {describe_set(set_dir)} ({time.perf_counter() - start:.0f} s)", flush=True)
        summaries = {}
        for engine in engines:
            start = time.perf_counter()
            runner = run_cli if args.mode == "cli" else run_direct
            verdicts = runner(engine, set_dir, work / f"{engine}-{args.mode}")
            elapsed = time.perf_counter() - start
            summary = score_run(set_dir, verdicts)
            summary["images_per_second"] = count / elapsed
            summary["seconds"] = elapsed
            summaries[engine] = summary
            print(TABLE_HEAD.split("\n")[0] if engine == engines[0] else "", end="")
            print("\n" + markdown_row(engine, args.mode, summary))
            print(f"misses ({engine}, identifying boxes not hidden / total):\n{misses_table(summary)}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(summaries, indent=1))
        if args.record:
            record(args.mode, describe_set(set_dir), summaries)
    return 0


def record(mode: str, set_description: str, summaries: dict[str, dict[str, Any]]) -> None:
    section = "## Burned-in text (issue 10)"
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
    if section not in text:
        text += f"\n{section}\n\n`bench/burnedin.py`: see its docstring for the metrics.\n"
    rows = "\n".join(markdown_row(engine, mode, s) for engine, s in summaries.items())
    misses = "\n".join(f"- {engine}, misses by facet (not hidden / total, identifying boxes):\n{misses_table(s)}"
                       for engine, s in summaries.items())
    text += (f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {mode} mode\n\n"
             f"Machine: {machine()}.\n\nSet: {set_description}\n\n{TABLE_HEAD}\n{rows}\n\n{misses}\n")
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
