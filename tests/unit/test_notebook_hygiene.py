"""Committed notebooks carry no outputs, counts, widget state or papermill traces, and keep the
parameters contract (one cell tagged ``parameters`` with typed names).

Read from git's index, i.e. what is (or is about to be) committed, not the working copy.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The contract of every bundled notebook: name -> accepted annotations.
CONTRACT = {"source": {"str"}, "db_url": {"str"}, "output": {"str"}, "originals": {"str"},
            "interactive": {"bool"}}
EXPECTED = ["notebooks/01_browse.ipynb", "notebooks/02_preview.ipynb", "notebooks/03_anonymize.ipynb",
            "notebooks/04_audit.ipynb", "notebooks/05_review.ipynb", "notebooks/06_reidentify.ipynb"]
WIDGET_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


def _tracked(pattern: str) -> list[str]:
    found = subprocess.run(["git", "ls-files", "--", pattern], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    return sorted(found.stdout.split())


BUNDLED = _tracked("notebooks/*.ipynb")
TEST_NOTEBOOKS = _tracked("tests/notebooks/*.ipynb")


def _committed(path: str) -> str:
    return subprocess.run(["git", "show", f":{path}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _notebook(path: str) -> nbformat.NotebookNode:
    return nbformat.reads(_committed(path), as_version=nbformat.NO_CONVERT)


def _annotations(source: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = ast.unparse(node.annotation)
    return names


def test_the_bundled_notebooks_are_committed() -> None:
    assert set(EXPECTED) <= set(BUNDLED)


@pytest.mark.parametrize("path", BUNDLED + TEST_NOTEBOOKS)
def test_notebook_is_stripped_and_valid(path: str) -> None:
    text = _committed(path)
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    metadata = nb.metadata
    assert "widgets" not in metadata, "saved widget state"
    assert "papermill" not in metadata, "papermill run metadata"
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        assert "injected-parameters" not in tags, f"cell {index}: papermill's injected parameters"
        assert "papermill" not in cell.get("metadata", {}), f"cell {index}: papermill metadata"
        assert "execution" not in cell.get("metadata", {}), f"cell {index}: execution timing"
        if cell.cell_type == "code":
            assert cell.execution_count is None, f"cell {index}: execution count"
            assert cell.outputs == [], f"cell {index}: outputs"
    assert not any(mime in text for mime in WIDGET_MIME), "widget output or state"


@pytest.mark.parametrize("path", BUNDLED)
def test_one_typed_parameters_cell_with_the_contract(path: str) -> None:
    nb = _notebook(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged parameters"
    assert tagged[0].cell_type == "code"
    names = _annotations(tagged[0].source)
    for name, accepted in CONTRACT.items():
        assert name in names, f"parameter {name} missing or not annotated"
        assert names[name] in accepted, f"parameter {name} annotated {names[name]}, expected {accepted}"
    # Every assignment in the cell is annotated (papermill --help-notebook shows the types).
    plain = [n for n in ast.parse(tagged[0].source).body if isinstance(n, ast.Assign)]
    assert not plain, "unannotated parameters"


@pytest.mark.parametrize("path", TEST_NOTEBOOKS)
def test_test_notebooks_have_a_parameters_cell(path: str) -> None:
    nb = _notebook(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert _annotations(tagged[0].source).get("interactive") == "bool"


#: Which bundled notebooks show original (identified) values; ``anonlib notebook report`` reads
#: the marker from the notebook's metadata (kept by nbstripout and by papermill).
SHOWS_IDENTIFIED = {"notebooks/01_browse.ipynb": True, "notebooks/02_preview.ipynb": True,
                    "notebooks/03_anonymize.ipynb": True, "notebooks/04_audit.ipynb": False,
                    "notebooks/05_review.ipynb": True, "notebooks/06_reidentify.ipynb": True}


@pytest.mark.parametrize("path", BUNDLED + TEST_NOTEBOOKS)
def test_notebook_declares_whether_it_shows_identified_data(path: str) -> None:
    declared = _notebook(path).metadata.get("anonlib", {}).get("shows_identified_data")
    assert declared is SHOWS_IDENTIFIED.get(path, False), declared
    banner = [c.source for c in _notebook(path).cells if c.cell_type == "markdown" and "Identified data" in c.source]
    assert bool(banner) is bool(declared), "the 'Identified data' banner belongs to the notebooks that show it"
