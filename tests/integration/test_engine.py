"""The engine against the emulator over HTTP, with the real aioboto3 clients and a real SQLite file.

Each test sets up one of the situations the engine issue names (throttling storms,
quota saturation, a quota lower than believed, failures and resubmission,
cancellation, adopted and conflicting Personalize jobs) and checks the outcome on
both sides: the journal's states and the emulator's own counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from asyncjobs.emulator import Emulator
from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.model import JobSpec, JobState, Service
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings
from tests.conftest import (
    MODEL,
    MakeEmulator,
    aws_client,
    bedrock_job,
    personalize_job,
)
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import OTHER_MODEL, bedrock_specs, personalize_specs

pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    async with await open_journal(tmp_path / "campaign.db", campaign="itest") as j:
        yield j


async def run(journal: SQLiteJournal, emu: Emulator, *, limit: float = 60, **settings: Any) -> Campaign:
    campaign = Campaign(
        journal, endpoint_url=emu.url, region="us-east-1", settings=Settings(**{**EMULATOR_RUN, **settings})
    )
    with anyio.fail_after(limit):
        await campaign.run()
    return campaign


async def test_mixed_campaign_completes_exactly_once(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(bedrock_max_running=4, personalize_max_running=2)
    await journal.add_specs(
        bedrock_specs(8)
        + bedrock_specs(8, OTHER_MODEL, "o")
        + personalize_specs(5)
        + personalize_specs(5, Service.PERSONALIZE_SEGMENT, "s")
    )
    campaign = await run(journal, emu, max_running={"bedrock": 4, "personalize": 2})
    stats = emu.stats()
    assert journal.counts()[JobState.SUCCEEDED] == 26
    assert stats["jobs_total"] == 26 and stats["duplicate_jobs"] == 0
    assert stats["quota_rejections_total"] == 0, "the caps given were respected"
    assert max(stats["peak_running"].values()) <= 4
    # statuses come from List sweeps, not one Get per job
    requests = stats["requests"]
    gets = requests.get("GetModelInvocationJob", 0) + requests.get("DescribeBatchInferenceJob", 0)
    assert gets <= 2
    assert campaign.progress().reads < 26 * 3


async def test_throttling_storm_is_absorbed_and_counted(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(create_rate=4.0)
    await journal.add_specs(bedrock_specs(24))
    with capture_logs() as logs:
        campaign = await run(journal, emu)
    stats = emu.stats()
    assert journal.counts()[JobState.SUCCEEDED] == 24
    assert stats["duplicate_jobs"] == 0 and stats["jobs_total"] == 24
    throttled = sum(e["event"] == "asyncjobs.create.throttled" for e in logs)
    assert throttled == stats["throttled"]["CreateModelInvocationJob"] > 0
    assert campaign.progress().throttled == throttled
    rate = campaign.progress().create_rate
    assert rate is not None and rate <= 4.0 * 1.5, "the pace settled near what the service accepts"


async def test_a_ceiling_keeps_creates_under_the_limit(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(create_rate=5.0)
    await journal.add_specs(bedrock_specs(15))
    await run(journal, emu, create_rate=4.0)
    assert emu.stats()["throttled_total"] == 0
    assert journal.counts()[JobState.SUCCEEDED] == 15


async def test_quota_lower_than_believed_waits_for_slots(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(bedrock_max_running=3, personalize_max_running=2)
    await journal.add_specs(bedrock_specs(12) + personalize_specs(8))
    with capture_logs() as logs:
        # believes the AWS defaults (20 per model, 5 per kind); the pace is given, so creates come
        # fast enough to meet both quotas
        await run(journal, emu, create_rate=50.0)
    stats = emu.stats()
    assert journal.counts()[JobState.SUCCEEDED] == 20
    assert stats["duplicate_jobs"] == 0
    assert stats["peak_running"][f"bedrock:{MODEL}"] == 3
    assert stats["peak_running"]["personalize:us-east-1:batch-inference"] == 2
    rejections = stats["quota_rejections_total"]
    assert rejections > 0
    assert rejections <= 17 + 3 + 6, "one burst of rejections, then the cap is lowered: no retry storm"
    keys = {e["key"] for e in logs if e["event"] == "asyncjobs.capacity.exceeded"}
    assert keys == {f"bedrock:{MODEL}", "personalize:us-east-1:batch-inference"}
    assert not any(e["event"] == "asyncjobs.create.throttled" for e in logs), (
        "Personalize quota errors were not mistaken for throttling"
    )


async def test_personalize_rate_limit_is_told_apart_from_its_quota(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(create_rate=3.0, personalize_max_running=5)
    await journal.add_specs(personalize_specs(12))
    with capture_logs() as logs:
        await run(journal, emu)
    assert journal.counts()[JobState.SUCCEEDED] == 12
    assert emu.stats()["throttled"]["CreateBatchInferenceJob"] > 0
    # met as a limit of the pace (the refused create was sent again after a silence) ...
    assert any(e["event"] == "asyncjobs.create.limited" for e in logs)
    # ... and never taken for a full quota
    assert not any(e["event"] == "asyncjobs.capacity.exceeded" for e in logs)


async def test_failures_are_final_or_resubmitted(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(fail_rate=0.5, seed=3)
    async with await open_journal(tmp_path / "a.db", campaign="nofix") as journal:
        await journal.add_specs(bedrock_specs(10))
        await run(journal, emu)
        failed = journal.counts()[JobState.FAILED]
        assert 0 < failed < 10
        (job, *_) = [j async for j in journal.jobs([JobState.FAILED])]
        assert job.last_error, "the service's failure message is kept"
    async with await open_journal(tmp_path / "b.db", campaign="resub") as journal:
        await journal.add_specs(bedrock_specs(10))
        await run(journal, emu, resubmit_failed=4)
        jobs = [j async for j in journal.jobs()]
        assert any(j.attempt > 1 for j in jobs)
        for job in jobs:
            if job.attempt > 1:
                assert job.job_name.endswith(f"-r{job.attempt}")
    names = [j["jobName"] for j in emu.jobs() if j["jobName"].startswith("resub-")]
    assert len(names) == len(set(names)) == sum(j.attempt for j in jobs)
    assert emu.stats()["duplicate_jobs"] == 0


async def test_cancel_stops_bedrock_and_reports_personalize(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator(job_seconds=(30.0, 30.0))
    await journal.add_specs(bedrock_specs(4) + personalize_specs(2) + bedrock_specs(6, OTHER_MODEL, "o"))
    stop = anyio.Event()

    def on_event(event: CampaignEvent) -> None:
        counts = journal.counts()
        if event.name == "job.submitted" and counts[JobState.SUBMITTED] + counts[JobState.RUNNING] >= 6:
            stop.set()

    campaign = Campaign(
        journal,
        endpoint_url=emu.url,
        region="us-east-1",
        settings=Settings(max_running={MODEL: 4, OTHER_MODEL: 1, "personalize": 2}, **EMULATOR_RUN),
        on_event=on_event,
    )
    with anyio.fail_after(30):
        await campaign.run(stop=stop)
    summary = await Campaign(journal, endpoint_url=emu.url, region="us-east-1").cancel()
    assert summary.unstoppable == 2
    assert summary.counts[JobState.CANCELLED] == journal.counts()[JobState.CANCELLED] > 0
    assert summary.counts[JobState.PENDING] == 0
    await anyio.sleep(0.3)
    statuses = {j["jobName"]: j["status"] for j in emu.jobs()}
    bedrock = [s for n, s in statuses.items() if not n.startswith("itest-p")]
    assert bedrock and all(s in ("Stopping", "Stopped") for s in bedrock)
    assert emu.stats()["requests"]["StopModelInvocationJob"] == len(bedrock)


async def _precreate_personalize(emu: Emulator, name: str, input_path: str) -> str:
    async with aws_client("personalize", emu.url) as client:
        request = personalize_job(name)
        request["jobInput"] = {"s3DataSource": {"path": input_path}}
        response = await client.create_batch_inference_job(**request)
        return str(response["batchInferenceJobArn"])


async def test_personalize_job_of_ours_is_adopted(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator()
    await journal.add_specs(personalize_specs(3))
    # a previous process created p1 and died before journaling anything
    arn = await _precreate_personalize(emu, "itest-p1", "s3://input-bucket/p1/")
    await run(journal, emu)
    job = await journal.get("p1")
    assert job is not None and job.state is JobState.SUCCEEDED and job.arn == arn
    assert any(e.detail == "adopted" for e in await journal.events("p1"))
    assert emu.stats()["jobs_total"] == 3 and emu.stats()["already_exists"] == 1


async def test_conflicting_personalize_job_is_reported(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator()
    await journal.add_specs(personalize_specs(2))
    await _precreate_personalize(emu, "itest-p0", "s3://somebody-else/data/")
    await run(journal, emu)
    job = await journal.get("p0")
    assert job is not None and job.state is JobState.REJECTED
    assert job.last_error and job.last_error.startswith("conflict:") and "itest-p0" in job.last_error
    assert journal.counts()[JobState.SUCCEEDED] == 1
    assert emu.stats()["jobs_total"] == 2


async def test_rejected_by_the_service_is_final_with_its_message(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu = await make_emulator()
    await journal.add_specs(bedrock_specs(2))
    # a spec that passes client-side checks but not the service: an unknown model id shape
    bad = bedrock_job(modelId="not a model!")
    del bad["jobName"]
    await journal.add_specs([JobSpec("bad", Service.BEDROCK, bad)])
    await run(journal, emu)
    job = await journal.get("bad")
    assert job is not None and job.state is JobState.REJECTED
    assert job.last_error and job.last_error.startswith("ValidationException:")
    assert journal.counts()[JobState.SUCCEEDED] == 2
