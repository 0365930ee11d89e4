"""The per-file fast paths of issue 12 change no output byte: what the folder run writes
through them is what the general paths write (the reader, the encoder, the unrecorded
changes), and a file a fast path does not take goes the general way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.data import get_charset_files, get_testdata_files

from anonlib.dicomio import encode as encoder
from anonlib.dicomio import files, header
from anonlib.dicomio.limits import Limits
from anonlib.errors import AnonlibError
from anonlib.pipeline import InstanceProcessor
from anonlib.profile import SiteProfile, build_plan
from anonlib.profile.burned_in import BurnedInPolicy
from anonlib.sinks.folder import FolderSink
from anonlib.store.memory import MemoryStore

pytestmark = pytest.mark.filterwarnings("ignore")

PYDICOM_FILES = sorted(Path(p) for p in get_testdata_files() + get_charset_files() if os.path.isfile(p))


def _outputs(tmp_path: Path, store: MemoryStore, paths: list[Path], *, changes: bool) -> dict[str, object]:
    plan = build_plan(SiteProfile(burned_in=BurnedInPolicy(mode="allow")))
    processor = InstanceProcessor(plan, store, FolderSink(tmp_path / "o"), FolderSink(tmp_path / "q"))
    out: dict[str, object] = {}
    for path in paths:
        try:
            outcome, data, _ = processor.deidentify_file(path, path.name, changes=changes)
            out[path.name] = (data, outcome.quarantine, outcome.keys, len(outcome.changes) > 0)
        except AnonlibError as exc:
            out[path.name] = str(exc)
    return out


def test_pydicoms_files_give_the_same_bytes_through_the_general_paths(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()  # one secret, one pseudonym and date shift per patient for both
    fast = _outputs(tmp_path, store, PYDICOM_FILES, changes=False)
    with monkeypatch.context() as m:
        m.setattr(files, "read_fast", lambda *_, **__: None)  # every file read as before
        m.setattr(files, "element_bytes", lambda *_: None)  # every element by pydicom's writer
        m.setattr(files, "file_meta_bytes", lambda *_: None)
        slow = _outputs(tmp_path, store, PYDICOM_FILES, changes=True)
    assert fast.keys() == slow.keys()
    taken = 0
    for name, result in fast.items():
        other = slow[name]
        if isinstance(result, str):
            assert result == other, name  # rejected for the same reason
            continue
        taken += 1
        data, quarantine, keys, recorded = result
        assert not recorded  # changes=False: nothing recorded
        assert isinstance(other, tuple) and other[3]  # the general path records its changes
        assert (data, quarantine, keys) == other[:3], name
    assert taken >= 150


def test_a_file_the_reader_does_not_take_goes_the_general_way(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    implicit = next(p for p in PYDICOM_FILES if p.name == "MR_small_implicit.dcm")
    calls: list[str] = []
    real_parse = files._parse

    def parse(*args: object, **kwargs: object) -> object:
        calls.append("general")
        return real_parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "_parse", parse)
    assert header.read_fast(implicit.read_bytes(), Limits()) is None
    files.read_instance(implicit)
    assert calls == ["general"]
    calls.clear()
    explicit = next(p for p in PYDICOM_FILES if p.name == "CT_small.dcm")
    files.read_instance(explicit)
    assert calls == []  # taken by the one-pass reader
    assert encoder.element_bytes is files.element_bytes


def test_private_elements_left_out_of_the_read_change_nothing(tmp_path: Path) -> None:
    """With every private element removed and nothing recorded, the reader leaves out the
    private elements that are neither names nor sequences; a name in a private element is
    still scrubbed from the free text, as the general path does."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    block = ds.private_block(0x0019, "ACME 1.0", create=True)
    block.add_new(0x10, "PN", "Zebulon^Quixotic")
    block.add_new(0x11, "LO", "private text")
    ds.StudyDescription = "follow-up for Quixotic"  # cleaned (CLEAN_DESCRIPTORS): the name goes
    path = tmp_path / "in" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    full, lean = header.read_fast(data, Limits()), header.read_fast(data, Limits(), private=False)
    assert full is not None and lean is not None
    privates = [t for t in lean.dataset._dict if (t >> 16) & 1]
    # the name only: creators and other private elements left out
    assert [lean.dataset._dict[t].VR for t in privates] == ["PN"]
    assert sum((t >> 16) & 1 for t in full.dataset._dict) > 10
    assert {t for t in full.dataset._dict if not (t >> 16) & 1} == set(lean.dataset._dict) - set(privates)
    store = MemoryStore()
    fast = _outputs(tmp_path, store, [path], changes=False)["ct.dcm"]
    slow = _outputs(tmp_path, store, [path], changes=True)["ct.dcm"]
    assert isinstance(fast, tuple) and isinstance(slow, tuple)
    assert fast[0] == slow[0]
    assert b"Quixotic" not in fast[0] and b"ACME" not in fast[0]
