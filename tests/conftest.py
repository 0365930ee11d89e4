"""Shared pytest configuration.

Fixtures live in small plugin modules by what they need, so each stays short:
``tests/fixtures/pg.py`` (real PostgreSQL databases), ``tests/fixtures/corpus.py`` (synthetic
DICOM with planted PHI), ``tests/fixtures/realworld.py`` (the DICOM files shipped in PyPI
packages), ``tests/fixtures/orthanc.py`` (real Orthanc constellations).
"""

pytest_plugins = [
    "tests.fixtures.pg",
    "tests.fixtures.corpus",
    "tests.fixtures.realworld",
    "tests.fixtures.orthanc",
    "tests.fixtures.figures",
]
