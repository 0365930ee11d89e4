"""A benchmark set of burned-in text: real-looking images with the patient's own header values
drawn into the pixels, ground truth beside them.

    python -m anonlib.synthetic.burnedin OUT [--count 200] [--seed 0]

writes ``OUT/images/NNNN_<canvas>.dcm`` and ``OUT/truth.json``: for every file its canvas,
encoding and the boxes (frame, x, y, width, height) of each piece of text, with its kind (name,
id, birth_date, institution, accession, study_date, technical), font, size, colour, position and
the text itself (synthetic, like every header value: drawn by :mod:`anonlib.synthetic.phi`).
About a quarter of the files carry no text at all; their pixels are the canvas's own, and a
pydicom test image kept whole keeps its own encoded pixel data. Five images share one patient
and study. The same seed always gives the same files; image ``i`` does not depend on ``count``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from anonlib.synthetic import canvases, lettering
from anonlib.synthetic.annotations import Painter, TruthBox
from anonlib.synthetic.objects import Series, Study
from anonlib.synthetic.phi import UID_ROOT, Names, Person, date_forms, make_person, make_site, random_date
from anonlib.synthetic.stamp import stamp_equipment, stamp_patient, stamp_series, stamp_study

__all__ = ["TruthBox", "BurnedImage", "TRUTH_FILE", "make_image", "generate", "write_image", "write_set", "main"]

TRUTH_FILE = "truth.json"
PER_PATIENT = 5
KINDS = ("name", "id", "birth_date", "institution", "accession", "study_date", "technical")
_KIND_WEIGHTS = (25, 20, 20, 10, 8, 10, 7)
_CANVAS_WEIGHTS = {
    "ct": 30, "mr": 16, "us": 20, "sc": 14, "dx": 14, "mg": 6, "xa": 8, "ct_small": 14,
    "mr_small": 8, "mr_overlay": 10, "ct_693": 12, "nm_j2k": 8, "sc_document": 12, "us_rgb": 12,
    "us_palette": 10, "us_cine": 6,
}
_TECHNICAL = ("120 kV", "250 mAs", "HFS", "W 400 L 40", "5.0 mm", "Se 3 Im 12", "FOV 35 cm", "L", "R")


@dataclass
class BurnedImage:
    """One file of the set: the dataset as written, the canvas's pixels before (``clean``) and
    after lettering (``pixels``, both stored values), and the truth boxes."""

    index: int
    canvas: str
    source: str
    dataset: Dataset
    clean: np.ndarray
    pixels: np.ndarray
    boxes: list[TruthBox] = field(default_factory=list)
    native: bool = False

    @property
    def name(self) -> str:
        return f"{self.index:04d}_{self.canvas}.dcm"


def _phrases(p: Person, s: Study, rng: random.Random) -> dict[str, list[str]]:
    """The ways an annotation writes this patient's header values, by kind."""
    assert p.birth is not None
    middle = f" {p.middle[0]}." if p.middle else ""
    birth = date_forms(p.birth) + [p.birth.strftime("%d-%b-%Y").upper(), p.birth.strftime("%b %d, %Y")]
    prefix = rng.choice(("", "DOB: ", "Born ", "DOB "))
    institution = p.site.institution
    return {
        "name": [p.pn, f"{p.family}^{p.given}", f"{p.family.upper()}, {p.given.upper()}",
                 f"{p.given} {p.family}", f"{p.family}, {p.given}{middle}", f"{p.family.upper()} {p.given}"],
        "id": [p.mrn, f"ID: {p.mrn}", f"MRN {p.mrn}", f"Pat ID {p.mrn}"],
        "birth_date": [prefix + text for text in birth],
        "institution": [institution, institution.split(",")[0], institution.upper()],
        "accession": [s.accession, f"Acc: {s.accession}", f"ACC# {s.accession}"],
        "study_date": date_forms(s.date) + [f"{s.date:%d-%b-%Y} {s.time[:2]}:{s.time[2:4]}".upper()],
        "technical": list(_TECHNICAL),
    }


def _patient(seed: int, number: int) -> tuple[Person, Study]:
    rng = random.Random(f"burnedin:{seed}:patient:{number}")
    names = Names(rng)
    site = make_site(rng, names, 1 + number % 2)
    person = make_person(rng, names, f"patient-{number}", site,
                         birth=random_date(rng, dt.date(1935, 1, 1), dt.date(2005, 12, 31)))
    day = random_date(rng, dt.date(2019, 1, 1), dt.date(2025, 12, 31))
    study = Study(uid=person.uids.new(), date=day, time=f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}00",
                  accession=f"RA{rng.randint(10**7, 10**8 - 1)}", study_id=f"S{rng.randint(10**5, 10**6 - 1)}",
                  request_id=f"RP{rng.randint(10**6, 10**7 - 1)}", step_id=f"SPS{rng.randint(10**6, 10**7 - 1)}",
                  description="BURNED-IN TEXT BENCHMARK", series_date=day.strftime("%Y%m%d"),
                  report_date=day + dt.timedelta(days=1))
    return person, study


def _canvas_order(seed: int) -> list[str]:
    order = [name for name, weight in _CANVAS_WEIGHTS.items() for _ in range(weight)]
    random.Random(f"burnedin:{seed}:canvases").shuffle(order)
    return order


def _letter(canvas: canvases.Canvas, phrases: dict[str, list[str]], rng: random.Random) -> tuple[np.ndarray, list[TruthBox]]:
    pixels = canvas.pixels.copy()
    painter = Painter(canvas, pixels, rng, lettering.available_fonts())
    small = pixels.shape[1] < 100
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        kinds = rng.choices(KINDS, _KIND_WEIGHTS, k=rng.choice((1, 1, 2, 3)) if not small else 1)
        lines = []
        for kind in dict.fromkeys(kinds):  # one line of each kind in a block
            choices = phrases[kind] if not small else sorted(phrases[kind], key=len)[:2]
            lines.append((kind, rng.choice(choices)))
        painter.block(lines)
    return pixels, painter.boxes


def make_image(index: int, seed: int = 0) -> BurnedImage:
    """Image ``index`` of the set drawn from ``seed`` (independent of the set's size)."""
    order = _canvas_order(seed)
    name = order[index % len(order)]
    rng = random.Random(f"burnedin:{seed}:image:{index}")
    canvas = canvases.build(name, np.random.default_rng(rng.getrandbits(64)))
    person, study = _patient(seed, index // PER_PATIENT)
    with_text = index % 4 != 1
    if with_text:
        pixels, boxes = _letter(canvas, _phrases(person, study, rng), rng)
    else:
        pixels, boxes = canvas.pixels, []
    ds = canvas.native if canvas.native is not None and not boxes else canvas.header
    series = Series(f"{study.uid}.{index + 1}", index + 1, canvas.modality, f"{name} burned-in")
    stamp_patient(ds, person, study)
    stamp_study(ds, person, study)
    stamp_series(ds, person, study, series)
    stamp_equipment(ds, person)
    ds.SOPInstanceUID = f"{series.uid}.1"
    if ds is canvas.header:
        canvases.set_pixels(ds, pixels)
    return BurnedImage(index, name, canvas.source, ds, canvas.pixels, pixels, boxes,
                       native=ds is canvas.native)


def generate(count: int, seed: int = 0) -> Iterator[BurnedImage]:
    """Images 0 … ``count``-1 of the set drawn from ``seed``."""
    for index in range(count):
        yield make_image(index, seed)


def _syntax(image: BurnedImage, rng: random.Random) -> UID:
    """The transfer syntax a re-described image is written in, drawn from ``rng``."""
    options = [ExplicitVRLittleEndian] * 11 + [RLELossless] * 4 + [DeflatedExplicitVRLittleEndian]
    if str(image.dataset.PhotometricInterpretation) != "PALETTE COLOR":
        options += [JPEG2000Lossless] * 2 + [JPEGLSLossless] * 2
    return UID(rng.choice(options))


def write_image(image: BurnedImage, path: Path, seed: int = 0) -> UID:
    """Write one image (file meta, its transfer syntax); returns the syntax written. A kept
    pydicom source keeps its own syntax and encoded pixel data; others are encoded anew (plain
    when this machine has no encoder for the syntax drawn)."""
    ds = image.dataset
    syntax = UID(ds.file_meta.TransferSyntaxUID) if image.native else \
        _syntax(image, random.Random(f"burnedin:{seed}:syntax:{image.index}"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax if not syntax.is_compressed or image.native else ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(f"{UID_ROOT}.0.1")
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    if syntax.is_compressed and not image.native:
        frames = image.pixels if len(image.pixels) > 1 else image.pixels[0]
        try:
            ds.compress(syntax, frames, generate_instance_uid=False)
        except (RuntimeError, ValueError, NotImplementedError):
            syntax = ExplicitVRLittleEndian
            canvases.set_pixels(ds, image.pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return syntax


def write_set(out: Path, *, count: int = 200, seed: int = 0) -> Path:
    """Write ``count`` images under ``out/images`` and their truth to ``out/truth.json``."""
    out = Path(out)
    files = []
    for image in generate(count, seed):
        relative = f"images/{image.name}"
        syntax = write_image(image, out / relative, seed)
        ds = image.dataset
        files.append({
            "path": relative, "canvas": image.canvas, "source": image.source, "modality": str(ds.Modality),
            "sop_instance_uid": str(ds.SOPInstanceUID), "transfer_syntax": str(syntax),
            "photometric": str(ds.PhotometricInterpretation), "frames": int(image.pixels.shape[0]),
            "rows": int(image.pixels.shape[1]), "columns": int(image.pixels.shape[2]),
            "boxes": [asdict(box) for box in image.boxes],
        })
    truth = out / TRUTH_FILE
    truth.write_text(json.dumps({"generator": "anonlib.synthetic.burnedin", "seed": seed, "count": count,
                                 "files": files}, indent=1))
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anonlib.synthetic.burnedin", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (images/ and truth.json)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    truth = write_set(args.out, count=args.count, seed=args.seed)
    print(f"{args.count} images and their truth: {truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
