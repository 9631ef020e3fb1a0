"""The control loop's promises, measured through the real command: any ``asyncjobs`` executable,
so a build from before a change and one from after it are measured against the same emulator.

- ``resubmit``: short campaigns (24 jobs, 40 % of jobs failing, ``--resubmit-failed 3``), one per
  seed: how many runs ended with a job not final, and how many of those exited 0.
- ``neutral``: a Personalize-only campaign (18 batch inference and 18 batch segment jobs, quota 3
  per kind, 2 creates/s, the limits unknown to asyncjobs), against the emulator's usual texts and
  against one neutral text for both of Personalize's LimitExceededExceptions: makespan, the slot
  bound, the peak running jobs per kind, and create calls per job.
- ``pace``: campaigns whose create rate asyncjobs must discover (58 jobs at 2 creates/s, 200 at
  4/s): throttled create calls over all create calls.

Run it as ``python -m benchmarks.control_loop SCENARIO [--cli PATH] [--runs N]``; the emulator is
always this tree's, started as a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncjobs.emulator.process import emulator_process

from .emulator import create_calls, create_throttles

ROLE = "arn:aws:iam::123456789012:role/asyncjobs-bench"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SOLUTION_VERSION = "arn:aws:personalize:us-east-1:123456789012:solution/bench/abcdef12"
UNFINISHED = ("pending", "submitting", "submitted", "running")


def _line(index: int, kind: str) -> dict[str, Any]:
    spec_id = f"job-{index:04d}"
    if kind == "bedrock":
        request: dict[str, Any] = {
            "modelId": MODEL,
            "roleArn": ROLE,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://bench-in/{spec_id}.jsonl"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bench-out/bedrock/"}},
        }
    else:
        request = {
            "solutionVersionArn": SOLUTION_VERSION,
            "roleArn": ROLE,
            "jobInput": {"s3DataSource": {"path": f"s3://bench-in/{spec_id}/"}},
            "jobOutput": {"s3DataDestination": {"path": f"s3://bench-out/{spec_id}/"}},
        }
    return {"id": spec_id, "service": kind, "request": request}


def _campaign(path: Path, kinds: list[str]) -> Path:
    path.write_text("".join(json.dumps(_line(i, k)) + "\n" for i, k in enumerate(kinds)))
    return path


async def _run(cli: str, folder: Path, campaign: Path, url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    process = await asyncio.create_subprocess_exec(
        cli, "run", str(campaign), "--journal", str(folder / "c.db"), "--endpoint-url", url,
        "--region", "us-east-1", "--output", "json", "--poll-interval", "1", *extra,
        cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def resubmit(cli: str, runs: int) -> dict[str, Any]:
    unfinished_runs = exit0_unfinished = 0
    rows = []
    for seed in range(1, runs + 1):
        settings = {"seed": seed, "fail_rate": 0.4, "job_seconds": (0.5, 1.5), "create_rate": 5.0}
        async with emulator_process(**settings) as emu:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                kinds = ["bedrock", "personalize", "bedrock", "personalize-segment"] * 6
                code, doc = await _run(
                    cli, folder, _campaign(folder / "c.jsonl", kinds), emu.url, "--resubmit-failed", "3"
                )
        unfinished = sum(doc["counts"][state] for state in UNFINISHED)
        unfinished_runs += unfinished > 0
        exit0_unfinished += unfinished > 0 and code == 0
        rows.append({"seed": seed, "exit": code, "unfinished": unfinished})
    return {"runs": rows, "runs_unfinished": unfinished_runs, "exit_0_with_unfinished": exit0_unfinished}


async def neutral(cli: str, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    job_seconds = (1.0, 2.0)
    for label, message in (("distinct", None), ("neutral", "Limit exceeded")):
        samples = []
        for seed in range(1, runs + 1):
            settings: dict[str, Any] = {
                "seed": seed,
                "create_rate": 2.0,
                "personalize_max_running": 3,
                "job_seconds": job_seconds,
            }
            if message is not None:
                settings["limit_message"] = message
            async with emulator_process(**settings) as emu:
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    kinds = ["personalize", "personalize-segment"] * 18
                    started = time.monotonic()
                    code, doc = await _run(cli, folder, _campaign(folder / "c.jsonl", kinds), emu.url)
                    makespan = time.monotonic() - started
                stats = await asyncio.to_thread(emu.stats)
            samples.append(
                {
                    "exit": code,
                    "succeeded": doc["counts"]["succeeded"],
                    "makespan_s": round(makespan, 1),
                    "peak_running": stats["peak_running"],
                    "creates_per_job": round(create_calls(stats) / 36, 2),
                }
            )
        result[label] = {
            "median_makespan_s": statistics.median(s["makespan_s"] for s in samples),
            "runs": samples,
        }
    # 18 jobs of a kind through its 3 slots: 6 waves of the mean job length
    result["slot_bound_s"] = 6 * sum(job_seconds) / 2
    return result


async def pace(cli: str, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for jobs, rate in ((58, 2.0), (200, 4.0)):
        ratios = []
        for seed in range(1, runs + 1):
            async with emulator_process(seed=seed, create_rate=rate, job_seconds=(2.0, 4.0)) as emu:
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    kinds = ["bedrock", "bedrock", "personalize", "personalize-segment"] * (jobs // 4 + 1)
                    await _run(cli, folder, _campaign(folder / "c.jsonl", kinds[:jobs]), emu.url)
                stats = await asyncio.to_thread(emu.stats)
            ratios.append(round(create_throttles(stats) / max(1, create_calls(stats)), 3))
        result[f"{jobs}_jobs_at_{rate:g}_per_s"] = {
            "throttled_share_median": statistics.median(ratios),
            "runs": ratios,
        }
    return result


SCENARIOS = {"resubmit": resubmit, "neutral": neutral, "pace": pace}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_loop", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--cli", default=str(Path(sys.executable).with_name("asyncjobs")))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(SCENARIOS[args.scenario](args.cli, args.runs))
    print(json.dumps({"scenario": args.scenario, "cli": args.cli, **figures}, indent=2))


if __name__ == "__main__":
    main()
