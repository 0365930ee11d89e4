"""Optional modules that pydicom imports eagerly, loaded only when first used (start-up cost).

``import pydicom`` (3.0) imports numpy, Pillow, pylibjpeg and the other pixel codecs, requests,
tqdm and urllib.request for its pixel handlers and its test-data downloader, and registers every
pixel decoder and encoder plugin (importing each plugin module and asking whether its codec is
installed) — about two thirds of its import time — though a run that never decodes a pixel
touches none of them. :func:`deferred` makes those imports lazy while pydicom loads:

- each module of ``names`` is created (its ``__spec__``, ``__path__``, ``__file__`` are real)
  but its code runs only when an attribute it lacks is first read (a module ``__getattr__``,
  PEP 562; unlike :class:`importlib.util.LazyLoader`, a second ``import numpy`` does not load
  it), or when a submodule of it is imported (so a package's ``__init__`` always runs first);
- pydicom's pixel plugin registries (``pydicom.pixels.common.CoderBase``) record the plugins
  added while pydicom loads and register them (import the plugin, ``is_available()``) the first
  time a registry is asked for its plugins;
- ``pydicom._version`` reads pydicom's version from its ``METADATA`` file beside the package
  instead of importing :mod:`importlib.metadata` (the same string; a unit test compares them).

A de-identification run that never decodes pixels never pays for them, and one that does pays
on first use. Only the command line uses it, in one thread, before any other thread starts;
:func:`settle` loads what is still deferred, and is called before a background thread may touch
those modules (first use is not thread-safe).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["OPTIONAL", "deferred", "is_deferred", "settle"]

_HANDLERS = ("numpy", "rle", "pillow", "jpeg_ls", "gdcm", "pylibjpeg")

#: What pydicom imports at start-up and a header-only run never uses.
OPTIONAL: tuple[str, ...] = (
    "numpy", "PIL", "PIL.ImageCms", "requests", "tqdm", "urllib.request",
    "pylibjpeg", "openjpeg", "libjpeg", "rle", "jpeg_ls", "gdcm",
    *(f"pydicom.pixel_data_handlers.{name}_handler" for name in _HANDLERS),
)

_REGISTRY_MODULE = "pydicom.pixels.common"
_VERSION_MODULE = "pydicom._version"

#: name -> (module, its real loader, the __getattr__ hook installed)
_pending: dict[str, tuple[ModuleType, importlib.abc.Loader, Callable[[str], Any]]] = {}
#: pixel plugin registries with plugins not yet registered
_registries: list[Any] = []
_importing = False


def is_deferred(name: str) -> bool:
    """True while ``name`` was created by :func:`deferred` and its code has not run yet."""
    return name in _pending


def _load(name: str) -> None:
    entry = _pending.pop(name, None)
    if entry is None:
        return
    module, real, hook = entry
    if module.__dict__.get("__getattr__") is hook:
        del module.__dict__["__getattr__"]
    _restore_loader(module, real)
    try:
        real.exec_module(module)
    except BaseException:
        # a broken optional package (its import raises): leave no half-run module behind, so
        # the next import raises the same error instead of an AttributeError on a stub
        sys.modules.pop(name, None)
        raise


def _restore_loader(module: ModuleType, real: importlib.abc.Loader) -> None:
    """The module's spec and ``__loader__`` name its real loader again (as a plain import would)."""
    if module.__spec__ is not None:
        module.__spec__.loader = real
    module.__loader__ = real


class _Wrapping(importlib.abc.Loader):
    """A loader around the module's real one: the module is created by the real loader."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)


class _OnFirstUse(_Wrapping):
    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__

        def __getattr__(attr: str) -> Any:  # noqa: N807 - the module hook of PEP 562
            _load(name)
            return getattr(module, attr)

        module.__dict__["__getattr__"] = __getattr__
        _pending[name] = (module, self.real, __getattr__)


class _ThenPatch(_Wrapping):
    """Runs pydicom.pixels.common, then makes its plugin registries record plugins for later."""

    def exec_module(self, module: ModuleType) -> None:
        _restore_loader(module, self.real)
        self.real.exec_module(module)
        _defer_plugins(module.CoderBase)


def _register_later(registry: Any) -> None:
    later = registry.__dict__.pop("_later", None)
    if later:
        for label, import_path in later:
            _register(registry, label, import_path)


def _register(registry: Any, label: str, import_path: tuple[str, str]) -> None:
    type(registry)._anonlib_add_plugin(registry, label, import_path)


def _defer_plugins(base: type) -> None:
    """``CoderBase.add_plugin`` records while pydicom loads; ``_available``/``_unavailable`` (the
    only state its methods read) register what was recorded on first read."""
    if "_anonlib_add_plugin" in base.__dict__:
        return
    original = base.__dict__["add_plugin"]

    def add_plugin(self: Any, label: str, import_path: tuple[str, str]) -> None:
        if not _importing:
            _register_later(self)
            original(self, label, import_path)
            return
        if not self.__dict__.get("_later"):
            _registries.append(self)
        self.__dict__.setdefault("_later", []).append((label, import_path))

    def state(key: str) -> property:
        def get(self: Any) -> Any:
            later = self.__dict__.get("_later")
            if later and _importing and key == "_available":
                # pydicom's own import builds docstrings from the plugins' labels only
                return {**self.__dict__[key], **dict.fromkeys(label for label, _ in later)}
            if later and not _importing:
                _register_later(self)
            return self.__dict__[key]

        def set_(self: Any, value: Any) -> None:
            self.__dict__[key] = value

        return property(get, set_)

    base._anonlib_add_plugin = original  # type: ignore[attr-defined]
    base.add_plugin = add_plugin  # type: ignore[attr-defined]
    base._available = state("_available")  # type: ignore[attr-defined]
    base._unavailable = state("_unavailable")  # type: ignore[attr-defined]


def _installed_version(spec: importlib.machinery.ModuleSpec) -> str | None:
    """pydicom's version from the ``pydicom-*.dist-info`` beside the package, or None."""
    if not spec.origin:
        return None
    site = Path(spec.origin).parent.parent
    found = sorted(site.glob("pydicom-*.dist-info/METADATA"))
    if len(found) != 1:
        return None
    try:
        header = found[0].read_text("utf-8").split("\n\n", 1)[0].splitlines()
    except OSError:
        return None
    names = [line[6:].strip() for line in header if line.startswith("Name: ")]
    versions = [line[9:].strip() for line in header if line.startswith("Version: ")]
    if names != ["pydicom"] or len(versions) != 1 or not versions[0]:
        return None
    return versions[0]


class _VersionWithoutMetadata(importlib.abc.Loader):
    """Runs ``pydicom._version`` with ``importlib.metadata.version("pydicom")`` answered from
    pydicom's own METADATA file: importing :mod:`importlib.metadata` (email, zipfile, csv,
    inspect...) and scanning ``sys.path`` cost more than the rest of pydicom's header code."""

    def __init__(self, real: importlib.abc.Loader, version: str) -> None:
        self.real, self.version = real, version

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self.real
        module.__loader__ = self.real
        known = self.version

        def version(distribution_name: str) -> str:
            if distribution_name == "pydicom":
                return known
            sys.modules.pop("importlib.metadata", None)
            import importlib.metadata

            return importlib.metadata.version(distribution_name)

        stand_in = ModuleType("importlib.metadata")
        stand_in.version = version  # type: ignore[attr-defined]
        before = sys.modules.get("importlib.metadata")
        sys.modules["importlib.metadata"] = stand_in
        try:
            self.real.exec_module(module)
        finally:
            if sys.modules.get("importlib.metadata") is stand_in:
                if before is None:
                    del sys.modules["importlib.metadata"]
                else:
                    sys.modules["importlib.metadata"] = before


class _LazyFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        parent = fullname.rpartition(".")[0]
        while parent:  # a submodule of a deferred package: the package's own code runs first
            _load(parent)
            parent = parent.rpartition(".")[0]
        if fullname not in self.names and fullname not in (_REGISTRY_MODULE, _VERSION_MODULE):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            if fullname == _VERSION_MODULE:
                if "importlib.metadata" not in sys.modules and (version := _installed_version(spec)):
                    spec.loader = _VersionWithoutMetadata(spec.loader, version)
            elif fullname == _REGISTRY_MODULE:
                spec.loader = _ThenPatch(spec.loader)
            else:
                spec.loader = _OnFirstUse(spec.loader)
            return spec
        return None


_finder: _LazyFinder | None = None


@contextmanager
def deferred(names: Sequence[str] = OPTIONAL) -> Iterator[None]:
    """Within the block, the first import of each of ``names`` is lazy (module docstring).

    The finder stays installed after the block while modules are still deferred: importing a
    submodule of one loads it first."""
    global _finder, _importing
    if _finder is not None:
        sys.meta_path.remove(_finder)
    _finder = _LazyFinder(names)
    sys.meta_path.insert(0, _finder)
    _importing = True
    try:
        yield
    finally:
        _importing = False


def settle() -> None:
    """Load every module still deferred and register every recorded plugin (before threads)."""
    global _finder
    while _pending:
        _load(next(iter(_pending)))
    while _registries:
        _register_later(_registries.pop())
    if _finder is not None and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    _finder = None
