"""Several workers on one PostgreSQL journal: the quota-bound campaign with 1 worker and with 3.

    python -m benchmarks.workers_bench [--jobs N] [--workers 1,3] [--runs N]

The campaign and emulator of :mod:`benchmarks.quota_bound` (2 creates/s per service, 8 running
Bedrock jobs per model, 3 Personalize jobs per kind, jobs of 2-4 s), the engine told no limit
(``Settings()`` as ``asyncjobs_discovered``), so the workers must find and share the pace and
the caps between them. Each run gets a fresh emulator with the same seed and a fresh PostgreSQL
server (job names, hence the emulator's durations, are the same in every run). The workers are
``Campaign`` objects in one process, each with its own journal connection and worker id: the
claims, leases, rate bucket and sweep leases they share go through the database as between
hosts. The worker counts take turns, run by run. Reported per worker count, medians over
``--runs``: makespan, create throttles, status reads, duplicates; the throttles summed over the
runs, in all and by AWS service; and the ratios of N workers to 1 (the goal: makespan <= 1.1x,
no more throttles, status reads <= 1.5x). A throttle or two per run is the slow start finding
each service's pace, so compare throttles over many runs: ``--jobs 24 --runs 20`` (about 11
minutes) tells them apart better than ``--runs 5`` of the default campaign.

The figures are printed and written to ``--figures`` (``benchmarks/workers.json`` by default),
with the date, the commit and the machine's load average when the runs began: the makespan is
noisy on a busy machine, so compare medians of runs made on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import structlog

from asyncjobs.emulator.process import emulator_process
from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings

from . import specs
from .emulator import create_throttles, create_throttles_by_service, read_calls
from .journal_bench import _location
from .quota_bound import emulator_settings
from .report import source_revision

REPO = Path(__file__).resolve().parents[1]


async def run_once(jobs: int, workers: int) -> dict[str, Any]:
    """One campaign of ``jobs`` run by ``workers`` workers: its figures."""
    with _location("postgres") as uri:
        async with emulator_process(**emulator_settings()) as emu:
            journals = [await PostgresJournal.open(uri, campaign="bench") for _ in range(workers)]
            try:
                await journals[0].add_specs(specs.job_specs(jobs))
                campaigns = [
                    Campaign(journal, endpoint_url=emu.url, region=specs.REGION, settings=Settings())
                    for journal in journals
                ]
                started = time.perf_counter()
                summaries = await asyncio.gather(*(campaign.run() for campaign in campaigns))
                makespan = time.perf_counter() - started
            finally:
                for journal in journals:
                    await journal.aclose()
            stats = emu.stats()
    return {
        "makespan_s": round(makespan, 2),
        "succeeded": summaries[0].counts[JobState.SUCCEEDED],
        "create_throttles": create_throttles(stats),
        "create_throttles_by_service": create_throttles_by_service(stats),
        "reads": read_calls(stats),
        "duplicates": stats["duplicate_jobs"],
        "creates_per_worker": [summary.creates for summary in summaries],
    }


async def run(jobs: int, worker_counts: list[int], runs: int) -> dict[str, Any]:
    # the worker counts take turns, run by run: a machine that gets busier during the runs
    # weighs on every count alike
    per_count: dict[int, list[dict[str, Any]]] = {workers: [] for workers in worker_counts}
    for _ in range(runs):
        for workers in worker_counts:
            per_count[workers].append(await run_once(jobs, workers))
    results: dict[str, Any] = {}
    for workers, each in per_count.items():
        results[str(workers)] = {
            "makespan_s": statistics.median(r["makespan_s"] for r in each),
            "create_throttles": statistics.median(r["create_throttles"] for r in each),
            # a throttle or two per run, mostly the slow start finding each AWS service's pace by
            # chance: the sum over the runs tells more than the median of so few
            "create_throttles_all_runs": sum(r["create_throttles"] for r in each),
            "create_throttles_all_runs_by_service": {
                service: sum(r["create_throttles_by_service"][service] for r in each)
                for service in each[0]["create_throttles_by_service"]
            },
            "reads": statistics.median(r["reads"] for r in each),
            "duplicates": max(r["duplicates"] for r in each),
            "per_run": each,
        }
    first = results[str(worker_counts[0])]
    for workers in worker_counts[1:]:
        entry = results[str(workers)]
        entry["makespan_vs_first"] = round(entry["makespan_s"] / first["makespan_s"], 3)
        entry["throttles_vs_first"] = entry["create_throttles"] - first["create_throttles"]
        entry["reads_vs_first"] = round(entry["reads"] / max(1, first["reads"]), 2)
    return {"jobs": jobs, "runs": runs, "workers": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workers_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=120, help="jobs in the campaign (default 120)")
    parser.add_argument("--workers", default="1,3", help="worker counts, comma-separated (default 1,3)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each worker count (median; default 1)")
    parser.add_argument(
        "--figures",
        default=str(REPO / "benchmarks" / "workers.json"),
        help="where to write the figures as JSON (default benchmarks/workers.json; '-' for nowhere)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # the emulator takes any credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    # the figures, not every job's events (the engine logs through structlog)
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    load = os.getloadavg()[0]
    figures = asyncio.run(run(args.jobs, counts, args.runs))
    document = {
        "date": datetime.date.today().isoformat(),
        "commit": source_revision(REPO)["commit"] or None,
        "command": f"python -m benchmarks.workers_bench --jobs {args.jobs} --workers {args.workers}"
        f" --runs {args.runs}",
        "load_average_at_start": round(load, 2),
        **figures,
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.figures != "-":
        Path(args.figures).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
