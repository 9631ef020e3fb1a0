"""``asyncjobs demo``: runs a sample campaign on its in-process emulator, and resumes after Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

import anyio
import pytest

from asyncjobs import demo
from tests.support.cli import Cli, Result, finish_async, run_at_point

#: The records example's shard jobs, beside the --jobs of the sample campaign.
SHARDS = demo.PROMPTS // demo.RECORDS_PER_JOB


async def test_demo_runs_and_starts_over(tmp_path: Path) -> None:
    cli = Cli(tmp_path)

    result = await cli("demo", "--dir", "d", "--jobs", "20", "--output", "json")

    assert result.code == 0, result
    doc = result.json()
    assert doc["total"] == 20 + SHARDS
    assert sum(doc["counts"][s] for s in ("succeeded", "partial", "failed")) == 20 + SHARDS
    assert "duplicate jobs 0" in result.stderr
    assert "asyncjobs status --journal d/journal.db" in result.stderr
    files = {p.name for p in (tmp_path / "d").iterdir()}
    assert files >= {"campaign.jsonl", "prompts.jsonl", "journal.db", "emulator-state.json"}
    assert doc["uploads"]["shards_uploaded"] == SHARDS
    results = (tmp_path / "d" / "results" / "prompts.jsonl").read_text().splitlines()
    assert len(results) == demo.PROMPTS  # one result per prompt
    assert "results of 'prompts'" in result.stderr

    again = await cli("demo", "--dir", "d", "--jobs", "20", "--output", "json")
    assert again.code == 0, again
    assert "starting a new one" in again.stderr


async def test_demo_interrupted_then_resumed(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    process = await cli.start("demo", "--dir", "d", "--jobs", "60", "--output", "json")
    for _ in range(400):  # until the campaign is journaled and running
        if (tmp_path / "d" / "emulator-state.json").exists():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    process.send_signal(signal.SIGINT)
    first = await finish_async(process)
    assert first.code == 130, first
    assert "Resume with: asyncjobs demo --dir d" in first.stderr

    second = await cli("demo", "--dir", "d", "--output", "json")

    assert second.code == 0, second
    assert "resuming the demo campaign" in second.stderr
    assert second.json()["total"] == 60 + SHARDS
    assert second.json()["counts"]["pending"] == 0
    assert "duplicate jobs 0" in second.stderr


async def test_a_demo_interrupted_after_a_records_job_ended_resumes_with_every_result(tmp_path: Path) -> None:
    """The emulator's saved state keeps its S3: the outputs a records job wrote before Ctrl-C are
    still there after the resume (they were lost, and their prompts shown "missing", before)."""
    # SIGINT once the first shard job that ended well has its outputs found and journaled
    args = ("demo", "--dir", "d", "--jobs", "20", "--output", "json")
    first = await anyio.to_thread.run_sync(
        lambda: run_at_point("after:collect:1", *args, cwd=tmp_path, signum="INT")
    )
    assert first.code == 130, first
    assert not (tmp_path / "d" / "results").exists()  # the results are written when the campaign ends

    second = await Cli(tmp_path)("demo", "--dir", "d", "--output", "json")

    assert second.code == 0, second
    assert "resuming the demo campaign" in second.stderr
    results = [
        json.loads(line) for line in (tmp_path / "d" / "results" / "prompts.jsonl").read_text().splitlines()
    ]
    assert len(results) == demo.PROMPTS
    missing = [
        r for r in results if r.get("error", {}).get("errorMessage") == "missing from the job's output"
    ]
    assert missing == []
    assert second.json()["uploads"]["bytes_sent"] == 0  # the shards were uploaded before the interrupt
    assert "duplicate jobs 0" in second.stderr


async def test_demo_with_an_unreadable_emulator_state_starts_over(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    state = tmp_path / "d" / "emulator-state.json"
    process = await cli.start("demo", "--dir", "d", "--jobs", "20", "--output", "json")
    for _ in range(400):
        if state.exists():
            break
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert (await finish_async(process)).code == 130
    state.write_text(state.read_text()[:100], encoding="utf-8")  # cut short, as by a full disk

    again = await cli("demo", "--dir", "d", "--jobs", "20", "--output", "json")

    assert again.code == 0, again
    assert "the emulator's saved state could not be read; starting a new demo" in again.stderr
    assert again.json()["total"] == 20 + SHARDS
    assert again.json()["counts"]["pending"] == 0
    assert "duplicate jobs 0" in again.stderr


async def run_demo_with_umask(cli: Cli, umask: int, *args: str) -> Result:
    process = await asyncio.create_subprocess_exec(
        *cli.argv("demo", *args),
        cwd=cli.cwd,
        env=cli.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        umask=umask,
    )
    return await finish_async(process)


async def test_demo_folder_and_files_are_private_under_umask_0(tmp_path: Path) -> None:
    result = await run_demo_with_umask(Cli(tmp_path), 0, "--dir", "d", "--jobs", "4", "--output", "json")

    assert result.code == 0, result
    folder = tmp_path / "d"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in folder.iterdir()}
    assert set(modes) >= {"campaign.jsonl", "journal.db", "journal.db.lock", "emulator-state.json"}, modes
    assert modes.pop("results") == 0o700
    assert modes == dict.fromkeys(modes, 0o600), modes
    results = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in (folder / "results").iterdir()}
    assert results == {"prompts.jsonl": 0o600}


async def test_demo_does_not_write_through_planted_links(tmp_path: Path) -> None:
    # links left in the demo folder (say while it was open to others) at the names the demo writes
    folder = tmp_path / "d"
    folder.mkdir(mode=0o700)
    victims = {}
    for name in ("emulator-state.json.tmp", "campaign.jsonl"):  # the state's temp name was fixed
        victim = tmp_path / f"victim-of-{name}"
        victim.write_text("precious\n")
        (folder / name).symlink_to(victim)
        victims[name] = victim

    result = await Cli(tmp_path)("demo", "--dir", "d", "--jobs", "4", "--output", "json")

    assert result.code == 0, result
    assert {v.read_text() for v in victims.values()} == {"precious\n"}
    assert [p.name for p in folder.iterdir() if p.is_symlink()] == []  # replaced or removed
    assert (folder / "campaign.jsonl").read_text().count("\n") == 4 + 1  # and the records line
    assert result.json()["total"] == 4 + SHARDS


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user (chown) needs root")
async def test_demo_refuses_a_folder_of_another_user(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    os.chown(folder, 65534, 65534)

    result = await Cli(tmp_path)("demo", "--dir", "d", "--jobs", "4", "--output", "json")

    assert result.code == 2, result
    assert result.stderr.splitlines() == [
        f"asyncjobs: error: d: refusing to use this demo folder: it is owned by uid 65534, not by you"
        f" (uid {os.geteuid()}); choose another --dir"
    ], result
    assert list(folder.iterdir()) == []
