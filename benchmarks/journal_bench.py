"""Scenario 4: journal state changes per second, with group commit, on a real file and on a
real PostgreSQL server.

``concurrency`` tasks share the jobs of a freshly ingested journal; each takes a job and walks
it through a whole life, one committed ``transition`` at a time: claim, created (with an ARN),
running, succeeded. Concurrent changes share commits (group commit); the figure is committed
changes per second. SQLite runs with ``synchronous=FULL`` (the default); PostgreSQL is a local
server started by pgserver (default settings: ``fsync`` and ``synchronous_commit`` on), reached
over its Unix socket, or the server ``$ASYNCJOBS_BENCH_POSTGRES`` names.

``python -m benchmarks.journal_bench [--jobs N] [--backend sqlite|postgres]`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from asyncjobs.journal import Journal, open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import Job

from . import specs
from .report import entry

TARGET = {"changes_per_s": (">=", 10_000)}
LIFE = (Event.CLAIM, Event.CREATED, Event.OBSERVE_RUNNING, Event.OBSERVE_SUCCEEDED)


BACKENDS = ("sqlite", "postgres")


async def run(jobs: int, concurrency: int = 256, backends: Sequence[str] = BACKENDS) -> list[dict[str, Any]]:
    results = []
    for backend in backends:
        with _location(backend) as where:
            results.append(await _measure(backend, where, jobs, concurrency))
    return results


@contextlib.contextmanager
def _location(backend: str) -> Iterator[str]:
    """Where a fresh journal of ``backend`` goes: a file, or a database on a PostgreSQL server."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
            yield str(Path(tmp) / "journal.db")
        return
    given = os.environ.get("ASYNCJOBS_BENCH_POSTGRES")
    if given:
        yield given
        return
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver  # a dev dependency: PostgreSQL binaries from PyPI

    parent = Path(tempfile.mkdtemp(prefix="bench-journal-pg-"))
    try:
        server = pgserver.get_server(parent / "data", cleanup_mode="delete")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


async def _measure(backend: str, where: str, jobs: int, concurrency: int) -> dict[str, Any]:
    campaign = f"bench-{time.time_ns()}"  # a server named by the environment may hold earlier runs
    journal: Journal = await open_journal(where, campaign=campaign)
    try:
        await journal.add_specs(specs.iter_job_specs(jobs))
        queue: list[Job] = [job async for job in journal.jobs()]
        queue.reverse()

        async def worker() -> int:
            changes = 0
            while queue:
                job = queue.pop()
                for event in LIFE:
                    fields: dict[str, Any] = {}
                    if event is Event.CREATED:
                        fields = {"arn": f"arn:aws:bench:{job.id}", "submitted_at": time.time()}
                    job = await journal.transition(job, event, **fields)
                    changes += 1
            return changes

        started = time.perf_counter()
        changes = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
        seconds = time.perf_counter() - started
        await journal.refresh()
        done = journal.counts()
    finally:
        await journal.aclose()
    if done.total != jobs or not done.done:
        raise RuntimeError(f"journal benchmark left jobs unfinished: {done.as_dict()}")
    figures = {
        "jobs": jobs,
        "changes": changes,
        "seconds": round(seconds, 3),
        "changes_per_s": round(changes / seconds, 1),
        "concurrency": concurrency,
        "durability": "full" if backend == "sqlite" else "fsync, synchronous_commit=on",
    }
    contender = "sqlite_group_commit" if backend == "sqlite" else "postgres_group_commit"
    return entry("journal", contender, figures, TARGET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    args = parser.parse_args()
    results = asyncio.run(run(args.jobs, args.concurrency, args.backend or BACKENDS))
    for result in results:
        print(json.dumps({k: v for k, v in result.items() if k not in ("target", "missed")}))


if __name__ == "__main__":
    main()
