"""``anonlib jobs list | retry | wait``: parse nothing, print PHI-free lines, pick the exit status.

``wait`` exits 0 when everything that arrived is delivered, 1 on timeout or failed jobs, and
:data:`~anonlib.jobs.held.HELD_EXIT` (5) when everything settled but the audit gate holds
studies; ``list --status held`` shows them with the reason and ``retry --held`` re-runs them.
Studies delivered without some instances are counted (exit status unchanged) and listed with
every rejected instance by ``list --status partial`` (:mod:`anonlib.jobs.partial`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from anonlib.errors import ConfigError

if TYPE_CHECKING:
    from anonlib.jobs.commands import Session

__all__ = ["run_jobs_command"]


def run_jobs_command(args: argparse.Namespace) -> int:
    """Run ``anonlib jobs list|retry|wait`` with the parsed ``args``; the exit status."""
    from anonlib.jobs import status as queue_status
    from anonlib.jobs.commands import describe_job, session
    from anonlib.jobs.held import HELD_EXIT, describe_held, held_hint, held_studies
    from anonlib.jobs.partial import describe_partial, partial_hint, partial_studies
    from anonlib.jobs.resume import NodeWatch
    from anonlib.jobs.runtime import load_info

    with session(load_info()) as current:
        if args.action == "list":
            if args.status == "held":
                held = held_studies(current.db)
                for study in held[:args.limit]:
                    print(describe_held(study))
                print(held_hint(len(held)) if held else "no study held")
                return 0
            if args.status == "partial":
                partial = partial_studies(current.db)
                for one in partial[:args.limit]:
                    print("\n".join(describe_partial(one)))
                print(partial_hint(len(partial)) if partial else "no study delivered partially")
                return 0
            for job in current.db.jobs(status=args.status, limit=args.limit):
                print(describe_job(job))
            counts = current.db.counts()
            print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs")
            held_now, partial_now = len(current.db.held()), len(current.db.partial())
            if held_now:
                print(held_hint(held_now))
            if partial_now:
                print(partial_hint(partial_now))
            return 0
        if args.action == "retry":
            return _retry(args, current)
        watch = NodeWatch(getattr(current.info, "nodes", None) or {})
        ok, state = queue_status.wait(current.db, current.sources, timeout=args.timeout, poll=args.poll,
                                      down=lambda: watch.poll()[1])
    if state.partial:
        print(partial_hint(len(state.partial)), file=sys.stderr)
    if ok and not state.held:
        print(f"done: {sum(state.counts.values())} jobs, nothing pending"
              + (f", {len(state.partial)} delivered partially" if state.partial else ""))
        return 0
    if ok:
        print(f"done: {sum(state.counts.values())} jobs, nothing pending, but {len(state.held)} held")
        print(held_hint(len(state.held)), file=sys.stderr)
        return HELD_EXIT
    for job in state.failures:
        print("failed: " + describe_job(job), file=sys.stderr)
    if state.held:
        print(held_hint(len(state.held)), file=sys.stderr)
    if not state.settled:
        print(f"timeout after {args.timeout:g} s: {state.active} jobs queued or running, "
              f"{len(state.unstable)} studies not yet stable, {len(state.undelivered)} stable studies "
              f"not delivered, {len(state.resuming)} failed jobs to be resumed once their nodes answer",
              file=sys.stderr)
        for study_id in state.undelivered[:20]:
            print(f"not delivered: {study_id}", file=sys.stderr)
    return 1


def _retry(args: argparse.Namespace, current: Session) -> int:
    from anonlib.jobs import status as queue_status
    from anonlib.jobs.held import retry_held

    if args.held:
        done = retry_held(current.db, current.queue, current.sources)
        for study, again in done:
            if again is None:
                print(f"held study {study.study_id} of {study.node}: gone, or not on a source node", file=sys.stderr)
            else:
                print(f"held study {study.study_id}: {'queued as' if again.created else 'already queued in'} "
                      f"job {again.job_id} (forced)")
        print(f"{sum(a is not None for _, a in done)} of {len(done)} held studies queued again")
        return 0 if all(a is not None for _, a in done) else 1
    if args.failed:
        ids = [j.id for j in current.db.jobs(outstanding_failures=True, limit=None)]
    elif args.job_id is not None:
        ids = [args.job_id]
    else:
        raise ConfigError("jobs retry needs a job id, --failed or --held")
    retried = 0
    for job_id in ids:
        again = queue_status.retry_job(current.db, current.queue, current.sources, job_id)
        if again is None:
            print(f"job {job_id}: not a failed study job, or its study is gone", file=sys.stderr)
        else:
            retried += 1
            print(f"job {job_id}: {'retried as' if again.created else 'already queued in'} job {again.job_id}")
    return 0 if retried == len(ids) else 1
