"""``asyncjobs demo``: runs a sample campaign on its in-process emulator, and resumes after Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.acceptance.clitools import Cli, finish


async def test_demo_runs_and_starts_over(tmp_path: Path) -> None:
    cli = Cli(tmp_path)

    result = await cli("demo", "--dir", "d", "--jobs", "20", "--output", "json")

    assert result.code == 0, result
    doc = result.json()
    assert doc["total"] == 20
    assert sum(doc["counts"][s] for s in ("succeeded", "partial", "failed")) == 20
    assert "duplicate jobs 0" in result.stderr
    assert "asyncjobs status --journal d/journal.db" in result.stderr
    files = {p.name for p in (tmp_path / "d").iterdir()}
    assert files >= {"campaign.jsonl", "journal.db", "emulator-state.json"}

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
    first = await finish(process)
    assert first.code == 130, first
    assert "Resume with: asyncjobs demo --dir d" in first.stderr

    second = await cli("demo", "--dir", "d", "--output", "json")

    assert second.code == 0, second
    assert "resuming the demo campaign" in second.stderr
    assert second.json()["total"] == 60
    assert second.json()["counts"]["pending"] == 0
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
    assert (await finish(process)).code == 130
    state.write_text(state.read_text()[:100], encoding="utf-8")  # cut short, as by a full disk

    again = await cli("demo", "--dir", "d", "--jobs", "20", "--output", "json")

    assert again.code == 0, again
    assert "the emulator's saved state could not be read; starting a new demo" in again.stderr
    assert again.json()["total"] == 20
    assert again.json()["counts"]["pending"] == 0
    assert "duplicate jobs 0" in again.stderr
