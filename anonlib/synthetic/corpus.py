"""Build the synthetic corpus: five fake patients, their studies, and a few bad files.

Layout: ``root/<nn>/<nnn>.dcm``, one numbered folder per study, except that patient-1's
second study sits one level deeper in a folder named after the patient (``Family_Given``), as
careless exports do, to prove that output names never derive from input names.

=========  =====================================================================================
patient-1  two studies (longitudinal). Study 1: two CT series. Study 2: CT, MR, RTSTRUCT on
           the CT, RTPLAN on the RTSTRUCT, RTDOSE on the RTPLAN, SEG of the CT, a Comprehensive
           SR citing this CT and the prior one, a GSPS, a burned-in Secondary Capture and an
           ultrasound image (both to be quarantined).
patient-2  one CT + MR study; aged 93 (PatientAge 093Y).
patient-3  one CT study with an invalid SeriesDate/AcquisitionDate (YYYY1345), a legacy
           ACR-NEMA birth date (YYYY.MM.DD) and a legacy StudyTime (HH:MM:SS).
patient-4  unidentified: no PatientID at all, empty PatientName; one CT study.
patient-5  same PatientID as patient-1 under another IssuerOfPatientID (another hospital):
           a different person. One CT study.
=========  =====================================================================================
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from anonlib.synthetic import derived, rt, studies
from anonlib.synthetic.bad import write_bad_files
from anonlib.synthetic.objects import Series, Study, write
from anonlib.synthetic.phi import (
    Names,
    Person,
    make_person,
    make_site,
    random_date,
    random_time,
)

__all__ = ["PlantedPatient", "CorpusFile", "Corpus", "build_corpus"]

CT_SLICES = 5
MR_SLICES = 3


@dataclass
class PlantedPatient:
    """One fake patient and every identifying value planted for them, by category."""

    label: str
    patient_id: str
    issuer: str
    values: dict[str, list[str]]
    study_uids: list[str]


@dataclass
class CorpusFile:
    """One file of the corpus and what a de-identifier is expected to do with it."""

    path: Path
    patient: str
    kind: str
    expect: str


@dataclass
class Corpus:
    """The files written under ``root`` and the patients they belong to."""

    root: Path
    files: list[CorpusFile] = field(default_factory=list)
    patients: list[PlantedPatient] = field(default_factory=list)

    def phi_values(self) -> set[str]:
        """Every planted value, all patients, all categories."""
        return {v for p in self.patients for values in p.values.values() for v in values}


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.corpus = Corpus(root=root)
        self._folders = 0
        self._counts: dict[Path, int] = {}

    def folder(self, name: str = "") -> Path:
        self._folders += 1
        folder = self.root / f"{self._folders:02d}"
        return folder / name if name else folder

    def add(self, ds: Dataset, folder: Path, p: Person, kind: str,
            expect: str = "deidentify") -> None:
        self._counts[folder] = self._counts.get(folder, 0) + 1
        path = folder / f"{self._counts[folder]:03d}.dcm"
        write(ds, path, p.site, p.recorder)
        self.corpus.files.append(CorpusFile(path, p.label, kind, expect))


def _study(rng: random.Random, p: Person, day: dt.date, description: str, **kw: str) -> Study:
    return Study(
        uid=p.uids.new(),
        date=day,
        time=random_time(rng),
        accession=f"RA{rng.randint(10**7, 10**8 - 1)}",
        study_id=f"S{rng.randint(10**5, 10**6 - 1)}",
        request_id=f"RP{rng.randint(10**6, 10**7 - 1)}",
        step_id=f"SPS{rng.randint(10**6, 10**7 - 1)}",
        description=description,
        series_date=kw.get("series_date", day.strftime("%Y%m%d")),
        report_date=day + dt.timedelta(days=1),
        study_time_text=kw.get("study_time_text", ""),
    )


def _series(p: Person, s: Study, modality: str, description: str, frame: str = "") -> Series:
    return Series(p.uids.new(), s.next_series_number(), modality, description, frame)


def _images(w: _Writer, folder: Path, p: Person, s: Study, modality: str, description: str,
            frame: str, count: int) -> list[Dataset]:
    series = _series(p, s, modality, description, frame or p.uids.new())
    images = studies.image_series(p, s, series, count)
    for ds in images:
        w.add(ds, folder, p, modality)
    return images


def _ct_study(w: _Writer, rng: random.Random, p: Person, day: dt.date, *, series: int = 2,
              mr: bool = False, folder_name: str = "",
              **kw: str) -> tuple[Study, list[Dataset], Path]:
    s = _study(rng, p, day, "CT CHEST W CONTRAST", **kw)
    folder = w.folder(folder_name)
    frame = p.uids.new()
    cts = _images(w, folder, p, s, "CT", "CHEST 5MM", frame, CT_SLICES)
    for _ in range(series - 1):
        _images(w, folder, p, s, "CT", "LUNG 5MM", frame, CT_SLICES)
    if mr:
        _images(w, folder, p, s, "MR", "T2 AX", "", MR_SLICES)
    return s, cts, folder


def _derived(w: _Writer, rng: random.Random, p: Person, day: dt.date, prior: Study,
             priors: list[Dataset]) -> Study:
    """Patient-1's follow-up: CT, MR and everything derived from the CT."""
    folder_name = f"{p.family}_{p.given}"
    p.recorder.add("A_names", folder_name)
    s, cts, folder = _ct_study(w, rng, p, day, series=1, mr=True, folder_name=folder_name)
    frame = cts[0].FrameOfReferenceUID
    structures = rt.rtstruct(p, s, _series(p, s, "RTSTRUCT", "Structures", frame), cts)
    w.add(structures, folder, p, "RTSTRUCT")
    plan = rt.rtplan(p, s, _series(p, s, "RTPLAN", "Plan", frame), structures)
    w.add(plan, folder, p, "RTPLAN")
    w.add(rt.rtdose(p, s, _series(p, s, "RTDOSE", "Dose", frame), plan, cts), folder, p, "RTDOSE")
    w.add(derived.segmentation(p, s, _series(p, s, "SEG", "Lesion SEG"), cts), folder, p, "SEG")
    sr_series = _series(p, s, "SR", "Report")
    w.add(derived.report(p, s, sr_series, cts, prior, priors), folder, p, "SR")
    w.add(derived.presentation_state(p, s, _series(p, s, "PR", "Notes"), cts), folder, p, "GSPS")
    sc = studies.secondary_capture(p, s, _series(p, s, "OT", "Screen capture"), cts[0])
    w.add(sc, folder, p, "SC")  # its burned-in banner is masked
    w.add(studies.ultrasound(p, s, _series(p, s, "US", "Abdomen US")), folder, p, "US",
          "quarantine")
    return s


def build_corpus(root: Path, *, seed: int = 0, bad_files: bool = True) -> Corpus:
    """Write the corpus under ``root`` (created if needed) and describe it.

    The same ``seed`` always gives byte-identical files and identical planted values.
    ``root`` must be empty or absent, so that no file of another build is mistaken for ours.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"corpus root is not empty: {root}")
    rng = random.Random(seed)
    names = Names(rng)
    home, other = make_site(rng, names, 1), make_site(rng, names, 2)
    w = _Writer(root)

    def day(first: tuple[int, int, int], last: tuple[int, int, int]) -> dt.date:
        return random_date(rng, dt.date(*first), dt.date(*last))

    a = make_person(rng, names, "patient-1", home, birth=day((1940, 1, 1), (1985, 12, 31)))
    first = day((2021, 1, 4), (2022, 6, 30))
    s1, priors, _ = _ct_study(w, rng, a, first)
    s2 = _derived(w, rng, a, first + dt.timedelta(days=rng.randint(150, 400)), s1, priors)
    planned: list[tuple[Person, list[Study]]] = [(a, [s1, s2])]

    exam = day((2022, 1, 1), (2023, 12, 31))
    birth = dt.date(exam.year - 93, exam.month, min(exam.day, 28))
    b = make_person(rng, names, "patient-2", home,
                    birth=birth - dt.timedelta(days=rng.randint(10, 300)))
    planned.append((b, [_ct_study(w, rng, b, exam, mr=True)[0]]))

    c = make_person(rng, names, "patient-3", other, birth=day((1955, 1, 1), (1975, 12, 31)))
    c.legacy_birth_date = True
    exam = day((2021, 1, 1), (2023, 12, 31))
    planned.append((c, [_ct_study(w, rng, c, exam, series_date=f"{exam.year}1345",
                                  study_time_text="10:30:00")[0]]))

    d = make_person(rng, names, "patient-4", home, birth=None, mrn="", named=False)
    planned.append((d, [_ct_study(w, rng, d, day((2021, 1, 1), (2023, 12, 31)), series=1)[0]]))

    e = make_person(rng, names, "patient-5", other, birth=day((1940, 1, 1), (1985, 12, 31)),
                    mrn=a.mrn)
    planned.append((e, [_ct_study(w, rng, e, day((2021, 1, 1), (2023, 12, 31)), series=1)[0]]))

    corpus = w.corpus
    for person, person_studies in planned:
        corpus.patients.append(PlantedPatient(
            label=person.label,
            patient_id=person.mrn,
            issuer=person.site.issuer if person.mrn else "",
            values=person.recorder.values,
            study_uids=[s.uid for s in person_studies],
        ))
    if bad_files:
        for path in write_bad_files(w.folder(), corpus.files[0].path, rng):
            corpus.files.append(CorpusFile(path, "", "bad", "reject"))
    return corpus
