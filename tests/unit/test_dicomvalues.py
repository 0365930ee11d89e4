"""The neutral value helpers, and the shape rule they exist for: the audit (the independent
witness) imports nothing of the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from anonlib.dicomvalues import format_path, is_kept_uid, is_registry_uid, parse_da, strings_of, text_of

AUDIT = Path(__file__).resolve().parents[2] / "anonlib" / "audit"
DCMTK_CODING_SCHEME_UID = "1.2.276.0.7230010.3.0.0.1"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(AUDIT.rglob("*.py")), ids=lambda p: str(p.relative_to(AUDIT)))
def test_the_audit_imports_nothing_of_the_engine(path: Path) -> None:
    engine = sorted(m for m in _imports(path) if m == "anonlib.engine" or m.startswith("anonlib.engine."))
    assert engine == [], f"{path.name} imports {engine}"


def test_coding_scheme_uids_of_the_registry_are_kept_wherever_they_are() -> None:
    snomed = "2.16.840.1.113883.6.96"
    assert is_registry_uid(snomed)
    assert is_kept_uid(int(tag_for_keyword("ReferencedSOPInstanceUID")), snomed)  # type: ignore[arg-type]


def test_a_definition_attribute_keeps_a_private_coding_scheme_uid_but_an_instance_attribute_does_not() -> None:
    coding_scheme = int(tag_for_keyword("CodingSchemeUID"))  # type: ignore[arg-type]
    sop_instance = int(tag_for_keyword("SOPInstanceUID"))  # type: ignore[arg-type]
    assert is_kept_uid(coding_scheme, DCMTK_CODING_SCHEME_UID)
    assert not is_kept_uid(sop_instance, DCMTK_CODING_SCHEME_UID)
    assert not is_registry_uid(DCMTK_CODING_SCHEME_UID)


def test_value_helpers() -> None:
    assert format_path(((0x0040A730, 2),), 0x0040A160) == "(0040,A730)[2]>(0040,A160)"
    assert parse_da("2021.01.20") is not None and parse_da("20211301") is None
    assert strings_of(["A", "", None, "B"]) == ["A", "B"] and strings_of(None) == []
    assert text_of({"PatientID": " X1 "}, "PatientID") == "X1" and text_of({}, "PatientID") == ""
