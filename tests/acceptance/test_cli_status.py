"""``asyncjobs status``: counts and job rows as a table or JSON, ``--state`` and ``--query``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.acceptance.clitools import Cli, finish, mixed_specs, write_campaign
from tests.conftest import MakeEmulator


@pytest.fixture
async def finished(tmp_path: Path, make_emulator: MakeEmulator) -> Cli:
    """A journal ``c.db`` whose campaign ran to the end: 6 jobs, all failed."""
    emu = await make_emulator(fail_rate=1.0)
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(6))
    cli = Cli(tmp_path)
    result = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.5"
    )
    assert result.code == 1, result
    return cli


async def test_status_json(finished: Cli) -> None:
    result = await finished("status", "--journal", "c.db", "--output", "json")

    assert result.code == 0, result
    doc = result.json()
    assert doc["campaign"] == "c"
    assert doc["total"] == 6
    assert doc["counts"]["failed"] == 6
    assert len(doc["jobs"]) == 6
    job = doc["jobs"][0]
    assert set(job) >= {"id", "service", "state", "arn", "attempts", "last_error"}
    assert job["id"] == "job-000"
    assert job["service"] == "bedrock"
    assert job["arn"].startswith("arn:aws:bedrock:us-east-1:")
    assert job["attempts"] == 1
    assert job["last_error"]


async def test_status_query_and_state_filter(finished: Cli) -> None:
    failed = await finished("status", "--journal", "c.db", "--output", "json", "--query", "counts.failed")
    assert failed.code == 0, failed
    assert failed.stdout.strip() == "6"

    ids = await finished(
        "--query", "jobs[].id", "status", "--journal", "c.db", "--state", "failed", "--output", "json"
    )
    assert ids.json() == [f"job-{i:03d}" for i in range(6)]

    none = await finished("status", "--journal", "c.db", "--state", "succeeded,running", "--output", "json")
    assert none.json()["jobs"] == []
    assert none.json()["total"] == 6  # counts stay whole; the filter is on rows

    scalar_table = await finished(
        "status", "--journal", "c.db", "--query", "counts.failed", "--output", "table"
    )
    assert scalar_table.stdout.strip() == "6"


async def test_status_table(finished: Cli) -> None:
    result = await finished("status", "--journal", "c.db", "--output", "table")

    assert result.code == 0, result
    for text in ("failed", "job-000", "personalize-segment", "arn:aws:bedrock", "attempts", "last error"):
        assert text in result.stdout


async def test_status_of_a_missing_journal(tmp_path: Path) -> None:
    result = await Cli(tmp_path)("status", "--journal", "nothing.db")

    assert result.code == 2
    assert result.stderr.strip() == "asyncjobs: error: nothing.db: no such journal"
    assert not (tmp_path / "nothing.db").exists()


async def test_status_while_a_run_holds_the_journal(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(job_seconds=(30.0, 30.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(5))
    cli = Cli(tmp_path)
    run = await cli.start("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url)
    for _ in range(400):
        if emu.stats()["jobs_total"] == 5 or run.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert run.returncode is None, await finish(run)

    result = await cli("status", "--journal", "c.db", "--output", "json")

    run.send_signal(signal.SIGINT)
    stopped = await finish(run)
    assert stopped.code == 130, stopped
    assert result.code == 0, result
    assert "read-only snapshot" in result.stderr
    assert result.json()["total"] == 5
    assert len(result.json()["jobs"]) == 5
