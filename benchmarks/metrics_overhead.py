"""Scenario: what measuring costs. The create throughput of one campaign with metrics on
(``Campaign(..., metrics=CollectorRegistry())``) against the same campaign with metrics off.

The emulator and the campaign are those of :mod:`.overhead` (no rate limits, no quota in
reach, jobs that end at once); the time is ``campaign.run(wait=False)``. "On" records every
series as a run does under ``asyncjobs run --metrics-port``: a latency observation and an
outcome count per create, reads per sweep, and the gauges refreshed every second; the
scrapes themselves (a thread reading the registry every few seconds) are the scraper's cost,
not the campaign's, and are left out.

The two alternate, off first, each on a fresh emulator, ``runs`` times (at least 5: on a
shared 2-core machine one run's create rate varies by ±20 %, far more than what metrics
cost, about 2 µs per create against some 1,500 µs); the medians of their create rates give
the ratio, which should be within 5 %.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from asyncjobs.emulator.process import EmulatorProcess, emulator_process
from asyncjobs.journal import open_journal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings

from . import specs
from .overhead import UNLIMITED, emulator_settings
from .report import entry

TARGET = {"throughput_ratio": (">=", 0.95)}
#: Fewer alternating runs than this give no median worth the name (see the module's docstring).
LEAST_RUNS = 5


async def _create_rate(emu: EmulatorProcess, jobs: int, *, measured: bool) -> float:
    """Creates per second of one ``run(wait=False)``, with metrics or without."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        journal = await open_journal(Path(tmp) / "campaign.db", campaign="bench")
        try:
            settings = Settings(
                create_rate=UNLIMITED, max_running={"bedrock": UNLIMITED, "personalize": UNLIMITED}
            )
            campaign = Campaign(
                journal,
                endpoint_url=emu.url,
                region=specs.REGION,
                settings=settings,
                metrics=CollectorRegistry() if measured else None,
            )
            await campaign.add(specs.job_specs(jobs))
            started = time.perf_counter()
            summary = await campaign.run(wait=False)
            seconds = time.perf_counter() - started
        finally:
            await journal.aclose()
    if summary.counts[JobState.PENDING] + summary.counts[JobState.SUBMITTING]:
        raise RuntimeError(f"not every job was submitted: {summary.to_dict()['counts']}")
    return jobs / seconds


async def run(jobs: int, runs: int) -> list[dict[str, Any]]:
    runs = max(runs, LEAST_RUNS)
    rates: dict[str, list[float]] = {"metrics_off": [], "metrics_on": []}
    for _ in range(runs):
        for name in ("metrics_off", "metrics_on"):
            async with emulator_process(**emulator_settings()) as emu:
                rates[name].append(await _create_rate(emu, jobs, measured=name == "metrics_on"))
    off, on = (statistics.median(rates[name]) for name in ("metrics_off", "metrics_on"))
    figures: dict[str, dict[str, Any]] = {
        name: {
            "jobs": jobs,
            "runs": runs,
            "creates_per_s": round(statistics.median(values), 1),
            "creates_per_s_runs": [round(v, 1) for v in values],
        }
        for name, values in rates.items()
    }
    figures["metrics_on"]["throughput_ratio"] = round(on / off, 3)
    return [
        entry("metrics", "metrics_off", figures["metrics_off"]),
        entry("metrics", "metrics_on", figures["metrics_on"], TARGET),
    ]
