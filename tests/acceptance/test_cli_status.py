"""``asyncjobs status``: counts and job rows as a table or JSON, ``--state`` and ``--query``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import MakeEmulator
from tests.support.cli import Cli, finish_async
from tests.support.specs import mixed_specs, spec, write_campaign


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
    assert run.returncode is None, await finish_async(run)

    result = await cli("status", "--journal", "c.db", "--output", "json")

    run.send_signal(signal.SIGINT)
    stopped = await finish_async(run)
    assert stopped.code == 130, stopped
    assert result.code == 0, result
    assert "read-only snapshot" in result.stderr
    assert result.json()["total"] == 5
    assert len(result.json()["jobs"]) == 5


# Enough rows to overflow the journal's page cache: the load then writes into the database itself,
# under an exclusive lock that readers wait on until it commits.
LOADED = 150_000


def readers_locked_out(db: Path) -> bool:
    """Whether a reader is kept out of ``db`` right now (a probe that does not wait)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return True
        raise
    return False


async def test_status_while_a_run_bulk_loads_a_new_campaign(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    line = spec("ID", "bedrock")
    campaign = b"".join(json.dumps({**line, "id": f"job-{i:06d}"}).encode() + b"\n" for i in range(LOADED))
    # the campaign comes on stdin and stdin stays open: the run stops mid-load, holding the journal
    run = await asyncio.create_subprocess_exec(
        *cli.argv("run", "-", "--journal", "big.db", "--endpoint-url", "http://127.0.0.1:9"),
        cwd=tmp_path,
        env=cli.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert run.stdin is not None
    try:
        run.stdin.write(campaign)
        await run.stdin.drain()
        for _ in range(2400):  # up to two minutes on a busy machine
            if run.returncode is not None or readers_locked_out(tmp_path / "big.db"):
                break
            await asyncio.sleep(0.05)
        assert run.returncode is None, await finish_async(run)
        assert readers_locked_out(tmp_path / "big.db"), "the load never locked the journal"

        result = await cli("status", "--journal", "big.db", "--output", "json")
        table = await cli("status", "--journal", "big.db", "--output", "table")
    finally:
        run.kill()
        await run.communicate()

    assert result.code == 0, result
    doc = result.json()
    loading = doc.pop("loading")
    counts = doc.pop("counts")
    assert doc == {"campaign": "big", "journal": "big.db", "total": 0, "jobs": []}  # none committed yet
    assert set(counts.values()) == {0}, counts
    assert loading["pid"] == run.pid and loading["stage"] == "inserting", loading
    assert 0 < loading["jobs"] <= LOADED, loading
    assert result.stderr.splitlines() == [
        f"asyncjobs: journal big.db is in use by another asyncjobs process (pid {run.pid});"
        " showing a read-only snapshot",
        f"asyncjobs: the campaign is being loaded into the journal by pid {run.pid}"
        f" ({loading['jobs']} jobs so far); its jobs show once the load is done",
    ], result
    assert table.code == 0, table
    assert "big" in table.stdout and "being loaded" in table.stderr, table
