"""Several workers on one campaign in a real PostgreSQL, SIGKILLed and replaced while they run.

Three ``asyncjobs run`` processes share one campaign against the emulator (its own process, so
its record of every job outlives the workers). A random worker is SIGKILLed several times and a
new one started in its place. At the end the journal is audited against the emulator job by
job (:func:`~tests.reliability.harness.audit`): no duplicate, every spec final, exactly one
remote job per attempt; the emulator's peak running per quota key never went over the cap the
workers were given together; and the workers together were throttled no more than one worker
alone on the same campaign, but for the chance in finding each AWS service's pace.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import audit
from tests.reliability.workers import load_view, run_workers
from tests.support.cli import cli_env, finish, start_cli
from tests.support.specs import distinct_specs, write_campaign

#: Jobs long enough that kills land while jobs are claimed, created and running.
EMULATOR = ("--job-seconds", "0.5,1.5", "--seed", "11", "--create-rate", "3", "--latency", "0.1,0.4")
#: Caps for all workers together: the emulator's own quotas are higher, so only the workers'
#: shared claims keep the peak under these.
CAPS = {"bedrock": 3, "personalize": 2}
RUN_ARGS = (
    "--poll-interval", "0.3", "--lease-seconds", "5", "--output", "json",
    *(arg for key, cap in CAPS.items() for arg in ("--max-running", f"{key}={cap}")),
)  # fmt: skip
SPECS = 50
WORKERS = 3
KILLS = 4


@pytest.mark.slow
@pytest.mark.timeout(300)  # two campaigns, four processes and a database on a shared machine
def test_three_workers_killed_and_replaced(
    start_emulator: StartEmulator, workdir: Path, postgres_database: Callable[[str], str]
) -> None:
    uri = postgres_database("workers")
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(SPECS))

    # one worker alone, for the throttles: its own emulator and campaign
    solo_emulator = start_emulator(*EMULATOR)
    solo_args = ("run", str(campaign), "--journal", uri, "--campaign-name", "solo",
                 "--endpoint-url", solo_emulator.url, *RUN_ARGS)  # fmt: skip
    solo = finish(start_cli(*solo_args, cwd=workdir, env=cli_env(workdir)), timeout=120)
    assert solo.code == 0, solo
    solo_throttled = solo_emulator.stats()["throttled_total"]

    emulator = start_emulator(*EMULATOR)
    args = ("run", str(campaign), "--journal", uri, "--campaign-name", "shared",
            "--endpoint-url", emulator.url, *RUN_ARGS)  # fmt: skip
    results, landed = run_workers(args, workdir, workers=WORKERS, kills=KILLS, rng=random.Random(5))

    for result in results:  # every worker that was not killed saw the campaign end
        assert result.code == 0, result
        assert result.json()["counts"]["succeeded"] == SPECS
    assert landed >= 2, "the campaign ended before the kills"
    stats = emulator.stats()
    report = audit(anyio.run(load_view, uri, "shared"), emulator.jobs(), stats)
    assert report.problems == [], report.problems
    assert report.duplicates == 0
    assert report.lost == 0
    assert stats["jobs_total"] == SPECS
    for key, peak in stats["peak_running"].items():
        assert peak <= CAPS[key.partition(":")[0]], (key, peak)
    # the workers share one pace: together they are throttled no more than one alone. Either run
    # may, by chance, find an AWS service's pace (the slow start) without a throttle, or with one:
    # so at most one more per AWS service (Bedrock's and Personalize's creates are limited apart)
    services = {key.partition(":")[0] for key in stats["peak_running"]}
    assert services == {"bedrock", "personalize"}
    assert stats["throttled_total"] <= solo_throttled + len(services), (stats["throttled"], solo_throttled)
