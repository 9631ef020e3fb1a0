"""Each campaign event is logged and handed to subscribers by one call, with the same fields."""

from __future__ import annotations

from pathlib import Path

import anyio
from structlog.testing import capture_logs

from asyncjobs.journal import open_journal
from asyncjobs.model import JobSpec, JobState, Service
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings
from tests.fakes import FakeService
from tests.support.presets import FAKE_SERVICE_RUN


async def test_a_retried_create_tells_its_retry_apart_from_the_jobs_attempt(tmp_path: Path) -> None:
    # the first create of each job is created, then its connection reset: a transient error
    fake = FakeService(error_after_create_next=2)
    events: list[CampaignEvent] = []
    async with await open_journal(tmp_path / "c.db", campaign="camp") as journal:
        await journal.add_specs(
            [JobSpec(f"job{i}", Service.BEDROCK, {"modelId": "m1", "roleArn": "r"}) for i in range(2)]
        )
        campaign = Campaign(
            journal,
            adapters={Service.BEDROCK: fake},
            settings=Settings(**FAKE_SERVICE_RUN),
            on_event=events.append,
        )
        with capture_logs() as logs, anyio.fail_after(30):
            await campaign.run()
    retries = [e for e in events if e.name == "create.retry"]
    assert sorted((e.job_id, e.attempt, e.retry) for e in retries) == [("job0", 1, 1), ("job1", 1, 1)]
    assert all(e.detail and "connection reset" in e.detail for e in retries)
    logged = [e for e in logs if e["event"] == "asyncjobs.create.retry"]
    assert sorted((e["job_id"], e["attempt"], e["retry"]) for e in logged) == [("job0", 1, 1), ("job1", 1, 1)]
    # the same events, the same names, in the same order
    assert [e.name for e in events] == [
        e["event"].removeprefix("asyncjobs.") for e in logs if e["event"].startswith("asyncjobs.")
    ]
    finals = [e for e in events if e.name == "job.final"]
    assert {(e.job_id, e.state, e.service) for e in finals} == {
        ("job0", JobState.SUCCEEDED, "bedrock"),
        ("job1", JobState.SUCCEEDED, "bedrock"),
    }
