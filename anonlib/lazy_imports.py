"""Optional modules that pydicom imports eagerly, loaded only when first used (start-up cost).

``import pydicom`` (3.0) imports numpy, Pillow, requests, tqdm and urllib.request for its pixel
handlers and its test-data downloader — about half of its import time — though a run that
never decodes a pixel touches none of them. :func:`deferred` makes those imports lazy while
pydicom loads (:class:`importlib.util.LazyLoader`: the module object exists, its code runs on
the first attribute access), so a de-identification run that never decodes pixels never pays
for them, and one that does pays on first use. Only the command line uses it, in one thread,
before any other thread starts; :func:`settle` loads what is still deferred, and is called
before a background thread may touch those modules (Python 3.11's lazy loading is not
thread-safe).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

__all__ = ["OPTIONAL", "deferred", "settle"]

#: What pydicom imports at start-up and a header-only run never uses.
OPTIONAL: tuple[str, ...] = ("numpy", "PIL", "PIL.ImageCms", "requests", "tqdm", "urllib.request")

_deferred: list[str] = []


class _LazyFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return spec
                spec.loader = importlib.util.LazyLoader(spec.loader)
                _deferred.append(fullname)
                return spec
        return None


@contextmanager
def deferred(names: Sequence[str] = OPTIONAL) -> Iterator[None]:
    """Within the block, the first import of each of ``names`` is lazy (module docstring)."""
    finder = _LazyFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def settle() -> None:
    """Load every module still deferred (before threads may use them)."""
    while _deferred:
        module = sys.modules.get(_deferred.pop())
        if module is not None:
            getattr(module, "__name__", None)  # noqa: B009 - any attribute access loads it
            getattr(module, "__dict__", None)
