"""What the emulator shows of itself: its counters and every job, for tests, benchmarks and people.

The JSON of ``GET /_emulator/stats`` (:meth:`Emulator.stats <asyncjobs.emulator.server.Emulator.stats>`;
the keys are :mod:`.stats`') and of ``GET /_emulator/jobs`` (:meth:`Emulator.jobs
<asyncjobs.emulator.server.Emulator.jobs>`). Apart from the state because no API operation reads it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .jobs import KINDS
from .state import EmulatorState


def stats_snapshot(state: EmulatorState) -> dict[str, Any]:
    return state.stats.snapshot(state.running_all(), _jobs_by_status(state))


def job_records(state: EmulatorState) -> list[dict[str, Any]]:
    now = state.now()
    return [
        {
            "kind": job.kind,
            "jobName": job.name,
            "arn": job.arn,
            "id": job.job_id,
            "region": job.region,
            "quota_key": job.quota_key,
            "status": job.status_at(now),
            "submit_time": job.submit_time,
            "start_time": job.start_time_at(now),
            "end_time": job.end_time_at(now),
            "client_request_token": job.token,
            "tags": dict(job.tags),
            # the S3 keys of the outputs written so far; None for a job that touches no S3
            "outputs": None if job.plan is None else list(job.plan.written),
        }
        for job in state.jobs()
    ]


def _jobs_by_status(state: EmulatorState) -> dict[str, dict[str, int]]:
    now = state.now()
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    for job in state.jobs():
        counts[job.kind][job.status_at(now)] += 1
    return {kind: dict(counter) for kind, counter in counts.items()}
