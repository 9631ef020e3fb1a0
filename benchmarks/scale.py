"""Scenario 3: a campaign of a million specs.

Every step runs in its own worker process (:mod:`benchmarks.scale_runner`):

1. ingest: ``add_specs`` of pre-built JobSpec objects into a fresh durable journal;
2. ingest from a file: ``add_specs(read_campaign(file))`` of the same specs as campaign
   lines (reading and validating each line included), into another journal;
3. memory: the campaign of step 1 runs against the emulator (no rate limits, 200 running
   jobs per quota key, jobs of 1-3 s) for ``run_seconds``, while this process samples the
   worker's RSS every 0.1 s. The same run on a journal a tenth the size is the reference:
   memory must not grow with the number of specs;
4. resume: a new worker opens the journal the run left behind (jobs pending, running and
   finished), restores, and is timed until its first create is journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from asyncjobs.emulator.process import emulator_process

from . import specs
from .report import entry

TARGET = {
    "ingest_specs_per_s": (">=", 50_000),
    "peak_rss_mb": ("<=", 250),
    "resume_startup_s": ("<=", 5.0),
}


def emulator_settings() -> dict[str, Any]:
    return {
        "seed": 3,
        "create_rate": 0,
        "get_rate": 0,
        "list_rate": 0,
        "bedrock_max_running": 200,
        "personalize_max_running": 200,
        "job_seconds": (1.0, 3.0),
    }


async def _worker(*args: str, sample_rss: bool = False) -> tuple[dict[str, Any], float]:
    """Run a scale_runner command; its JSON output, and its peak RSS in MB if sampled."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.scale_runner", *args, stdout=asyncio.subprocess.PIPE
    )
    peak = 0
    if sample_rss:
        watched = psutil.Process(process.pid)
        while process.returncode is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.1)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"scale_runner {args[0]} failed with exit code {process.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1]), round(peak / 2**20, 1)


async def _memory_run(journal: Path, seconds: float, *, resume: bool) -> dict[str, Any]:
    async with emulator_process(**emulator_settings()) as emu:
        ran, peak = await _worker(
            "run",
            "--journal",
            str(journal),
            "--endpoint",
            emu.url,
            "--seconds",
            str(seconds),
            sample_rss=True,
        )
        result = {"run": ran, "peak_rss_mb": peak}
        if resume:
            resumed, _ = await _worker(
                "run",
                "--journal",
                str(journal),
                "--endpoint",
                emu.url,
                "--seconds",
                "30",
                "--until-first-create",
            )
            result["resume"] = resumed
    return result


async def run(count: int, run_seconds: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        main = root / "million.db"
        ingested, _ = await _worker("ingest", "--journal", str(main), "--specs", str(count))

        campaign_file = root / "campaign.jsonl"
        started = time.perf_counter()
        await asyncio.to_thread(specs.write_campaign, campaign_file, count)
        write_s = time.perf_counter() - started
        from_file, _ = await _worker(
            "ingest-file", "--journal", str(root / "file.db"), "--file", str(campaign_file)
        )
        campaign_file.unlink()
        (root / "file.db").unlink()

        reference = root / "reference.db"
        await _worker("ingest", "--journal", str(reference), "--specs", str(count // 10))
        small = await _memory_run(reference, run_seconds, resume=False)
        big = await _memory_run(main, run_seconds, resume=True)

    resume = big["resume"]
    figures = {
        "specs": count,
        "ingest_specs_per_s": round(count / ingested["ingest_s"], 0),
        "ingest_s": ingested["ingest_s"],
        "build_specs_s": ingested["build_s"],
        "ingest_file_specs_per_s": round(count / from_file["ingest_s"], 0),
        "ingest_file_s": from_file["ingest_s"],
        "write_file_s": round(write_s, 3),
        "peak_rss_mb": big["peak_rss_mb"],
        "run_seconds": run_seconds,
        "run_creates": big["run"]["creates"],
        "run_counts": big["run"]["counts"],
        "reference_specs": count // 10,
        "reference_peak_rss_mb": small["peak_rss_mb"],
        "reference_run_creates": small["run"]["creates"],
        "resume_startup_s": resume["first_create_s"],
        "resume_open_s": resume["open_s"],
        "first_run_startup_s": big["run"]["first_create_s"],
    }
    return [entry("scale", "asyncjobs", figures, TARGET)]
