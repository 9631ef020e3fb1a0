"""The scale scenario's worker process: ``python -m benchmarks.scale_runner COMMAND ...``.

Each command does one thing in a fresh interpreter (so the parent can sample this
process's RSS on its own) and prints one JSON object on its last stdout line:

``ingest --journal P --specs N``
    build N JobSpec objects (untimed), then time ``add_specs`` of the list;
``ingest-file --journal P --file F``
    time ``add_specs(read_campaign(F))``: reading, validating and journaling a campaign file;
``run --journal P --endpoint URL --seconds S [--until-first-create]``
    run the campaign against the emulator for S seconds (a graceful stop), timing the
    start-up: from before the journal is opened until the first create is journaled.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import anyio
import structlog

from asyncjobs.journal import open_journal
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings

from . import specs

MAX_RUNNING = 200


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


async def ingest(journal_path: Path, count: int) -> dict[str, Any]:
    started = time.perf_counter()
    built = specs.job_specs(count)
    build_s = time.perf_counter() - started
    journal = await open_journal(journal_path, campaign="bench")
    try:
        started = time.perf_counter()
        result = await journal.add_specs(built)
        ingest_s = time.perf_counter() - started
    finally:
        await journal.aclose()
    return {"specs": result.added, "build_s": round(build_s, 3), "ingest_s": round(ingest_s, 3)}


async def ingest_file(journal_path: Path, campaign_file: Path) -> dict[str, Any]:
    from asyncjobs.campaign import read_campaign

    journal = await open_journal(journal_path, campaign="bench")
    try:
        started = time.perf_counter()
        result = await journal.add_specs(read_campaign(campaign_file))
        ingest_s = time.perf_counter() - started
    finally:
        await journal.aclose()
    return {"specs": result.added, "ingest_s": round(ingest_s, 3)}


async def run(journal_path: Path, endpoint: str, seconds: float, until_first_create: bool) -> dict[str, Any]:
    started = time.perf_counter()
    journal = await open_journal(journal_path, create=False)
    opened = time.perf_counter() - started
    stop = anyio.Event()
    first: list[float] = []

    def on_event(event: CampaignEvent) -> None:
        if event.name == "job.submitted" and not first:
            first.append(time.perf_counter() - started)
            if until_first_create:
                stop.set()

    try:
        settings = Settings(max_running={"bedrock": MAX_RUNNING, "personalize": MAX_RUNNING})
        campaign = Campaign(
            journal, endpoint_url=endpoint, region=specs.REGION, settings=settings, on_event=on_event
        )

        async def stop_later() -> None:
            await anyio.sleep(seconds)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_later)
            summary = await campaign.run(stop=stop)
            tg.cancel_scope.cancel()
    finally:
        await journal.aclose()
    return {
        "open_s": round(opened, 3),
        "first_create_s": round(first[0], 3) if first else None,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "creates": summary.creates,
        "counts": {k: v for k, v in summary.to_dict()["counts"].items() if v},
        "rss_end_mb": _rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_runner")
    parser.add_argument("command", choices=["ingest", "ingest-file", "run"])
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--specs", type=int, default=0)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--endpoint")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--until-first-create", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    gc.collect()
    if args.command == "ingest":
        out = asyncio.run(ingest(args.journal, args.specs))
    elif args.command == "ingest-file":
        out = asyncio.run(ingest_file(args.journal, args.file))
    else:
        out = asyncio.run(run(args.journal, args.endpoint, args.seconds, args.until_first_create))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
