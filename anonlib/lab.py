"""``anonlib lab``: JupyterLab on a working copy of the bundled notebooks under ``$ANONLIB_HOME``.

The checkout's notebooks stay clean: Lab serves ``$ANONLIB_HOME/notebooks/`` (its root), where
each bundled notebook is copied when missing, its relative parameter defaults (``../example/…``)
made absolute so that they still point at the checkout's example data — except where the
example's folders do not exist (no example data was generated): a SQLite lookup store default
becomes the user's own store in ``$ANONLIB_HOME`` and an ``output`` default a folder of that
name in ``$ANONLIB_HOME``, so that anonymizing and auditing a folder of one's own works without
editing the parameters, and nothing is created in the checkout (nor the key store where nobody
chose). A copy the user has
changed (its cells' sources differ from what was written) is never overwritten: a newer
bundled version is written beside it as ``<name>.new.ipynb``. An unchanged copy follows the
bundled version. Which version was written is kept in ``.anonlib-copies.json`` there.

Lab listens on 127.0.0.1 on a free port with a fresh token (the URL is printed), runs its
kernels over the local ``ipc`` transport (Unix sockets in Jupyter's runtime folder, readable by
their owner only: no "Kernel is running over TCP without encryption"), with its own settings
and workspaces under ``$ANONLIB_HOME/lab`` (no Jupyter news pop-up), ``--allow-root`` when run
as root, and stops — kernels shut down — on the first Ctrl-C.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["COPIES_FILE", "LAB_SETTINGS", "NOTEBOOKS_FOLDER", "CopyOutcome", "LabOptions", "lab_argv",
           "prepare_working_copy", "run_lab", "write_lab_settings"]

NOTEBOOKS_FOLDER = "notebooks"
COPIES_FILE = ".anonlib-copies.json"

#: Lab settings written once (the user may change them afterwards): no "Jupyter news" pop-up,
#: no update check.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}

Action = Literal["created", "updated", "current", "side by side"]


@dataclass(frozen=True)
class CopyOutcome:
    """What happened to one bundled notebook's working copy."""

    name: str
    action: Action
    path: Path  # the working copy, or the newer version beside it ("side by side")

    def line(self) -> str:
        if self.action == "side by side":
            return (f"{self.name}: you changed your copy; anonlib's newer version is beside it: "
                    f"{self.path.name}")
        return f"{self.name}: {self.action}"


@dataclass(frozen=True)
class LabOptions:
    """How to start Lab: ``root`` (the working copy), ``port`` (0: a free one), ``token``,
    ``open_browser``, and where its settings and workspaces live."""

    root: Path
    settings_dir: Path
    workspaces_dir: Path
    port: int = 0
    token: str = ""
    open_browser: bool = True


# -- the working copy --------------------------------------------------------------------------------

def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sources_digest(text: str) -> str:
    """What the user edits: each cell's type and source (not outputs, counts or metadata)."""
    cells = json.loads(text).get("cells", [])
    flat = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in cells]
    return _digest(json.dumps(flat).encode())


def prepared_copy(bundled: Path) -> str:
    """``bundled`` as written into the working copy: the relative path defaults of its cell
    tagged ``parameters`` made absolute against the bundled notebook's folder."""
    from anonlib.notebooks import absolute_paths

    nb = json.loads(bundled.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        lines = source.splitlines(keepends=True)
        for node in ast.parse(source).body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                continue
            value = node.value.value
            fixed = _reachable_store(node.target.id,
                                     absolute_paths({node.target.id: value}, bundled.parent).get(node.target.id, value))
            if fixed != value and node.value.lineno == node.value.end_lineno:
                line = lines[node.value.lineno - 1]
                lines[node.value.lineno - 1] = (line[:node.value.col_offset] + json.dumps(fixed)
                                                + line[node.value.end_col_offset:])
        joined = "".join(lines)
        cell["source"] = joined.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _reachable_store(name: str, value: str) -> str:
    """``value`` of the parameter ``name``; a ``db_url`` naming a SQLite file in a folder that
    does not exist becomes the default store of ``$ANONLIB_HOME``, an absolute ``output`` in a
    folder that does not exist a folder of its name in ``$ANONLIB_HOME`` (see the module's
    docstring)."""
    from anonlib.settings import anonlib_home
    from anonlib.store import default_store_url
    from anonlib.store.sqlite_file import sqlite_database

    if name == "output" and value and Path(value).is_absolute() and not Path(value).parent.is_dir():
        return str(anonlib_home(create=False) / Path(value).name)
    database = sqlite_database(value) if name == "db_url" else None
    if database in (None, "", ":memory:") or Path(str(database)).parent.is_dir():
        return value
    return default_store_url(create=False)


def prepare_working_copy(folder: Path, bundled: Sequence[Path] | None = None) -> list[CopyOutcome]:
    """Bring ``folder`` (the working copy) up to date with the ``bundled`` notebooks (default:
    every ``*.ipynb`` of :func:`~anonlib.notebooks.notebooks_dir`) without overwriting a copy
    the user changed. Returns what happened to each."""
    from anonlib.notebooks import notebooks_dir
    from anonlib.settings import private_dir, write_private

    private_dir(folder)
    sources = sorted(notebooks_dir().glob("*.ipynb")) if bundled is None else list(bundled)
    state_file = folder / COPIES_FILE
    state: dict[str, dict[str, str]] = json.loads(state_file.read_text()) if state_file.is_file() else {}
    outcomes: list[CopyOutcome] = []
    for source in sources:
        name, text = source.name, prepared_copy(source)
        copy, record = folder / name, state.get(source.name, {})
        bundled_digest, written_digest = _digest(source.read_bytes()), _sources_digest(text)
        if not copy.exists():
            write_private(copy, text)
            outcomes.append(CopyOutcome(name, "created", copy))
        elif record.get("bundled") == bundled_digest:
            outcomes.append(CopyOutcome(name, "current", copy))
            continue
        elif _sources_digest(copy.read_text(encoding="utf-8")) in (record.get("sources"), written_digest):
            if _sources_digest(copy.read_text(encoding="utf-8")) != written_digest:
                write_private(copy, text)
                outcomes.append(CopyOutcome(name, "updated", copy))
            else:
                outcomes.append(CopyOutcome(name, "current", copy))
        else:  # the user's own edits: theirs stays, ours goes beside it
            newer = copy.with_name(f"{copy.stem}.new.ipynb")
            if not newer.exists() or _sources_digest(newer.read_text(encoding="utf-8")) != written_digest:
                write_private(newer, text)
            outcomes.append(CopyOutcome(name, "side by side", newer))
            continue
        state[name] = {"bundled": bundled_digest, "sources": written_digest}
    write_private(state_file, json.dumps(state, indent=1, sort_keys=True) + "\n")
    return outcomes


def write_lab_settings(settings_dir: Path) -> None:
    """:data:`LAB_SETTINGS` into Lab's user settings, each file only when missing."""
    for relative, values in LAB_SETTINGS.items():
        path = settings_dir / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=1) + "\n", encoding="utf-8")


# -- the server --------------------------------------------------------------------------------------

def lab_argv(options: LabOptions) -> list[str]:
    """JupyterLab's command-line configuration for ``options`` (port and token already chosen)."""
    argv = [f"--ServerApp.root_dir={options.root}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={options.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={options.token}",
            f"--ServerApp.open_browser={options.open_browser}", "--KernelManager.transport=ipc",
            f"--LabApp.user_settings_dir={options.settings_dir}", f"--LabApp.workspaces_dir={options.workspaces_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv


def run_lab(*, port: int = 0, open_browser: bool = True, home: Path | None = None) -> int:
    """Prepare the working copy and Lab's settings, print the URL, and serve until Ctrl-C."""
    from importlib.util import find_spec

    from anonlib.constellation.processes import free_port
    from anonlib.errors import ConfigError
    from anonlib.settings import anonlib_home

    if find_spec("jupyterlab") is None or find_spec("ipywidgets") is None:
        raise ConfigError("JupyterLab is not installed: install anonlib's notebooks extra "
                          "(pip install 'anonlib[notebooks]', or env/setup)")
    from anonlib.ui.audit_panel import LAB_ROOT_ENV

    home = home or anonlib_home()
    root = home / NOTEBOOKS_FOLDER
    for outcome in prepare_working_copy(root):
        if outcome.action != "current":
            print(outcome.line())
    lab_dir = home / "lab"
    options = LabOptions(root=root, settings_dir=lab_dir / "user-settings", workspaces_dir=lab_dir / "workspaces",
                         port=port or free_port(0, set()), token=secrets.token_urlsafe(24), open_browser=open_browser)
    write_lab_settings(options.settings_dir)
    os.environ[LAB_ROOT_ENV] = str(root)  # the kernels' audit panel links reports Lab can open
    print(f"notebooks: {root} (your working copy; the bundled ones stay untouched)")
    print(f"JupyterLab: http://127.0.0.1:{options.port}/lab?token={options.token}", flush=True)
    print("Ctrl-C stops it.", flush=True)
    from jupyterlab.labapp import LabApp

    server = LabApp.initialize_server(argv=lab_argv(options))
    # One Ctrl-C stops Lab and shuts its kernels down (Jupyter asks to confirm on a terminal,
    # and without one leaves its kernels to notice their parent is gone).
    signal.signal(signal.SIGINT, lambda _sig, _frame: server.stop(from_signal=True))
    server.start()
    sys.stdout.flush()
    return 0
