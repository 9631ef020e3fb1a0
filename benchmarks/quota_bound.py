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
  status read per job every second; no ceiling on the create rate (the peers of
  ``asyncjobs_discovered``, which is not told the rate either);
- ``baseline_standard_given`` / ``baseline_adaptive_given``: the same, told the create rate as
  ``asyncjobs_given`` is: an ``aiolimiter.AsyncLimiter(2, 1)`` per service on create calls (the
  peers of ``asyncjobs_given`` and ``asyncjobs_frugal``).

Every contender runs ``runs`` times (3 in a full run, 1 with ``--quick``), each time against a
fresh emulator, in rounds (every contender once, then again). Its entry holds the median over the
runs of the makespan, its ratios and the targeted rates, each with ``<figure>_spread`` = [min, max];
``duplicates`` and ``failed`` of the worst run; the counts and diagnostics (``create_calls``,
``slot_turnaround``, ...) of the run of median makespan. ``per_run`` lists every run's figures.

Two references, both from the durations the emulator drew for the run's jobs:
``ideal_s`` (:func:`benchmarks.ideal.ideal_makespan`, a lower bound on every schedule;
``makespan_ratio`` is against it) and ``greedy_instant_s`` (:func:`benchmarks.ideal.greedy_makespan`
with the emulator's real burst, ``greedy_instant_burst``: a client told of every job end at once;
``makespan_vs_greedy_instant`` is against it).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncjobs.emulator.process import EmulatorProcess, emulator_process
from asyncjobs.journal import open_journal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings

from . import specs
from .baseline import run_baseline
from .emulator import create_calls, create_throttles, read_calls, read_throttles
from .ideal import emulator_burst, greedy_makespan, ideal_makespan, slot_turnaround
from .report import entry, median_run, summary

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
    "baseline_standard_given",
    "baseline_adaptive_given",
)
#: The baselines each asyncjobs contender is compared with: those that know as much of the limits.
PEERS = {
    "asyncjobs_given": ("baseline_standard_given", "baseline_adaptive_given"),
    "asyncjobs_frugal": ("baseline_standard_given", "baseline_adaptive_given"),
    "asyncjobs_discovered": ("baseline_standard", "baseline_adaptive"),
}
#: Figures reported as the median over runs, with their [min, max] (decimal places).
MEDIANS = {
    "makespan_s": 2,
    "makespan_ratio": 3,
    "makespan_vs_greedy_instant": 3,
    "throttles_per_create": 3,
    "throttled_create_share": 3,
    "reads_per_job": 3,
}
#: Figures that must hold in every run: the worst run's value is reported.
WORST = ("duplicates", "failed")


def emulator_settings() -> dict[str, Any]:
    return {
        "seed": SEED,
        "create_rate": CREATE_RATE,
        "bedrock_max_running": SLOTS["bedrock"],
        "personalize_max_running": SLOTS["personalize"],
        "job_seconds": JOB_SECONDS,
    }


async def run_asyncjobs(
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


async def run_once(contender: str, jobs: int) -> dict[str, Any]:
    """One run of ``contender`` against a fresh emulator: its figures."""
    async with emulator_process(**emulator_settings()) as emu:
        detail: dict[str, Any] = {}
        if contender.startswith("asyncjobs"):
            settings = {
                "asyncjobs_given": Settings(create_rate=CREATE_RATE, max_running=SLOTS),
                "asyncjobs_discovered": Settings(),
                "asyncjobs_frugal": Settings(
                    create_rate=CREATE_RATE, max_running=SLOTS, min_poll_interval=FRUGAL_POLL
                ),
            }[contender]
            makespan, failed, outcome = await run_asyncjobs(emu, jobs, settings)
            detail["engine_counts"] = {k: v for k, v in outcome["counts"].items() if v}
        else:
            mode, _, given = contender.removeprefix("baseline_").partition("_")
            result = await run_baseline(
                emu.url,
                specs.requests(jobs),
                retry_mode=mode,
                slots=SLOTS,
                poll_interval=BASELINE_POLL,
                create_rate=CREATE_RATE if given else None,
            )
            makespan, failed = result.makespan_s, result.failed
            detail["failure_reasons"] = dict(result.reasons)
        stats = await asyncio.to_thread(emu.stats)
        records = await asyncio.to_thread(emu.jobs)
    ideal = ideal_makespan(records, create_rate=CREATE_RATE, slots=SLOTS)
    # the same jobs for a greedy client told of each end at once and for free, under the emulator's
    # real bucket (its burst included): what any client, given the rate or not, could at best reach
    greedy = greedy_makespan(records, create_rate=CREATE_RATE, slots=SLOTS)
    created = stats["jobs_total"]
    throttles = create_throttles(stats)
    rejections = stats["quota_rejections_total"]
    calls = create_calls(stats)
    return {
        "makespan_s": round(makespan, 2),
        "ideal_s": round(ideal.seconds, 2),
        "makespan_ratio": round(makespan / ideal.seconds, 3),
        "ideal_binding": ideal.binding,
        "greedy_instant_s": round(greedy, 2),
        "greedy_instant_burst": emulator_burst(CREATE_RATE),
        "makespan_vs_greedy_instant": round(makespan / greedy, 3),
        "throttles_per_create": round((throttles + rejections) / max(1, created), 3),
        # every create call the emulator saw (accepted, throttled, refused for quota) in the denominator
        "throttled_create_share": round(throttles / max(1, calls), 3),
        "create_throttles": throttles,
        "quota_rejections": rejections,
        "create_calls": calls,
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


def summarise(contender: str, jobs: int, each: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of ``contender`` summed up as one entry (see the module docstring)."""
    figures: dict[str, Any] = {"jobs": jobs, "runs": len(each), **median_run(each, "makespan_s")}
    for name, digits in MEDIANS.items():
        figures.update(summary(each, name, digits))
    for name in WORST:
        figures[name] = max(run[name] for run in each)
    figures["per_run"] = [
        {name: run[name] for name in ("ideal_s", *MEDIANS, *WORST) if name in run} for run in each
    ]
    target = {"asyncjobs_given": GIVEN_TARGET, "asyncjobs_discovered": DISCOVERED_TARGET}.get(contender)
    return entry("quota_bound", contender, figures, target)


def compare_with_peers(entries: list[dict[str, Any]]) -> None:
    """Add to each asyncjobs entry its median makespan over each peer baseline's that ran (< 1: faster)."""
    by_name = {e["contender"]: e for e in entries}
    for contender, peers in PEERS.items():
        if contender not in by_name:
            continue
        mine = by_name[contender]
        ratios = {
            peer: round(mine["makespan_s"] / by_name[peer]["makespan_s"], 3)
            for peer in peers
            if peer in by_name
        }
        if ratios:
            mine["makespan_vs_peers"] = ratios
            # the best peer is the one with the shortest makespan, so the largest of these ratios
            mine["makespan_vs_best_peer"] = max(ratios.values())


async def run(
    jobs: int, only: str | None = None, *, quick: bool = False, runs: int = 3
) -> list[dict[str, Any]]:
    """Every contender (or ``only`` one); a quick run leaves out the frugal one unless asked."""
    chosen = [
        c
        for c in CONTENDERS
        if only in (None, c) and not (quick and only is None and c == "asyncjobs_frugal")
    ]
    each: dict[str, list[dict[str, Any]]] = {c: [] for c in chosen}
    # round by round rather than contender by contender, so that a slow spell of a shared machine
    # lands on one run of several contenders, not on every run of one of them
    for _ in range(runs):
        for c in chosen:
            each[c].append(await run_once(c, jobs))
    entries = [summarise(c, jobs, each[c]) for c in chosen]
    compare_with_peers(entries)
    return entries
