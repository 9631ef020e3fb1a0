"""Scenario 1: a quota-bound campaign, asyncjobs against the baselines users would write.

The emulator limits creates to 2/s per service, Bedrock to 8 running jobs per model and
Personalize to 3 per job kind; jobs run 2-4 s (plus the emulator's Bedrock phases and
Personalize pending time). Each contender gets a fresh emulator with the same seed and
submits jobs of the same names, so the emulator draws the same durations for all.

Contenders:

- ``asyncjobs_given``: ``Settings(create_rate=2, max_running={"bedrock": 8, "personalize": 3})``;
- ``asyncjobs_discovered``: ``Settings()``: no rate ceiling, the AWS default caps (20, 5);
- ``asyncjobs_frugal``: the limits given, and status sweeps at least 2 s apart
  (``min_poll_interval=2``): the other end of the trade between read calls and makespan;
- ``baseline_standard`` / ``baseline_adaptive``: :mod:`benchmarks.baseline` with botocore's
  ``standard`` / ``adaptive`` retry mode, semaphores of 8 per model and 3 per job kind, and one
  status read per job every second.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from asyncjobs.journal import open_journal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings

from . import specs
from .baseline import run_baseline
from .emulator import EmulatorProcess, create_calls, create_throttles, emulator, read_calls, read_throttles
from .ideal import greedy_makespan, ideal_makespan, slot_turnaround
from .report import entry

CREATE_RATE = 2.0
SLOTS = {"bedrock": 8, "personalize": 3}
JOB_SECONDS = (2.0, 4.0)
SEED = 5
#: The baselines' status poll interval, seconds (about a third of a job's run time here).
BASELINE_POLL = 1.0

GIVEN_TARGET = {
    "makespan_ratio": ("<=", 1.05),
    "throttles_per_create": ("<=", 0.02),
    "reads_per_job": ("<=", 0.3),
    "duplicates": ("==", 0),
    "failed": ("==", 0),
}
DISCOVERED_TARGET = {
    "makespan_ratio": ("<=", 1.15),
    "reads_per_job": ("<=", 0.3),
    "duplicates": ("==", 0),
    "failed": ("==", 0),
}
#: The frugal contender's shortest gap between sweeps of one job kind (the default is 0.5 s).
FRUGAL_POLL = 2.0
CONTENDERS = (
    "asyncjobs_given",
    "asyncjobs_discovered",
    "asyncjobs_frugal",
    "baseline_standard",
    "baseline_adaptive",
)


def emulator_settings() -> dict[str, Any]:
    return {
        "seed": SEED,
        "create_rate": CREATE_RATE,
        "bedrock_max_running": SLOTS["bedrock"],
        "personalize_max_running": SLOTS["personalize"],
        "job_seconds": JOB_SECONDS,
    }


async def _run_asyncjobs(
    emu: EmulatorProcess, jobs: int, settings: Settings
) -> tuple[float, int, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        journal = await open_journal(Path(tmp) / "campaign.db", campaign="bench")
        try:
            campaign = Campaign(journal, endpoint_url=emu.url, region=specs.REGION, settings=settings)
            await campaign.add(specs.job_specs(jobs))
            started = time.perf_counter()
            summary = await campaign.run()
            makespan = time.perf_counter() - started
        finally:
            await journal.aclose()
    failed = jobs - summary.counts[JobState.SUCCEEDED]
    return makespan, failed, summary.to_dict()


async def run_contender(contender: str, jobs: int) -> dict[str, Any]:
    async with emulator(**emulator_settings()) as emu:
        detail: dict[str, Any] = {}
        if contender.startswith("asyncjobs"):
            settings = {
                "asyncjobs_given": Settings(create_rate=CREATE_RATE, max_running=SLOTS),
                "asyncjobs_discovered": Settings(),
                "asyncjobs_frugal": Settings(
                    create_rate=CREATE_RATE, max_running=SLOTS, min_poll_interval=FRUGAL_POLL
                ),
            }[contender]
            makespan, failed, summary = await _run_asyncjobs(emu, jobs, settings)
            detail["engine_counts"] = {k: v for k, v in summary["counts"].items() if v}
        else:
            mode = contender.removeprefix("baseline_")
            result = await run_baseline(
                emu.url, specs.requests(jobs), retry_mode=mode, slots=SLOTS, poll_interval=BASELINE_POLL
            )
            makespan, failed = result.makespan_s, result.failed
            detail["failure_reasons"] = dict(result.reasons)
        stats = await emu.stats()
        records = await emu.jobs()
    ideal = ideal_makespan(records, create_rate=CREATE_RATE, slots=SLOTS)
    # the same jobs for a greedy client that knew each end at once and for free, pacing as asyncjobs
    greedy = greedy_makespan(records, create_rate=CREATE_RATE, slots=SLOTS, burst=1)
    created = stats["jobs_total"]
    throttles = create_throttles(stats)
    rejections = stats["quota_rejections_total"]
    figures = {
        "jobs": jobs,
        "makespan_s": round(makespan, 2),
        "ideal_s": round(ideal.seconds, 2),
        "makespan_ratio": round(makespan / ideal.seconds, 3),
        "ideal_binding": ideal.binding,
        "greedy_instant_s": round(greedy, 2),
        "makespan_vs_greedy_instant": round(makespan / greedy, 3),
        "throttles_per_create": round((throttles + rejections) / max(1, created), 3),
        "create_throttles": throttles,
        "quota_rejections": rejections,
        "create_calls": create_calls(stats),
        "jobs_created": created,
        "reads_per_job": round(read_calls(stats) / jobs, 3),
        "read_calls": read_calls(stats),
        "read_throttles": read_throttles(stats),
        "duplicates": stats["duplicate_jobs"],
        "failed": failed,
        "peak_running": stats["peak_running"],
        "ideal_bounds": {name: round(seconds, 2) for name, seconds in ideal.bounds.items()},
        "slot_turnaround": slot_turnaround(records, slots=SLOTS),
        **detail,
    }
    target = {"asyncjobs_given": GIVEN_TARGET, "asyncjobs_discovered": DISCOVERED_TARGET}.get(contender)
    return entry("quota_bound", contender, figures, target)


async def run(jobs: int, only: str | None = None, *, quick: bool = False) -> list[dict[str, Any]]:
    """Every contender (or ``only`` one); a quick run leaves out the frugal one unless asked."""
    chosen = [
        c
        for c in CONTENDERS
        if only in (None, c) and not (quick and only is None and c == "asyncjobs_frugal")
    ]
    return [await run_contender(c, jobs) for c in chosen]
