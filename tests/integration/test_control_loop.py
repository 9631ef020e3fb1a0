"""The control loop's promises against the emulator over HTTP: a pace from the first create,
limits told apart by state rather than words, lagging lists, and learned paces kept."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import pytest

from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.model import JobState, Service
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import CREDENTIALS, MakeEmulator
from tests.integration.test_engine import run
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import bedrock_specs, personalize_specs

CREATES = ("CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob")


pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    async with await open_journal(tmp_path / "campaign.db", campaign="loop") as j:
        yield j


def create_counter(session: aioboto3.Session) -> Counter[str]:
    """Create calls per job name, as the client sends them (botocore's own event hooks)."""
    creates: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        creates[params["jobName"]] += 1

    for operation in ("CreateBatchInferenceJob", "CreateBatchSegmentJob"):
        session.events.register(f"provide-client-params.personalize.{operation}", count)
    return creates


def create_calls(stats: dict[str, Any]) -> int:
    return sum(stats["requests"].get(op, 0) for op in CREATES)


def create_throttles(stats: dict[str, Any]) -> int:
    return sum(stats["throttled"].get(op, 0) for op in CREATES)


async def test_an_unknown_pace_starts_slowly_instead_of_in_a_burst(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    """2 creates/s (burst 2), and nothing told: before the slow start, the first wave went out at
    once and 44% of the create calls of a 58-job campaign were throttled."""
    emu = await make_emulator(create_rate=2.0, job_seconds=(0.5, 1.0))
    await journal.add_specs(bedrock_specs(30))
    await run(journal, emu)
    stats = emu.stats()
    assert journal.counts()[JobState.SUCCEEDED] == 30
    assert stats["duplicate_jobs"] == 0
    throttled = create_throttles(stats)
    assert throttled <= 3, f"{throttled} of {create_calls(stats)} create calls throttled"
    (learned,) = (await journal.paces()).values()
    assert 1.0 <= learned <= 2.0, "the pace kept is one the service accepts"


async def test_a_resumed_run_starts_from_the_pace_the_journal_kept(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(create_rate=2.0, job_seconds=(0.3, 0.6))
    async with await open_journal(tmp_path / "c.db", campaign="pace") as journal:
        await journal.add_specs(bedrock_specs(16))
        await run(journal, emu)
        learned = dict(await journal.paces())
    assert set(learned) == {"bedrock:us-east-1"}
    before = create_throttles(emu.stats())
    async with await open_journal(tmp_path / "c.db") as journal:
        await journal.add_specs(bedrock_specs(12, prefix="more"))
        campaign = await run(journal, emu)
        assert journal.counts()[JobState.SUCCEEDED] == 28
    assert campaign.progress().create_rates["bedrock"] == pytest.approx(learned["bedrock:us-east-1"])
    assert create_throttles(emu.stats()) - before == 0, "no slow start and no burst: the pace was known"


async def test_personalize_limits_are_told_apart_by_state_whatever_the_text(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    """Quota 3 per kind, 2 creates/s, jobs long enough that the quota binds, the engine told
    neither limit. With the service's usual texts and with one neutral text for both limits:
    every job succeeds, both keys fill to 3 and never beyond, no job needs more than 3 create
    calls, and the neutral text costs at most half again the makespan."""
    makespans = {}
    for label, message in (("distinct", None), ("neutral", "Limit exceeded")):
        emu = await make_emulator(
            create_rate=2.0, personalize_max_running=3, job_seconds=(3.0, 3.5), limit_message=message
        )
        async with await open_journal(tmp_path / f"{label}.db", campaign=label) as journal:
            await journal.add_specs(
                personalize_specs(18) + personalize_specs(18, Service.PERSONALIZE_SEGMENT, "s")
            )
            session = aioboto3.Session(**CREDENTIALS)
            creates = create_counter(session)
            campaign = Campaign(
                journal,
                session=session,
                endpoint_url=emu.url,
                region="us-east-1",
                settings=Settings(**EMULATOR_RUN),
            )
            started = time.monotonic()
            with anyio.fail_after(180):
                await campaign.run()
            makespans[label] = time.monotonic() - started
            assert journal.counts()[JobState.SUCCEEDED] == 36, label
        stats = emu.stats()
        assert stats["duplicate_jobs"] == 0
        assert stats["peak_running"] == {
            "personalize:us-east-1:batch-inference": 3,
            "personalize:us-east-1:batch-segment": 3,
        }, label
        assert sum(creates.values()) == create_calls(stats), "every create call was counted"
        assert len(creates) == 36 and max(creates.values()) <= 3, (label, creates)
    assert makespans["neutral"] <= 1.5 * makespans["distinct"], makespans


async def test_lists_that_lag_lose_nothing_and_cost_no_get_per_job(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    """Lists show every job as it was 2 s ago and leave out younger jobs: the campaign still
    finishes exactly once, without falling back to one Get per job."""
    emu = await make_emulator(list_lag=2.0, job_seconds=(0.5, 1.0))
    await journal.add_specs(bedrock_specs(20) + personalize_specs(10))
    await run(journal, emu, create_rate=10.0, max_running={"bedrock": 8, "personalize": 4}, limit=120)
    stats = emu.stats()
    assert journal.counts()[JobState.SUCCEEDED] == 30
    assert stats["jobs_total"] == 30 and stats["duplicate_jobs"] == 0
    gets = stats["requests"].get("GetModelInvocationJob", 0) + stats["requests"].get(
        "DescribeBatchInferenceJob", 0
    )
    assert gets <= 3, f"{gets} Get/Describe calls for 30 jobs"
