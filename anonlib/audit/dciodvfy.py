"""Run dicom3tools' ``dciodvfy`` and compare its findings before and after de-identification.

De-identification must not make an object less conformant than it was, but many originals are
not conformant to begin with. So findings are normalized to the *kind* of problem, with every
value taken out, and :func:`introduced_errors` reports only the kinds the output has more of.

dciodvfy writes lines such as::

    Error - Missing attribute Type 2 Required Element=<PatientID> Module=<Patient>
    Error - Value invalid for this VR - (0x0008,0x0021) DA Series Date  DA [1] = <20231345> - ...
    Warning - Unrecognized defined term <TEST> for value 1 of attribute <Coding Scheme Designator>
    (0x0011,0x1001)  ?  - Warning - Unrecognized tag - assuming explicit value representation OK

What names the kind of problem is kept: the message text, tags, VRs, attribute descriptions
(``attribute <...>``), element and module names (``Element=<...>``, ``Module=<...>``) and
``Type 1C``-style requirement types. Everything that comes from the data is replaced by ``*``
(``<...>`` values, quoted strings and characters) or ``#`` (numbers, hex numbers, UIDs), so a
normalized message never carries a value read from the file: an identifying value, if the
output still had one, cannot reach a report through this module.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from anonlib.errors import AnonlibError

__all__ = [
    "DciodvfyNotFoundError",
    "DciodvfyReport",
    "introduced_errors",
    "normalize",
    "parse_output",
    "run_dciodvfy",
]

DEFAULT_TIMEOUT_S = 120.0


class DciodvfyNotFoundError(AnonlibError):
    """The ``dciodvfy`` executable (Debian package ``dicom3tools``) is not installed."""


@dataclass(frozen=True)
class DciodvfyReport:
    """Normalized findings of one dciodvfy run; ``iods`` names the IOD(s) it checked against."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    iods: list[str] = field(default_factory=list)


_LINE = re.compile(
    r"^(?:(?P<tag>\(0x[0-9a-fA-F]{4},0x[0-9a-fA-F]{4}\))\s+(?P<vr>\S+)\s+-\s+)?"
    r"(?P<level>Error|Warning|Abort) - (?P<text>.*)$"
)
_IOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_TOKEN = re.compile(
    r"""
      (?P<tag>\(0x[0-9a-fA-F]{4},0x[0-9a-fA-F]{4}\))       # a tag: kept
    | (?P<named>(?:Element|Module|Macro)=<[^<>]*>)         # element / module name: kept
    | (?P<described>\b[Aa]ttribute\ <[^<>]*>)              # attribute description: kept
    | (?P<type>\bType\ [123][CU]?\b)                        # requirement type: kept
    | (?P<valued>=\ <.*?>(?=\ -\ |\s*$))                    # "= <value> - ...": removed
    | (?P<term><.*?>(?=\ for\ value\ ))                     # "<value> for value N": removed
    | (?P<angle><[^<>]*>)                                   # any other <...> is a value
    | (?P<open>(?<== )<[^>]*$)                              # a value cut by a line break in it
    | (?P<dquote>"[^"]*")                                   # a quoted value: removed
    | (?P<squote>'.?'\ \((?:0x)?[0-9a-fA-F]+\))              # a character and its code
    | (?P<instead>\bis\ \S+\ instead\b)                     # "is <value> instead": removed
    | (?P<hex>\b0x[0-9a-fA-F]+\b)                           # a hex number: removed
    | (?P<number>[-+]?\d+(?:\.\d+)*(?:[eE][-+]?\d+)?)      # numbers, UIDs: removed
    """,
    re.VERBOSE,
)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if kind in ("tag", "named", "described", "type"):
        return text
    if kind == "valued":
        return "= <*>"
    if kind in ("term", "angle", "open"):
        return "<*>"
    if kind == "dquote":
        return '"*"'
    if kind == "squote":
        return "'*' (#)"
    if kind == "instead":
        return "is * instead"
    return "#"


def normalize(text: str) -> str:
    """The kind of problem a dciodvfy message describes, with every value removed."""
    return " ".join(_TOKEN.sub(_replace, text).split())


def parse_output(output: str) -> DciodvfyReport:
    """Parse dciodvfy's combined output into a normalized report."""
    report = DciodvfyReport()
    for raw in output.split("\n"):  # only dciodvfy's own line ends: a CR may sit in a value
        line = raw.strip()
        match = _LINE.match(line)
        if match is None:
            if _IOD_NAME.match(line):
                report.iods.append(line)
            continue  # continuation or tool chatter: never copied, it may hold values
        message = normalize(match["text"])
        if match["tag"]:
            message = f"{match['tag'].lower()} {match['vr']}: {message}"
        if match["level"] == "Warning":
            report.warnings.append(message)
        else:
            prefix = "Abort: " if match["level"] == "Abort" else ""
            report.errors.append(prefix + message)
    return report


def run_dciodvfy(path: Path, *, executable: str = "dciodvfy",
                 timeout: float = DEFAULT_TIMEOUT_S) -> DciodvfyReport:
    """Validate one file against its IOD with dciodvfy.

    A crash of dciodvfy itself (it aborts on some pixel encodings) is reported as an error,
    ``Abort: dciodvfy terminated by signal N``, since an output that crashes the validator
    where the original did not is a problem introduced.

    Raises :class:`DciodvfyNotFoundError` when the executable is missing and
    :class:`~anonlib.errors.AnonlibError` when it does not finish within ``timeout`` seconds.
    """
    program = shutil.which(executable)
    if program is None:
        raise DciodvfyNotFoundError(
            f"dciodvfy not found (looked for {executable!r} on PATH); install the Debian "
            "package 'dicom3tools'"
        )
    try:
        done = subprocess.run(
            [program, str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AnonlibError(f"dciodvfy did not finish within {timeout:g} s on {Path(path).name}") \
            from exc
    output = (done.stdout + done.stderr).decode("latin-1")
    report = parse_output(output)
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        report.errors.append(f"Abort: dciodvfy terminated by signal {name}")
    return report


def introduced_errors(original: DciodvfyReport, output: DciodvfyReport) -> list[str]:
    """Errors the output has more often than the original (multiset difference), in the
    order they appear in the output."""
    budget = Counter(original.errors)
    introduced = []
    for message in output.errors:
        if budget[message] > 0:
            budget[message] -= 1
        else:
            introduced.append(message)
    return introduced
