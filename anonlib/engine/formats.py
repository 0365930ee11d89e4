"""Which kept values are not what their VR allows (PS3.5 6.2), so never copied as they are.

A header can carry anything: a Modality of ``/etc/passwd``, a SeriesNumber of ``../../etc``. A
value the engine keeps is copied to the output, and from there into file names, databases and
viewers that trust the VR. Code strings (CS), integer strings (IS) and decimal strings (DS) are
checked here; one that is not of its VR's form is replaced (Type 1: a dummy) or emptied, with a
change record. Common, harmless writer habits are tolerated: lower-case letters and hyphens in
a CS, a DS longer than 16 characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["FORMAT_VRS", "conformant", "REPLACEMENTS"]

_FORMS = {
    "CS": re.compile(r"[A-Za-z0-9_ -]{0,16}"),
    "IS": re.compile(r" *[+-]?[0-9]{1,12} *"),
    "DS": re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *"),
}
#: The VRs whose kept values are checked.
FORMAT_VRS = frozenset(_FORMS)
#: A better dummy than the VR's own for some Type 1 attributes: Modality ``OT`` (other).
REPLACEMENTS = {0x00080060: "OT"}


def conformant(vr: str, values: Iterable[str]) -> bool:
    """Whether every value is of the form ``vr`` allows (see the module docstring)."""
    form = _FORMS.get(vr)
    return form is None or all(form.fullmatch(value) for value in values if value != "")
