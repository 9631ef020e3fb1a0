"""``make chaos``: SIGKILL ``asyncjobs run`` again and again over one campaign, then audit it.

    python -m tests.chaos --kills 50 --jobs 200 [--seed N] [--fail-rate F]

The emulator runs as its own process, so its counters survive every kill. The runner
is the real command, restarted on the same journal after each SIGKILL, until it exits
0 or 1. The campaign mixes Bedrock (two models) and both Personalize kinds; some jobs
fail and are resubmitted once (``--resubmit-failed 1``). At the end, the journal is
checked job by job against the emulator's list of jobs (:func:`tests.reliability.harness.audit`):
no duplicate, exactly one remote job per spec and attempt, every spec final, the same
counts on both sides. It prints its figures and exits 1 if the promise was broken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.emulator_process import emulator_process_sync
from tests.reliability.harness import (
    CrashRun,
    audit,
    crash_campaign,
    mixed_specs,
    read_journal,
    unresubmitted_failures,
    write_campaign,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs to deliver (default 50)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the campaign (default 200)")
    parser.add_argument("--seed", type=int, default=2024, help="seeds the kill moments and the emulator")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share of remote jobs that fail")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)

    emulator_args = (
        "--seed", str(args.seed), "--fail-rate", str(args.fail_rate),
        "--job-seconds", "2,6", "--latency", "0.01,0.25",
        "--bedrock-max-running", "10", "--personalize-max-running", "3",
    )  # fmt: skip
    runner_args = ("--poll-interval", "1", "--resubmit-failed", "1")
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-chaos-"))
    campaign = write_campaign(workdir / "campaign.jsonl", mixed_specs(args.jobs, prefix="chaos"))
    journal = workdir / "chaos.db"
    print(f"chaos: {args.jobs} jobs, {args.kills} kills, seed {args.seed}, in {workdir}", flush=True)
    print(f"chaos: emulator {' '.join(emulator_args)}", flush=True)

    def progress(run: CrashRun, where: str) -> None:
        print(f"chaos: kill {run.kills:3d} after {run.delays[-1]:.2f}s: {where}", flush=True)

    started = time.monotonic()
    with emulator_process_sync(*emulator_args) as emulator:
        run = crash_campaign(
            workdir=workdir,
            campaign=campaign,
            journal=journal,
            endpoint_url=emulator.url,
            kills=args.kills,
            seed=args.seed,
            extra_args=runner_args,
            on_kill=progress,
        )
        stats = emulator.stats()
        result = audit(read_journal(journal), emulator.jobs(), stats)
    wall = time.monotonic() - started
    problems = list(result.problems)
    problems += unresubmitted_failures(read_journal(journal), 1)
    if run.kills < args.kills:
        problems.append(f"the campaign finished after only {run.kills} of {args.kills} kills")

    figures = {
        "kills": run.kills,
        "runs": run.runs,
        "jobs": result.specs,
        "remote_jobs": result.remote_jobs,
        "duplicates": result.duplicates,
        "lost": result.lost,
        "final_exit_code": run.final.code if run.final else None,
        "journal_counts": result.journal_counts,
        "service_counts": result.remote_counts,
        "idempotent_replays": stats.get("idempotent_replays"),
        "already_exists": stats.get("already_exists"),
        "kills_landed": dict(run.landed),
        "wall_seconds": round(wall, 1),
    }
    print("chaos: kill moments landed: " + ", ".join(f"{n} {w}" for w, n in run.landed.most_common()))
    print(
        f"chaos: kills {run.kills}, jobs {result.specs}, remote jobs {result.remote_jobs}, "
        f"duplicates {result.duplicates}, lost {result.lost}, wall time {wall:.1f}s"
    )
    print(json.dumps(figures, indent=2))
    if problems:
        print(f"chaos: FAILED, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        print(f"chaos: journal and campaign kept in {workdir}", file=sys.stderr)
        return 1
    print("chaos: OK: no duplicate, nothing lost")
    if not args.keep:
        for path in sorted(workdir.iterdir()):
            path.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
