"""``make chaos``, several workers: SIGKILL workers of one campaign on PostgreSQL, then audit it.

    python -m tests.chaos_workers --kills 30 --jobs 200 [--workers 3] [--seed N]

A real PostgreSQL server (pgserver) holds the journal; the emulator runs as its own process, so
its counters survive every kill. ``--workers`` copies of ``asyncjobs run`` share the campaign; a
random one is SIGKILLed every 0.5 to 2 s and a new one started in its place, until every kill
has landed (or the campaign ended first: that is a failure, the kills must land). At the end the
journal is checked job by job against the emulator (:func:`tests.reliability.harness.audit`): no
duplicate, exactly one remote job per spec and attempt, every spec final; and the emulator's
peak running per quota key is within the caps the workers were given together.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio

from asyncjobs.emulator.process import emulator_process_sync
from tests.reliability.harness import audit, unresubmitted_failures
from tests.reliability.workers import load_view, run_workers
from tests.support.postgres import own_server
from tests.support.specs import distinct_specs, write_campaign

#: Caps for all workers together, below the emulator's quotas: only shared claims keep to them.
CAPS = {"bedrock": 4, "personalize": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos_workers", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs to deliver (default 30)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the campaign (default 200)")
    parser.add_argument("--workers", type=int, default=3, help="workers at once (default 3)")
    parser.add_argument("--seed", type=int, default=2024, help="seeds the kill moments and the emulator")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share of remote jobs that fail")
    args = parser.parse_args(argv)

    emulator_args = (
        "--seed", str(args.seed), "--fail-rate", str(args.fail_rate), "--create-rate", "3",
        "--job-seconds", "1,3", "--latency", "0.01,0.25",
        "--bedrock-max-running", "10", "--personalize-max-running", "3",
    )  # fmt: skip
    runner_args = (
        "--poll-interval", "1", "--resubmit-failed", "1", "--lease-seconds", "5", "--output", "json",
        *(arg for key, cap in CAPS.items() for arg in ("--max-running", f"{key}={cap}")),
    )  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-chaos-workers-"))
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(args.jobs, prefix="chaos"))
    print(f"chaos-workers: {args.jobs} jobs, {args.workers} workers, {args.kills} kills, seed {args.seed}")
    started = time.monotonic()
    problems: list[str] = []
    try:
        with own_server() as server, emulator_process_sync(*emulator_args) as emulator:
            run_args = ("run", str(campaign), "--journal", server.uri, "--campaign-name", "chaos",
                        "--endpoint-url", emulator.url, *runner_args)  # fmt: skip
            results, landed = run_workers(
                run_args,
                workdir,
                workers=args.workers,
                kills=args.kills,
                rng=random.Random(args.seed),
                every=(0.5, 2.0),
                timeout=600,
            )
            stats = emulator.stats()
            view = anyio.run(load_view, server.uri, "chaos")
            result = audit(view, emulator.jobs(), stats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - started
    problems += result.problems
    problems += unresubmitted_failures(view, 1)
    problems += [f"a worker exited {r.code}: {r.stderr[-500:]}" for r in results if r.code not in (0, 1)]
    if landed < args.kills:
        problems.append(f"the campaign finished after only {landed} of {args.kills} kills")
    for key, peak in stats["peak_running"].items():
        if peak > CAPS[key.partition(":")[0]]:
            problems.append(f"{key}: {peak} running at once, over the cap {CAPS[key.partition(':')[0]]}")
    figures = {
        "kills": landed,
        "workers": args.workers,
        "jobs": result.specs,
        "remote_jobs": result.remote_jobs,
        "duplicates": result.duplicates,
        "lost": result.lost,
        "peak_running": stats["peak_running"],
        "throttled": stats["throttled_total"],
        "idempotent_replays": stats.get("idempotent_replays"),
        "already_exists": stats.get("already_exists"),
        "journal_counts": result.journal_counts,
        "wall_seconds": round(wall, 1),
        "ok": not problems,
    }
    print(json.dumps(figures, indent=2))
    if problems:
        print(f"chaos-workers: FAILED, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("chaos-workers: OK: no duplicate, nothing lost, caps held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
