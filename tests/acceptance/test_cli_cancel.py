"""``asyncjobs cancel``: unsubmitted jobs are cancelled, Bedrock jobs stopped, Personalize ones reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncjobs.journal import open_journal
from asyncjobs.model import JobSpec, Service
from tests.conftest import MakeEmulator
from tests.support.cli import Cli
from tests.support.specs import mixed_specs, write_campaign


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


async def test_cancel_before_anything_was_submitted(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    journal = await open_journal(tmp_path / "c.db")
    try:
        await journal.add_specs(
            JobSpec(s["id"], Service(s["service"]), s["request"], source=f"test:{i}")
            for i, s in enumerate(mixed_specs(5), 1)
        )
    finally:
        await journal.aclose()

    result = await cli("cancel", "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json")

    assert result.code == 0, result
    assert result.json()["counts"]["cancelled"] == 5
    assert emu.stats()["jobs_total"] == 0

    rerun = await cli("run", "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json")
    assert rerun.code == 0, rerun
    assert rerun.json()["counts"]["cancelled"] == 5
    assert emu.stats()["jobs_total"] == 0


async def test_cancel_stops_bedrock_and_reports_personalize(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(job_seconds=(60.0, 60.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(5))  # 3 Bedrock, 1 inference, 1 segment
    args = ("--journal", "c.db", "--endpoint-url", emu.url, "--output", "json")
    submitted = await cli("run", "campaign.jsonl", *args, "--no-wait", "--poll-interval", "0.5")
    assert submitted.code == 0, submitted

    result = await cli("cancel", *args)

    assert result.code == 0, result
    assert result.json()["unstoppable"] == 2
    assert "2 Personalize job(s) cannot be stopped" in result.stderr
    assert emu.stats()["requests"]["StopModelInvocationJob"] == 3

    status = await cli("status", *args, "--query", "jobs[?service=='bedrock'].state")
    assert status.code == 0, status
    assert len(status.json()) == 3
