"""Scenario: the limits unknown to asyncjobs; how many of its create calls are throttled.

asyncjobs runs with ``Settings()``: no ``create_rate``, the default caps (20 running jobs per
Bedrock model, 5 per Personalize job kind). Knowing no pace, it starts slowly and has to find the
create rate from the service's throttles. Two campaigns, the two the issue measured (58 jobs at 2/s: 44 %
throttled; 200 jobs at 4/s: 19 %):

- ``asyncjobs_60_jobs``: 60 jobs, the emulator accepting 2 creates/s per service (burst 2);
  target: at most 8 % of create calls throttled;
- ``asyncjobs_200_jobs``: 200 jobs at 4 creates/s per service (burst 4); target: at most 2 %.

The headline, ``throttled_create_share``, is throttled create calls over all create calls, both
from the emulator's own counters (``GET /_emulator/stats``): every create call it received is
counted, accepted, throttled or refused for quota.

**It is the create rate that is discovered here, not the slots.** The emulator's running-job
quotas are left at its defaults, which are the AWS defaults (20 per model, 5 per Personalize
kind) and equal to asyncjobs' default caps, so no create should be refused for quota
(``quota_rejections`` shows whether any was). The jobs are short instead, so that those slots
free far faster than the create rate fills them: a Personalize job holds its slot for its
pending time (0.1-0.3 s) and run (0.3-0.6 s), plus up to about half a second until a status
sweep sees its end, about 1 s in all, so 5 slots per kind sustain about 5 creates/s per kind,
10 per service, against at most 4 allowed; a Bedrock job holds a slot about 2 s (three phases of
0.1-0.5 s, the run, the sweep), so 20 slots per model sustain about 10/s per model.
``peak_running`` shows how full the slots got (as the emulator counts them: from a create to the
job's end, without the time asyncjobs takes to see that end), and ``keys_at_quota`` lists any key
whose slots were ever all taken (in any run): empty, the slots never bound.

A client could avoid throttles by creating slowly, so the entry also reports how fast the
accepted creates came: ``create_span_ratio`` is, for the slower service, the time from its first
to its last accepted create over the least time the emulator's bucket allows for them
(``(n - burst) / rate``); 1 is as fast as the emulator allows.

Each campaign runs ``runs`` times (3; 1 with ``--quick``), in rounds, against a fresh emulator
with the same seed; the entry holds the median of each figure, with ``<figure>_spread`` = [min, max], and
``per_run``. Noise can flip a share this close to its target, hence the median.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asyncjobs.emulator.config import EmulatorConfig
from asyncjobs.emulator.process import emulator_process
from asyncjobs.scheduler import Settings

from .emulator import create_calls, create_throttles, read_calls
from .ideal import emulator_burst
from .quota_bound import run_asyncjobs
from .report import entry, median_run, summary

SEED = 11
JOB_SECONDS = (0.3, 0.6)
PERSONALIZE_PENDING_SECONDS = (0.1, 0.3)


@dataclass(frozen=True)
class Discovery:
    jobs: int
    create_rate: float
    max_throttled_share: float


CAMPAIGNS = {
    "asyncjobs_60_jobs": Discovery(jobs=60, create_rate=2.0, max_throttled_share=0.08),
    "asyncjobs_200_jobs": Discovery(jobs=200, create_rate=4.0, max_throttled_share=0.02),
}
#: Figures reported as the median over runs, with their [min, max] (decimal places).
MEDIANS = {"throttled_create_share": 3, "makespan_s": 2, "create_span_ratio": 3, "reads_per_job": 3}
WORST = ("duplicates", "failed", "quota_rejections")


def emulator_settings(create_rate: float) -> dict[str, Any]:
    # running-job quotas: the emulator's defaults (the AWS defaults), see the module docstring
    return {
        "seed": SEED,
        "create_rate": create_rate,
        "job_seconds": JOB_SECONDS,
        "personalize_pending_seconds": PERSONALIZE_PENDING_SECONDS,
    }


def keys_at_quota(peak_running: Mapping[str, int]) -> list[str]:
    """The quota keys whose running jobs reached the emulator's quota at some moment.

    Empty means the slots never bound; a key listed may have bound the create rate for a while.
    """
    config = EmulatorConfig()  # the quotas in force: this scenario leaves them at their defaults
    quota = {"bedrock": config.bedrock_max_running, "personalize": config.personalize_max_running}
    return sorted(key for key, peak in peak_running.items() if peak >= quota[key.partition(":")[0]])


def create_spans(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, float]]:
    """{service: (accepted creates, seconds from the first to the last)} on the emulator's clock."""
    times: dict[str, list[float]] = defaultdict(list)
    for record in records:
        service = "bedrock" if record["kind"] == "bedrock" else "personalize"
        times[service].append(float(record["submit_time"]))
    return {service: (len(t), max(t) - min(t)) for service, t in times.items()}


def span_ratio(spans: Mapping[str, tuple[int, float]], create_rate: float) -> float | None:
    """The slower service's create span over the least the emulator's bucket allows (None: too few)."""
    burst = emulator_burst(create_rate)
    ratios = [span / ((count - burst) / create_rate) for count, span in spans.values() if count > burst]
    return max(ratios) if ratios else None


async def run_once(campaign: Discovery) -> dict[str, Any]:
    async with emulator_process(**emulator_settings(campaign.create_rate)) as emu:
        makespan, failed, _ = await run_asyncjobs(emu, campaign.jobs, Settings())
        stats = await asyncio.to_thread(emu.stats)
        records = await asyncio.to_thread(emu.jobs)
    calls = create_calls(stats)
    throttled = create_throttles(stats)
    spans = create_spans(records)
    ratio = span_ratio(spans, campaign.create_rate)
    return {
        "throttled_create_share": round(throttled / max(1, calls), 3),
        "create_calls": calls,
        "create_throttles": throttled,
        "quota_rejections": stats["quota_rejections_total"],
        "jobs_created": stats["jobs_total"],
        "makespan_s": round(makespan, 2),
        "create_span_ratio": None if ratio is None else round(ratio, 3),
        "create_span_s": {service: round(span, 2) for service, (_, span) in spans.items()},
        "reads_per_job": round(read_calls(stats) / campaign.jobs, 3),
        "duplicates": stats["duplicate_jobs"],
        "failed": failed,
        "peak_running": stats["peak_running"],
        "keys_at_quota": keys_at_quota(stats["peak_running"]),
    }


def summarise(name: str, each: list[dict[str, Any]]) -> dict[str, Any]:
    campaign = CAMPAIGNS[name]
    figures: dict[str, Any] = {
        "jobs": campaign.jobs,
        "create_rate_allowed": campaign.create_rate,
        "create_burst_allowed": emulator_burst(campaign.create_rate),
        "runs": len(each),
        # counts and diagnostics of the run of median share; the medians below replace its own
        **median_run(each, "throttled_create_share"),
    }
    for figure, digits in MEDIANS.items():
        if all(run[figure] is not None for run in each):
            figures.update(summary(each, figure, digits))
    for figure in WORST:
        figures[figure] = max(run[figure] for run in each)
    figures["keys_at_quota"] = sorted({key for run in each for key in run["keys_at_quota"]})
    figures["per_run"] = [{k: run[k] for k in (*MEDIANS, *WORST)} for run in each]
    target = {
        "throttled_create_share": ("<=", campaign.max_throttled_share),
        "duplicates": ("==", 0),
        "failed": ("==", 0),
    }
    return entry("discovered", name, figures, target)


async def run(runs: int = 3) -> list[dict[str, Any]]:
    each: dict[str, list[dict[str, Any]]] = {name: [] for name in CAMPAIGNS}
    for _ in range(runs):  # in rounds, as quota_bound does
        for name, campaign in CAMPAIGNS.items():
            each[name].append(await run_once(campaign))
    return [summarise(name, runs_) for name, runs_ in each.items()]
