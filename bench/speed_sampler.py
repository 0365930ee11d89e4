"""A CPU-time sampling profiler for one whole ``anonlib`` process (``bench/speed.py --profile``).

    python bench/speed_sampler.py OUT.json [--interval-ms 1] -- deidentify SRC DST ...

Starts sampling before anything of anonlib is imported, runs ``anonlib.cli.main()`` with the
arguments after ``--`` and writes OUT.json: ``interpreter_cpu`` (CPU seconds the process had
used when sampling started: the interpreter's own start-up), ``stacks`` (each a list of
``"module:function"`` frames, outermost first), ``samples`` (``[stack index, CPU µs]`` in the
order taken), ``other_threads_cpu`` (CPU seconds of the threads other than the main one, until
sampling stopped) and ``dump_cpu`` (CPU seconds spent making this file's data after that).
Read by ``bench/speed_profile.py``.

How: ``setitimer(ITIMER_PROF)`` sends SIGPROF every ``interval`` of CPU time; the handler
records the Python stack it interrupted, weighted with the main thread's CPU time since the
previous sample (``time.thread_time``), so a long C call (a ``dlopen``, a ``write``) counts in
full for the Python frame that made it even though the signals it covered were merged into one
(the kernel's profiling timer ticks every few ms). The main thread only (a one-worker folder run
does its work there): other threads' CPU time, such as the OpenBLAS threads numpy starts, is
counted apart, in one sum. Standard library only: it runs on
a clean checkout and in CI, where py-spy's ``ptrace`` may be refused.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from types import CodeType, FrameType

__all__ = ["Sampler", "label", "main"]


def label(code: CodeType) -> str:
    """``module:qualname`` of a code object: the module from its file name (the part after
    ``site-packages/`` or ``pythonX.Y/``, else from the ``anonlib``/``bench`` folder on)."""
    name = code.co_filename
    if name.startswith("<"):
        module = name.strip("<>").removeprefix("frozen ")
    else:
        path = name.replace("\\", "/")
        for marker in ("/site-packages/", f"/python{sys.version_info[0]}.{sys.version_info[1]}/"):
            if marker in path:
                path = path.rsplit(marker, 1)[1]
                break
        else:
            for top in ("/anonlib/", "/bench/", "/tests/"):
                if top in path:
                    path = top[1:] + path.rsplit(top, 1)[1]
                    break
        module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return f"{module}:{code.co_qualname}"


class Sampler:
    """SIGPROF every ``interval`` s of CPU; each sample is (stack, CPU µs since the last one)."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.stacks: dict[tuple[CodeType, ...], int] = {}
        self.samples: list[tuple[int, int]] = []
        self.started = time.process_time()  # the interpreter's start: one thread so far
        self._last = time.thread_time()
        self.other_threads = 0.0

    def _take(self, _signum: int, frame: FrameType | None) -> None:
        now = time.thread_time()
        codes = []
        while frame is not None:
            codes.append(frame.f_code)
            frame = frame.f_back
        key = tuple(reversed(codes))
        index = self.stacks.setdefault(key, len(self.stacks))
        self.samples.append((index, round((now - self._last) * 1e6)))
        self._last = now

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._take)
        signal.siginterrupt(signal.SIGPROF, False)  # system calls restarted, not failed with EINTR
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        now = time.thread_time()
        self.other_threads = max(0.0, time.process_time() - now)  # the main thread's CPU is ``now``
        if now > self._last:  # the tail after the last signal
            self.samples.append((self.stacks.setdefault((), len(self.stacks)), round((now - self._last) * 1e6)))

    def result(self) -> dict[str, object]:
        """The samples as JSON data; ``dump_cpu``: the CPU seconds this took (labelling the
        frames: not part of the profiled command)."""
        began = time.process_time()
        names: dict[CodeType, str] = {}
        stacks = [[names[code] if code in names else names.setdefault(code, label(code)) for code in key]
                  for key in sorted(self.stacks, key=self.stacks.__getitem__)]
        return {"interpreter_cpu": self.started, "stacks": stacks, "samples": self.samples,
                "other_threads_cpu": self.other_threads, "dump_cpu": time.process_time() - began}


def main(argv: list[str]) -> int:
    if "--" not in argv or not argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    out, options, command = argv[0], argv[1:split], argv[split + 1:]
    interval = float(options[options.index("--interval-ms") + 1]) / 1000 if "--interval-ms" in options else 0.001
    sampler = Sampler(interval)
    sampler.start()
    code: int = 0
    try:
        sys.argv = ["anonlib", *command]
        from anonlib.cli import main as anonlib_main

        returned = anonlib_main()
        code = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sampler.stop()
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(sampler.result(), handle)
    return code


if __name__ == "__main__":
    sys.path.pop(0)  # this folder (bench/) is not where anonlib is imported from
    sys.exit(main(sys.argv[1:]))
