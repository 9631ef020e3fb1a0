"""A run that a fatal error ends still says how far it got: the error carries the run's summary."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from asyncjobs.errors import Fatal
from asyncjobs.journal import open_journal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import MakeEmulator
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import bedrock_specs

pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment


async def test_credentials_that_expire_mid_run_end_it_with_a_summary(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    # two requests go through, then every request is refused as with expired credentials
    emu = await make_emulator(auth_fault="expired-token", auth_fault_after=2, job_seconds=(30.0, 30.0))
    async with await open_journal(tmp_path / "campaign.db", campaign="halted") as journal:
        await journal.add_specs(bedrock_specs(6))
        campaign = Campaign(
            journal,
            endpoint_url=emu.url,
            region="us-east-1",
            settings=Settings(**{**EMULATOR_RUN, "max_inflight_creates": 1}),
        )
        with anyio.fail_after(60), pytest.raises(Fatal) as raised:
            await campaign.run()
        summary = raised.value.summary
        assert raised.value.code == "ExpiredTokenException"
        assert summary is not None
        created = emu.stats()["jobs_total"]
        assert 1 <= created <= 2, "at most the two requests let through created jobs"
        assert summary.creates == created
        assert summary.counts == journal.counts()
        assert summary.counts[JobState.SUBMITTED] + summary.counts[JobState.RUNNING] == created
        assert summary.counts[JobState.PENDING] == 6 - created, "nothing is left claimed"
        assert (summary.campaign, summary.journal, summary.interrupted) == ("halted", journal.path, False)
