"""``python -m benchmarks [--quick] [--only NAME] [--runs N] [--out PATH]``: run the benchmarks.

Prints a markdown table and writes a JSON file of the results (``benchmarks/results.json``
for a full run, ``benchmarks/results-quick.json`` with ``--quick``). ``--only`` takes a
scenario (``quota_bound``, ``discovered``, ``overhead``, ``metrics``, ``scale``, ``journal``) or a quota_bound
contender (``asyncjobs_given``, ``asyncjobs_discovered``, ``asyncjobs_frugal``,
``baseline_standard``, ``baseline_adaptive``, ``baseline_standard_given``,
``baseline_adaptive_given``). The quota_bound contenders and the discovered campaigns run 3
times each and report medians (``--quick``: once; ``--runs`` sets the number); ``metrics``
alternates at least 5 runs with metrics off and on.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from . import discovered, journal_bench, metrics_overhead, overhead, quota_bound, report, scale

HERE = Path(__file__).resolve().parent
SCENARIOS = ("quota_bound", "discovered", "overhead", "metrics", "scale", "journal")


@dataclass(frozen=True)
class Sizes:
    quota_jobs: int
    overhead_jobs: int
    overhead_rounds: int
    scale_specs: int
    scale_run_seconds: float
    journal_jobs: int
    #: Runs of each quota_bound contender and discovered campaign (the median is reported).
    runs: int


FULL = Sizes(100, 5_000, 3, 1_000_000, 60.0, 25_000, runs=3)
QUICK = Sizes(16, 1_000, 1, 50_000, 6.0, 4_000, runs=1)


async def run_all(sizes: Sizes, only: str | None, *, quick: bool) -> list[dict[str, Any]]:
    scenario = only if only in SCENARIOS else ("quota_bound" if only else None)
    contender = only if only and only not in SCENARIOS else None
    results: list[dict[str, Any]] = []
    if scenario in (None, "quota_bound"):
        results += await _timed(
            "quota_bound", quota_bound.run(sizes.quota_jobs, contender, quick=quick, runs=sizes.runs)
        )
    if scenario in (None, "discovered"):
        results += await _timed("discovered", discovered.run(sizes.runs))
    if scenario in (None, "overhead"):
        results += await _timed("overhead", overhead.run(sizes.overhead_jobs, sizes.overhead_rounds))
    if scenario in (None, "metrics"):
        results += await _timed("metrics", metrics_overhead.run(sizes.overhead_jobs, sizes.runs))
    if scenario in (None, "scale"):
        results += await _timed("scale", scale.run(sizes.scale_specs, sizes.scale_run_seconds))
    if scenario in (None, "journal"):
        results += await _timed("journal", journal_bench.run(sizes.journal_jobs))
    return results


async def _timed(name: str, work: Any) -> list[dict[str, Any]]:
    started = time.perf_counter()
    print(f"running {name} ...", file=sys.stderr, flush=True)
    results: list[dict[str, Any]] = await work
    print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, one run each (under 3 min)")
    parser.add_argument("--only", metavar="NAME", help="one scenario, or one quota_bound contender")
    parser.add_argument(
        "--runs", type=int, metavar="N", help="runs per quota_bound contender and discovered campaign"
    )
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    args = parser.parse_args()
    valid = (*SCENARIOS, *quota_bound.CONTENDERS)
    if args.only and args.only not in valid:
        parser.error(f"--only must be one of {', '.join(valid)}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    # the emulator checks that requests are signed, not by whom; nothing leaves the loopback
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    # as the asyncjobs command configures it: errors only, loggers cached on first use
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR), cache_logger_on_first_use=True
    )
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = replace(sizes, runs=args.runs)
    out = args.out or HERE / ("results-quick.json" if args.quick else "results.json")
    started = time.perf_counter()
    begun = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    source = report.source_revision(HERE.parent)  # before the run: others may commit meanwhile
    results = asyncio.run(run_all(sizes, args.only, quick=args.quick))
    meta = {
        "mode": "quick" if args.quick else "full",
        "only": args.only,
        "started_at": begun,
        "duration_s": round(time.perf_counter() - started, 1),
        "sizes": asdict(sizes),
        "machine": report.machine(),
        "source": source,
    }
    report.write(out, results, meta)
    m = meta["machine"]
    print(
        f"\nasyncjobs benchmarks ({meta['mode']}, {meta['duration_s']} s) on {m['cpu_count']} x {m['cpu']},"
    )
    print(f"{m['memory_gb']} GB, Python {m['python']}, {m['platform']}\n")
    print(report.table(results))
    if sizes.runs < FULL.runs:
        print(
            f"\n{sizes.runs} run{'s' if sizes.runs > 1 else ''} per quota_bound contender and discovered"
            f" campaign, not the median of {FULL.runs} of a full run: judge the targets by a full run."
        )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
