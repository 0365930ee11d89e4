"""Synthetic DICOM test data with planted PHI. Never real patient data.

Everything is built from pydicom's offline test files and highdicom, for fake patients drawn
from a seed: :func:`build_corpus` writes a small corpus (about 60 files: CT, MR, RT, SEG, SR,
GSPS, SC, US and bad files) and returns, for each patient, every identifying value planted,
by category, so that leak tests can look for them in de-identified output.
"""

from __future__ import annotations

from anonlib.synthetic.corpus import Corpus, CorpusFile, PlantedPatient, build_corpus

__all__ = ["Corpus", "CorpusFile", "PlantedPatient", "build_corpus"]
