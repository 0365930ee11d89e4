"""Spreading the audit's per-instance work over the cores: worker processes forked from the
auditing process, each running a function on a range of instance indexes, the results handed
back range by range in order (so the report is the same as one process would make).

Workers are forked (POSIX), so the function and everything it reads — the inputs, the
originals already read — are inherited, never pickled; only results travel back. A range
whose worker raised, or died, is handed back as the error instead of its results: the caller
makes the audit INCOMPLETE for it (fail closed). Where fork is not the default (anywhere but
Linux), or the set is too small to gain from it, :func:`workers_for` says 1 and the caller
stays in its process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Generic, TypeVar

__all__ = ["MIN_PER_WORKER", "Chunk", "available_cores", "ordered_map", "workers_for"]

T = TypeVar("T")

#: Fewer instances than this per worker and a pool costs more than it saves (forking and
#: handing results back cost about as much as auditing a few dozen instances).
MIN_PER_WORKER = 48
_CHUNKS_PER_WORKER = 8  # small enough ranges for the workers to finish together
_MAX_CHUNK = 64
_AHEAD = 3  # ranges queued per worker

_function: Callable[[int], object] | None = None  # the worker's function (set in the worker)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_for(count: int, requested: int | None = None) -> int:
    """How many processes should audit ``count`` instances: ``requested`` when given (1: this
    process), else one per core with at least :data:`MIN_PER_WORKER` instances each; 1 where
    processes are not forked by default (anywhere but Linux)."""
    if not sys.platform.startswith("linux"):  # fork is safe and the default only there (macOS: spawn)
        return 1
    if requested is not None:
        return max(1, min(requested, count))
    return max(1, min(available_cores(), count // MIN_PER_WORKER))


class Chunk(Generic[T]):
    """One range of indexes and its results, or the error that stopped them."""

    def __init__(self, indexes: range, results: list[T] | None, error: BaseException | None) -> None:
        self.indexes, self.results, self.error = indexes, results, error


def _install(function: Callable[[int], object]) -> None:
    global _function
    _function = function


def _run(start: int, stop: int) -> list[object]:
    assert _function is not None
    return [_function(index) for index in range(start, stop)]


def ordered_map(function: Callable[[int], T], count: int, workers: int) -> Iterator[Chunk[T]]:
    """``function(i)`` for ``i`` in ``range(count)`` in ``workers`` forked processes, handed
    back in order as :class:`Chunk`\\ s (see the module docstring). Leaving the iteration early
    cancels what has not started."""
    size = max(1, min(_MAX_CHUNK, count // (workers * _CHUNKS_PER_WORKER) or 1))
    ranges = [range(start, min(start + size, count)) for start in range(0, count, size)]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_install, initargs=(function,))
    try:
        # A few ranges ahead per worker, not all: results handed back wait for the caller, and
        # holding them all would make the caller's memory grow with the size of the set.
        pending: deque[tuple[range, Future[list[object]]]] = deque()
        queued = iter(ranges)

        def submit(indexes: range) -> None:
            try:
                future = pool.submit(_run, indexes.start, indexes.stop)
            except Exception as exc:  # noqa: BLE001 - the pool is broken: so is every range left
                future = Future()
                future.set_exception(exc)
            pending.append((indexes, future))

        for indexes in islice(queued, workers * _AHEAD):
            submit(indexes)
        while pending:
            indexes, future = pending.popleft()
            try:
                chunk: Chunk[T] = Chunk(indexes, future.result(), None)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a worker raised or died: the caller fails closed
                chunk = Chunk(indexes, None, exc)
            del future
            for following in islice(queued, 1):
                submit(following)
            yield chunk
            del chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
