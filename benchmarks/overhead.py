"""Scenario 2: the engine's overhead, on an emulator that never pushes back.

The emulator has no rate limits, quotas no campaign reaches, and jobs that finish at once.
Two contenders create the same jobs:

- ``asyncjobs``: a durable journal (SQLite, ``synchronous=FULL``, group commit), limits given
  as "unlimited", the create rate included (left to be discovered, the pace would start at one
  create a second and double each second: this would time that slow start, not the engine);
  the time is ``campaign.run(wait=False)``, which returns once every job is
  submitted (client set-up and journal restore included). The specs are journaled first,
  untimed (ingest is scenario 3).
- ``bare_gather``: aioboto3 clients (set-up included) and one ``asyncio.gather`` of every
  create call, nothing recorded. It gets the same connection pool as asyncjobs (40).

Each round uses a fresh emulator per contender; the best round of each is reported.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config

from asyncjobs.emulator.process import EmulatorProcess, emulator_process
from asyncjobs.journal import open_journal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings

from . import specs
from .emulator import read_calls
from .report import entry

UNLIMITED = 1_000_000
TARGET = {"throughput_ratio": (">=", 0.8)}


def emulator_settings() -> dict[str, Any]:
    return {
        "seed": 2,
        "create_rate": 0,
        "get_rate": 0,
        "list_rate": 0,
        "bedrock_max_running": UNLIMITED,
        "personalize_max_running": UNLIMITED,
        "job_seconds": (0.0, 0.0),
        "bedrock_phase_seconds": (0.0, 0.0),
        "personalize_pending_seconds": (0.0, 0.0),
    }


async def _asyncjobs(emu: EmulatorProcess, jobs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        journal = await open_journal(Path(tmp) / "campaign.db", campaign="bench")
        try:
            settings = Settings(
                create_rate=UNLIMITED, max_running={"bedrock": UNLIMITED, "personalize": UNLIMITED}
            )
            campaign = Campaign(journal, endpoint_url=emu.url, region=specs.REGION, settings=settings)
            await campaign.add(specs.job_specs(jobs))
            started = time.perf_counter()
            summary = await campaign.run(wait=False)
            seconds = time.perf_counter() - started
        finally:
            await journal.aclose()
    unsent = summary.counts[JobState.PENDING] + summary.counts[JobState.SUBMITTING]
    if unsent or summary.counts[JobState.REJECTED]:
        raise RuntimeError(f"asyncjobs did not submit every job: {summary.to_dict()['counts']}")
    return seconds


async def _bare_gather(emu: EmulatorProcess, jobs: int) -> float:
    requests = specs.requests(jobs)
    started = time.perf_counter()
    session = aioboto3.Session()
    config = Config(retries={"mode": "standard"}, max_pool_connections=40)
    kwargs: dict[str, Any] = {"region_name": specs.REGION, "endpoint_url": emu.url, "config": config}
    async with session.client("bedrock", **kwargs) as bedrock, session.client("personalize", **kwargs) as pz:
        calls = {
            "bedrock": bedrock.create_model_invocation_job,
            "personalize": pz.create_batch_inference_job,
            "personalize-segment": pz.create_batch_segment_job,
        }
        await asyncio.gather(*(calls[kind](**params) for kind, params in requests))
    return time.perf_counter() - started


async def _span(emu: EmulatorProcess) -> tuple[int, float, int]:
    """Jobs the emulator created, the seconds from its first create to its last, and read calls."""
    stats = await asyncio.to_thread(emu.stats)
    times = [r["submit_time"] for r in await asyncio.to_thread(emu.jobs)]
    return stats["jobs_total"], (max(times) - min(times)) if times else 0.0, read_calls(stats)


async def run(jobs: int, rounds: int = 1, only: str | None = None) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, contender in (("bare_gather", _bare_gather), ("asyncjobs", _asyncjobs)):
            async with emulator_process(**emulator_settings()) as emu:
                seconds = await contender(emu, jobs)
                created, span, reads = await _span(emu)
            if created != jobs:
                raise RuntimeError(f"{name}: the emulator created {created} jobs, not {jobs}")
            figures = {
                "jobs": jobs,
                "seconds": round(seconds, 3),
                "creates_per_s": round(jobs / seconds, 1),
                "create_span_s": round(span, 3),
                "creates_per_s_in_span": round(jobs / span, 1) if span else None,
                "read_calls": reads,
            }
            if name not in best or figures["seconds"] < best[name]["seconds"]:
                best[name] = figures
    bare = best["bare_gather"]
    engine = best["asyncjobs"]
    engine["throughput_ratio"] = round(engine["creates_per_s"] / bare["creates_per_s"], 3)
    engine["rounds"] = bare["rounds"] = rounds
    results = [entry("overhead", "bare_gather", bare), entry("overhead", "asyncjobs", engine, TARGET)]
    return [r for r in results if only in (None, "overhead", r["contender"])]
