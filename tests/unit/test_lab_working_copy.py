"""``anonlib lab``'s working copy and settings, without starting Lab: every bundled notebook is
copied when missing (relative parameter defaults made absolute, so they still reach the
checkout's example data), an unchanged copy follows a newer bundled version, a copy the user
edited is never overwritten (the newer version goes beside it), and the bundled notebooks are
never written. Lab's command line: ipc kernels, loopback only, the token, --allow-root as root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from anonlib import lab
from anonlib.notebooks import notebooks_dir


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


def _parameters(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return str(cell.source)


def test_every_bundled_notebook_is_copied_with_absolute_defaults(tmp_path: Path) -> None:
    before = _digests(notebooks_dir())
    outcomes = lab.prepare_working_copy(tmp_path / "notebooks")
    assert {o.name for o in outcomes} == set(before) and {o.action for o in outcomes} == {"created"}
    audit = tmp_path / "notebooks" / "04_audit.ipynb"
    nbformat.validate(nbformat.read(audit, as_version=4))
    example = (notebooks_dir().parent / "example").resolve()
    parameters = _parameters(audit)
    assert f'source: str = "{example / "output"}"' in parameters
    store = example / "home" / "lookup.sqlite3"  # after env/setup; else the store of $ANONLIB_HOME (below)
    if store.parent.is_dir():
        assert f'db_url: str = "sqlite:///{store}"' in parameters
    assert 'profile: str = ""' in parameters and "../example" not in parameters
    assert _digests(notebooks_dir()) == before  # the checkout's notebooks are never written
    again = lab.prepare_working_copy(tmp_path / "notebooks")
    assert {o.action for o in again} == {"current"}


def test_without_example_data_the_store_default_is_the_users_own(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout where no example was generated: the example's folders are missing, so the
    copy's db_url is the store of $ANONLIB_HOME and its output a folder there (anonymizing one's
    own folder works at once, nothing is created in the checkout); the source still names the
    example's path. With the example's folders there, the copy keeps them."""
    bundled = tmp_path / "checkout" / "notebooks"
    bundled.mkdir(parents=True)
    shutil.copy(notebooks_dir() / "03_anonymize.ipynb", bundled)
    monkeypatch.setenv("ANONLIB_HOME", str(tmp_path / "home"))
    lab.prepare_working_copy(tmp_path / "copy", [bundled / "03_anonymize.ipynb"])
    parameters = _parameters(tmp_path / "copy" / "03_anonymize.ipynb")
    assert f'db_url: str = "sqlite:///{tmp_path / "home" / "lookup.sqlite3"}"' in parameters
    assert f'output: str = "{tmp_path / "home" / "output-notebook"}"' in parameters
    assert f'source: str = "{tmp_path / "checkout" / "example" / "input"}"' in parameters
    (tmp_path / "checkout" / "example" / "home").mkdir(parents=True)
    lab.prepare_working_copy(tmp_path / "again", [bundled / "03_anonymize.ipynb"])
    example = tmp_path / "checkout" / "example"
    parameters = _parameters(tmp_path / "again" / "03_anonymize.ipynb")
    assert f'db_url: str = "sqlite:///{example / "home" / "lookup.sqlite3"}"' in parameters
    assert f'output: str = "{example / "output-notebook"}"' in parameters


def test_a_new_bundled_version_updates_an_untouched_copy_and_sits_beside_an_edited_one(tmp_path: Path) -> None:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for name in ("01_browse.ipynb", "04_audit.ipynb"):
        shutil.copy(notebooks_dir() / name, bundled / name)
    copy = tmp_path / "copy"
    lab.prepare_working_copy(copy, sorted(bundled.glob("*.ipynb")))
    # the user runs browse (outputs only) and edits audit's code
    browse = nbformat.read(copy / "01_browse.ipynb", as_version=4)
    browse.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nbformat.write(browse, copy / "01_browse.ipynb")
    audit = nbformat.read(copy / "04_audit.ipynb", as_version=4)
    audit.cells[1].source += "\nmy_own = 1"
    nbformat.write(audit, copy / "04_audit.ipynb")
    edited = (copy / "04_audit.ipynb").read_bytes()
    for name in ("01_browse.ipynb", "04_audit.ipynb"):  # anonlib ships newer versions
        nb = nbformat.read(bundled / name, as_version=4)
        nb.cells[0].source += "\n\nNewer."
        nbformat.write(nb, bundled / name)
    outcomes = {o.name: o for o in lab.prepare_working_copy(copy, sorted(bundled.glob("*.ipynb")))}
    assert outcomes["01_browse.ipynb"].action == "updated"
    assert "Newer." in nbformat.read(copy / "01_browse.ipynb", as_version=4).cells[0].source
    assert outcomes["04_audit.ipynb"].action == "side by side"
    assert (copy / "04_audit.ipynb").read_bytes() == edited  # never overwritten
    newer = copy / "04_audit.new.ipynb"
    assert outcomes["04_audit.ipynb"].path == newer and "Newer." in newer.read_text()
    assert "04_audit.new.ipynb" in outcomes["04_audit.ipynb"].line()
    # next start: the edited copy still stays, nothing else changes
    again = {o.name: o.action for o in lab.prepare_working_copy(copy, sorted(bundled.glob("*.ipynb")))}
    assert again == {"01_browse.ipynb": "current", "04_audit.ipynb": "side by side"}
    assert (copy / "04_audit.ipynb").read_bytes() == edited


def test_lab_settings_are_written_once(tmp_path: Path) -> None:
    lab.write_lab_settings(tmp_path)
    [path] = list(tmp_path.rglob("*.jupyterlab-settings"))
    assert json.loads(path.read_text())["fetchNews"] == "false"
    path.write_text('{"fetchNews": "true"}')  # the user's choice stays
    lab.write_lab_settings(tmp_path)
    assert json.loads(path.read_text())["fetchNews"] == "true"


@pytest.mark.parametrize("euid", [0, 1000])
def test_lab_command_line(euid: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    options = lab.LabOptions(root=tmp_path, settings_dir=tmp_path / "s", workspaces_dir=tmp_path / "w", port=4321,
                             token="tok", open_browser=False)
    argv = lab.lab_argv(options)
    assert "--KernelManager.transport=ipc" in argv and "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.port=4321" in argv and "--IdentityProvider.token=tok" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv and "--ServerApp.open_browser=False" in argv
    assert ("--allow-root" in argv) is (euid == 0)
