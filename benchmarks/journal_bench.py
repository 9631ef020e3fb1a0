"""Scenario 4: journal state changes per second, with group commit, on a real file.

``concurrency`` tasks share the jobs of a freshly ingested journal (``synchronous=FULL``,
the default); each takes a job and walks it through a whole life, one committed
``transition`` at a time: claim, created (with an ARN), running, succeeded. Concurrent
changes share commits (group commit); the figure is committed changes per second.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncjobs.journal import open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import Job

from . import specs
from .report import entry

TARGET = {"changes_per_s": (">=", 10_000)}
LIFE = (Event.CLAIM, Event.CREATED, Event.OBSERVE_RUNNING, Event.OBSERVE_SUCCEEDED)


async def run(jobs: int, concurrency: int = 256) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        journal = await open_journal(Path(tmp) / "journal.db", campaign="bench")
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
        "durability": "full",
    }
    return [entry("journal", "sqlite_group_commit", figures, TARGET)]
