"""What ``bench/speed.py`` runs: anonlib's commands, the floors and the peer de-identifiers.

Each tool is a whole process started on a flat input folder, writing into a fresh output folder.
Peers are installed from PyPI with default settings, each in its own virtualenv under
``<work>/venvs/<package>`` (``pip install <package>``, nothing pinned: the version installed is
printed with the results); nothing is downloaded while measuring.

=====================  ==============================================================================
anonlib w1 / w2        ``anonlib deidentify SRC DST --workers N --burned-in allow --no-progress`` with a
                       fresh SQLite lookup store (``--burned-in allow``: no OCR and no quarantine, as
                       no peer reads pixels; the CLI's default is OCR)
floor: cp -r           ``cp -r SRC DST``
floor: pydicom         ``pydicom.dcmread(f).save_as(DST/name)`` for every file, unchanged, one process
dicognito              ``python -m dicognito --quiet --output-directory DST SRC`` (0.19's console script
                       ``dicognito`` fails: its ``main()`` needs an argument)
dicom-anonymizer       ``dicom-anonymizer SRC DST`` (Kitware; one folder level)
deid                   ``deid.dicom.replace_identifiers(files, save=True, output_folder=DST)`` with its
                       default recipe (its CLI has no de-identify-to-folder action)
dcmanon                ``dcmanon.Anonymizer().anonymize(path)`` for every file, bytes written to DST
                       (a Rust extension; its PyPI wheel has no command line)
audit                  ``anonlib audit OUT --originals SRC --db STORE --pixels off`` on anonlib's own
                       output, with and without ``--no-conformance`` (dciodvfy)
=====================  ==============================================================================
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PEERS", "Tool", "Context", "tools", "install_peer", "peer_version"]

PEERS = ["dicognito", "dicom-anonymizer", "deid", "dcmanon"]

_PYDICOM_FLOOR = """
import sys, pathlib, pydicom
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(src.iterdir()):
    pydicom.dcmread(path).save_as(out / path.name)
"""

_DEID = """
import sys, pathlib, logging
from deid.dicom import replace_identifiers
src, out = pathlib.Path(sys.argv[1]), sys.argv[2]
replace_identifiers([str(p) for p in sorted(src.iterdir())], save=True, output_folder=out)
"""

_DCMANON = """
import sys, pathlib
from dcmanon import Anonymizer
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
anonymizer = Anonymizer()
for path in sorted(src.iterdir()):
    (out / path.name).write_bytes(anonymizer.anonymize(str(path)))
"""


@dataclass(frozen=True)
class Context:
    """Where things are: the anonlib interpreter and repository, and the bench's work folder."""

    python: Path
    repo: Path
    work: Path

    def anonlib(self) -> list[str]:
        script = self.python.parent / "anonlib"
        return [str(script)] if script.exists() else [str(self.python), "-c", "from anonlib.cli import main; main()"]

    def venv(self, package: str) -> Path:
        return self.work / "venvs" / package


@dataclass(frozen=True)
class Tool:
    """One measured command; ``argv(src, out, store)`` builds it, ``needs`` names its virtualenv."""

    name: str
    group: str
    argv: Callable[[Path, Path, str], list[str]]
    needs: str = ""
    audit: bool = False
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"ct", "mixed", "one", "study"}))


def tools(ctx: Context) -> list[Tool]:
    """Every tool, in the order of the first round (later rounds rotate it)."""
    anonlib = ctx.anonlib()

    def deidentify(workers: int) -> Callable[[Path, Path, str], list[str]]:
        return lambda src, out, store: [*anonlib, "deidentify", str(src), str(out), "--db", store,
                                        "--workers", str(workers), "--burned-in", "allow", "--no-progress"]

    def peer(package: str, *args: str, out_flag: str = "") -> Callable[[Path, Path, str], list[str]]:
        first = str(ctx.venv(package) / "bin" / args[0])
        if out_flag:
            return lambda src, out, store: [first, *args[1:], out_flag, str(out), str(src)]
        return lambda src, out, store: [first, *args[1:], str(src), str(out)]

    def audit(conformance: bool) -> Callable[[Path, Path, str], list[str]]:
        return lambda src, out, store: [*anonlib, "audit", str(out), "--originals", str(src), "--db", store,
                                        "--pixels", "off", *([] if conformance else ["--no-conformance"])]

    every = frozenset({"ct", "mixed", "one", "study"})
    return [
        Tool("anonlib w1", "anonlib", deidentify(1)),
        Tool("anonlib w2", "anonlib", deidentify(2)),
        Tool("floor: cp -r", "floor", lambda src, out, store: ["cp", "-r", str(src), str(out)]),
        Tool("floor: pydicom read+write", "floor",
             lambda src, out, store: [str(ctx.python), "-c", _PYDICOM_FLOOR, str(src), str(out)]),
        Tool("dcmanon", "peer", peer("dcmanon", "python", "-c", _DCMANON), needs="dcmanon"),
        Tool("dicognito", "peer", peer("dicognito", "python", "-m", "dicognito", "--quiet",
                                                    out_flag="--output-directory"), needs="dicognito"),
        Tool("dicom-anonymizer", "peer", peer("dicom-anonymizer", "dicom-anonymizer"), needs="dicom-anonymizer",
             kinds=every - {"study"}),
        Tool("deid", "peer", peer("deid", "python", "-c", _DEID), needs="deid", kinds=every - {"study"}),
        Tool("anonlib audit, no dciodvfy", "audit", audit(False), audit=True,
             kinds=frozenset({"ct", "mixed", "study"})),
        Tool("anonlib audit, dciodvfy", "audit", audit(True), audit=True, kinds=frozenset({"ct", "mixed"})),
    ]


def install_peer(ctx: Context, package: str, log: Callable[[str], None] = print) -> bool:
    """Create ``<work>/venvs/<package>`` and ``pip install <package>`` into it; True when it imports."""
    venv = ctx.venv(package)
    if peer_version(ctx, package):
        return True
    log(f"installing {package} into {venv} ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    logfile = venv.parent / f"{package}.install.log"
    with logfile.open("w") as out:
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], stdout=out, stderr=out)
        if made.returncode == 0:
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", package],
                           stdout=out, stderr=out)
    return bool(peer_version(ctx, package))


def peer_version(ctx: Context, package: str) -> str:
    """The installed version of ``package`` in its virtualenv, or '' when it is not installed."""
    python = ctx.venv(package) / "bin" / "python"
    if not python.exists():
        return ""
    found = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""
