"""``make chaos``: SIGKILL ``asyncjobs run`` again and again over one campaign, then audit it.

    python -m tests.chaos --kills 50 --jobs 200 [--seed N] [--fail-rate F] [--figures PATH]

The emulator runs as its own process, so its counters survive every kill. The runner
is the real command, restarted on the same journal after each SIGKILL, until it exits
0 or 1. The campaign mixes Bedrock (two models) and both Personalize kinds; some jobs
fail and are resubmitted once (``--resubmit-failed 1``). At the end, the journal is
checked job by job against the emulator's list of jobs (:func:`tests.reliability.harness.audit`):
no duplicate, exactly one remote job per spec and attempt, every spec final, the same
counts on both sides. It prints its figures, writes them as JSON (``--figures``, by
default ``benchmarks/chaos.json``, for the README and ``benchmarks/RESULTS.md`` to quote),
and exits 1 if the promise was broken.

The kills are paced by the campaign's own progress, not by the clock, so that every one
of them lands on a fast machine as on a slow one (:func:`tests.reliability.harness.paced_kills`):
a third land early in a run (start-up, ingest, first claims), the others at evenly spaced
shares of the campaign's specs sent to the service, the last at P/(P+1) of them; and any
kill still owed when every spec has been sent lands at once, since the campaign cannot end
sooner than a job's length after its last spec is sent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncjobs.emulator.process import emulator_process_sync
from tests.reliability.harness import (
    CrashRun,
    audit,
    crash_campaign,
    paced_kills,
    read_journal,
    sent_share,
    unresubmitted_failures,
)
from tests.support.specs import distinct_specs, write_campaign

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs to deliver (default 50)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the campaign (default 200)")
    parser.add_argument("--seed", type=int, default=2024, help="seeds the kill moments and the emulator")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share of remote jobs that fail")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--figures",
        type=Path,
        default=REPO / "benchmarks" / "chaos.json",
        help="where to write the figures as JSON (default benchmarks/chaos.json; '-' for nowhere)",
    )
    args = parser.parse_args(argv)

    emulator_args = (
        "--seed", str(args.seed), "--fail-rate", str(args.fail_rate),
        "--job-seconds", "2,6", "--latency", "0.01,0.25",
        "--bedrock-max-running", "10", "--personalize-max-running", "3",
    )  # fmt: skip
    runner_args = ("--poll-interval", "1", "--resubmit-failed", "1")
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-chaos-"))
    specs = distinct_specs(args.jobs, prefix="chaos")
    campaign = write_campaign(workdir / "campaign.jsonl", specs)
    journal = workdir / "chaos.db"
    plan = paced_kills(args.kills, random.Random(args.seed))
    early = sum(1 for kill in plan if kill.progress == 0)
    print(f"chaos: {args.jobs} jobs, {args.kills} kills, seed {args.seed}, in {workdir}", flush=True)
    print(f"chaos: emulator {' '.join(emulator_args)}", flush=True)
    print(
        f"chaos: {early} kills early in a run, {len(plan) - early} paced by the share of specs sent",
        flush=True,
    )

    def progress(run: CrashRun, where: str) -> None:
        share = f" at {run.shares[-1]:4.0%} sent" if run.shares else ""
        print(f"chaos: kill {run.kills:3d} after {run.delays[-1]:5.2f}s{share}: {where}", flush=True)

    started = time.monotonic()
    with emulator_process_sync(*emulator_args) as emulator:
        run = crash_campaign(
            workdir=workdir,
            campaign=campaign,
            journal=journal,
            endpoint_url=emulator.url,
            kills=args.kills,
            seed=args.seed,
            plan=plan,
            # the campaign's name is the journal's stem: the job names follow from it
            progress=sent_share(emulator.jobs, journal.stem, (s["id"] for s in specs)),
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

    figures: dict[str, Any] = {
        "kills": run.kills,
        "kills_early": early,
        "kills_paced": len(plan) - early,
        "kills_forced": run.forced,
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
        "ok": not problems,
    }
    summary = (
        f"{run.kills} kills, {run.runs} runs, {result.specs} jobs, {result.remote_jobs} remote jobs, "
        f"{result.duplicates} duplicates, {result.lost} lost, {wall:.0f} s"
    )
    print("chaos: kill moments landed: " + ", ".join(f"{n} {w}" for w, n in run.landed.most_common()))
    print(
        f"chaos: kills {run.kills}, jobs {result.specs}, remote jobs {result.remote_jobs}, "
        f"duplicates {result.duplicates}, lost {result.lost}, wall time {wall:.1f}s"
    )
    print(json.dumps(figures, indent=2))
    if str(args.figures) != "-":
        write_figures(args, figures, summary, emulator_args, runner_args)
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


def write_figures(
    args: argparse.Namespace,
    figures: dict[str, Any],
    summary: str,
    emulator_args: tuple[str, ...],
    runner_args: tuple[str, ...],
) -> None:
    """The figures with what produced them, and a sentence to quote (``summary``)."""
    document = {
        "summary": summary,
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "command": f"python -m tests.chaos --kills {args.kills} --jobs {args.jobs} --seed {args.seed}",
        "emulator_args": list(emulator_args),
        "runner_args": list(runner_args),
        "seed": args.seed,
        "fail_rate": args.fail_rate,
        "figures": figures,
    }
    args.figures.parent.mkdir(parents=True, exist_ok=True)
    args.figures.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"chaos: figures written to {args.figures}: {summary}")


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
