"""The scheduler against a fake adapter (the seam it owns) and a real SQLite journal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.journal.base import Change
from asyncjobs.lifecycle import Event
from asyncjobs.model import Job, JobSpec, JobState, Service
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings
from tests.fakes import FakeService
from tests.support.presets import FAKE_SERVICE_RUN
from tests.support.specs import minimal_specs


@pytest.fixture
async def journal(tmp_path: Path) -> SQLiteJournal:
    j = await open_journal(tmp_path / "c.db", campaign="camp")
    yield j  # type: ignore[misc]
    await j.aclose()


async def run(journal: SQLiteJournal, fake: FakeService, **settings: object) -> Campaign:
    campaign = Campaign(
        journal, adapters={Service.BEDROCK: fake}, settings=Settings(**{**FAKE_SERVICE_RUN, **settings})
    )
    with anyio.fail_after(30):
        await campaign.run()
    return campaign


async def test_runs_every_job_to_success_once(journal: SQLiteJournal) -> None:
    fake = FakeService()
    await journal.add_specs(minimal_specs(25))
    campaign = await run(journal, fake)
    assert journal.counts()[JobState.SUCCEEDED] == 25
    assert max(fake.names().values()) == 1 and len(fake.jobs) == 25
    assert campaign.progress().creates == 25


async def test_never_exceeds_the_running_cap(journal: SQLiteJournal) -> None:
    fake = FakeService(duration=0.05)
    await journal.add_specs(minimal_specs(30))
    await run(journal, fake, max_running={"m1": 4})
    assert fake.peak_running <= 4
    assert journal.counts()[JobState.SUCCEEDED] == 30


async def test_a_quota_lower_than_believed_waits_instead_of_failing(journal: SQLiteJournal) -> None:
    fake = FakeService(max_running=3, duration=0.05)
    await journal.add_specs(minimal_specs(20))
    with capture_logs() as logs:
        await run(journal, fake)
    assert journal.counts()[JobState.SUCCEEDED] == 20
    exceeded = [e for e in logs if e["event"] == "asyncjobs.capacity.exceeded"]
    assert exceeded, "the service's quota error was seen"
    assert len(exceeded) < 20, "no retry storm"
    assert fake.peak_running <= 3


async def test_throttles_are_retried_and_counted(journal: SQLiteJournal) -> None:
    fake = FakeService(throttle_next=4)
    await journal.add_specs(minimal_specs(5))
    with capture_logs() as logs:
        campaign = await run(journal, fake, create_rate=50.0)
    assert journal.counts()[JobState.SUCCEEDED] == 5
    assert campaign.progress().throttled == 4
    assert sum(e["event"] == "asyncjobs.create.throttled" for e in logs) == 4


async def test_ambiguous_create_is_not_duplicated(journal: SQLiteJournal) -> None:
    fake = FakeService(error_after_create_next=3)
    await journal.add_specs(minimal_specs(3))
    await run(journal, fake)
    assert journal.counts()[JobState.SUCCEEDED] == 3
    assert len(fake.jobs) == 3
    retries = [e for e in await journal.events() if e.event == "retry"]
    assert len(retries) == 3 and all("connection reset" in (e.detail or "") for e in retries)


async def test_rejected_specs_are_final_with_the_message(journal: SQLiteJournal) -> None:
    fake = FakeService(reject_names={"camp-job1"})
    await journal.add_specs(minimal_specs(3))
    await run(journal, fake)
    job = await journal.get("job1")
    assert job is not None and job.state is JobState.REJECTED
    assert job.last_error == "ValidationException: bad request"


async def test_failed_jobs_are_resubmitted_with_a_new_name_and_token(journal: SQLiteJournal) -> None:
    fake = FakeService(fail_first={"job0"})
    await journal.add_specs(minimal_specs(2))
    await run(journal, fake, resubmit_failed=1)
    job = await journal.get("job0")
    assert job is not None and job.state is JobState.SUCCEEDED and job.attempt == 2
    assert sorted(fake.names()) == ["camp-job0", "camp-job0-r2", "camp-job1"]


class SlowResubmissions:
    """The journal, with every commit that resubmits a job delayed well past the run's watcher
    (which looks every 0.2 s): a failure and its resubmission committed apart are seen apart."""

    def __init__(self, journal: SQLiteJournal) -> None:
        self._journal = journal

    def __getattr__(self, name: str) -> object:
        return getattr(self._journal, name)

    async def transition(self, job: Job, event: Event, **kwargs: Any) -> Job:
        if event is Event.RESUBMIT:
            await anyio.sleep(0.6)
        return await self._journal.transition(job, event, **kwargs)

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        if any(c.event is Event.RESUBMIT for c in changes):
            await anyio.sleep(0.6)
        return await self._journal.transition_many(changes)


async def test_a_run_ends_only_after_its_last_job_is_resubmitted_and_final(journal: SQLiteJournal) -> None:
    """The campaign's last job fails; its resubmission must run to the end before the run does."""
    fake = FakeService(fail_first={"job3"})
    await journal.add_specs(minimal_specs(4))
    campaign = Campaign(
        SlowResubmissions(journal),  # type: ignore[arg-type]
        adapters={Service.BEDROCK: fake},
        settings=Settings(**{**FAKE_SERVICE_RUN, "max_running": {"m1": 1}, "resubmit_failed": 1}),
    )
    with anyio.fail_after(30):
        summary = await campaign.run()
    assert summary.counts.done and summary.ok
    assert summary.counts[JobState.SUCCEEDED] == 4
    job3 = await journal.get("job3")
    assert job3 is not None and (job3.state, job3.attempt) == (JobState.SUCCEEDED, 2)
    assert sorted(fake.names()) == ["camp-job0", "camp-job1", "camp-job2", "camp-job3", "camp-job3-r2"]
    steps = [(e.event, e.to_state) for e in await journal.events("job3")]
    failed_at = steps.index(("observe_failed", "failed"))
    assert steps[failed_at + 1] == ("resubmit", "pending"), "the resubmission is the failure's next step"


async def test_failed_jobs_stay_failed_without_resubmission(journal: SQLiteJournal) -> None:
    fake = FakeService(fail_first={"job0"})
    await journal.add_specs(minimal_specs(2))
    campaign = await run(journal, fake)
    assert journal.counts()[JobState.FAILED] == 1
    assert not campaign._summary(interrupted=False).ok


async def died_after_create(path: Path, fake: FakeService, campaign: list[JobSpec]) -> None:
    """A process journaled its intent for the first job, created it, and died before the ARN."""
    async with await open_journal(path, campaign="camp") as journal:
        await journal.add_specs(campaign)
        (job,) = await journal.pending("bedrock:m1", 1)
        job = await journal.transition(job, Event.CLAIM)
        await fake.create(job)


async def test_resume_reconciles_submitting_jobs_by_repeating_the_token(tmp_path: Path) -> None:
    fake = FakeService()
    await died_after_create(tmp_path / "r.db", fake, minimal_specs(4))
    async with await open_journal(tmp_path / "r.db") as journal:
        await run(journal, fake)
        assert journal.counts()[JobState.SUCCEEDED] == 4
    assert len(fake.jobs) == 4 and max(fake.names().values()) == 1


async def test_personalize_style_names_are_adopted(tmp_path: Path) -> None:
    fake = FakeService(by_token=False)
    await died_after_create(tmp_path / "p.db", fake, minimal_specs(3))
    async with await open_journal(tmp_path / "p.db") as journal:
        await run(journal, fake)
        assert journal.counts()[JobState.SUCCEEDED] == 3
        adopted = [e for e in await journal.events("job0") if e.detail == "adopted"]
        assert len(adopted) == 1
    assert len(fake.jobs) == 3


async def test_stop_event_leaves_the_campaign_resumable(journal: SQLiteJournal) -> None:
    fake = FakeService(duration=0.2)
    await journal.add_specs(minimal_specs(40))
    stop = anyio.Event()
    submitted: list[CampaignEvent] = []

    def on_event(event: CampaignEvent) -> None:
        if event.name == "job.submitted":
            submitted.append(event)
            if len(submitted) == 5:
                stop.set()

    campaign = Campaign(
        journal,
        adapters={Service.BEDROCK: fake},
        settings=Settings(**{**FAKE_SERVICE_RUN, "create_rate": 50.0}),
        on_event=on_event,
    )
    summary = await campaign.run(stop=stop)
    assert summary.interrupted
    assert journal.counts()[JobState.PENDING] > 0
    assert journal.counts()[JobState.SUBMITTING] == 0
    await run(journal, fake)
    assert journal.counts()[JobState.SUCCEEDED] == 40
    assert len(fake.jobs) == 40


async def test_cancel_stops_remote_jobs_and_cancels_the_rest(journal: SQLiteJournal) -> None:
    fake = FakeService(duration=60)
    await journal.add_specs(minimal_specs(10))
    stop = anyio.Event()

    def on_event(event: CampaignEvent) -> None:
        if journal.counts()[JobState.SUBMITTED] + journal.counts()[JobState.RUNNING] == 3:
            stop.set()

    campaign = Campaign(
        journal,
        adapters={Service.BEDROCK: fake},
        settings=Settings(max_running={"m1": 3}, **FAKE_SERVICE_RUN),
        on_event=on_event,
    )
    with anyio.fail_after(10):
        await campaign.run(stop=stop)
    assert journal.counts()[JobState.PENDING] == 7
    summary = await Campaign(journal, adapters={Service.BEDROCK: fake}).cancel()
    assert summary.counts[JobState.CANCELLED] == 7
    assert fake.calls["stop"] == 3 and all(j.stopped for j in fake.jobs.values())


async def test_events_are_available_as_an_async_iterator(journal: SQLiteJournal) -> None:
    await journal.add_specs(minimal_specs(3))
    campaign = Campaign(
        journal, adapters={Service.BEDROCK: FakeService()}, settings=Settings(**FAKE_SERVICE_RUN)
    )
    seen: list[CampaignEvent] = []

    async def consume() -> None:
        async for event in campaign.subscribe():
            seen.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await campaign.run()
    assert sum(e.name == "job.final" for e in seen) == 3
    assert {e.job_id for e in seen if e.name == "job.submitted"} == {"job0", "job1", "job2"}


@pytest.mark.parametrize(
    "message",
    [
        "Rate exceeded: too many requests per second",
        "The limit of 5 active batch inference jobs (CREATE PENDING or CREATE IN_PROGRESS) has been reached",
        "Limit exceeded",
    ],
)
def test_personalize_limit_exceeded_is_never_told_apart_by_its_words(message: str) -> None:
    from botocore.exceptions import ClientError

    from asyncjobs.errors import LimitExceeded
    from asyncjobs.services.base import classify

    error = ClientError(
        {"Error": {"Code": "LimitExceededException", "Message": message}}, "CreateBatchInferenceJob"
    )
    assert type(classify(error, operation="CreateBatchInferenceJob")) is LimitExceeded


async def test_one_text_for_a_full_quota_is_found_out_by_a_second_refusal(journal: SQLiteJournal) -> None:
    """The quota (3) is lower than believed (20) and refused with the same error a throttle gets:
    the cap comes down to 3, no refusal counts as a throttle, and the pace is not driven down."""
    fake = FakeService(max_running=3, duration=1.5, ambiguous=True)
    await journal.add_specs(minimal_specs(9))
    with capture_logs() as logs:
        campaign = await run(journal, fake)
    assert journal.counts()[JobState.SUCCEEDED] == 9
    assert fake.peak_running <= 3
    assert campaign._state.cap("bedrock:m1").cap == 3
    assert campaign.progress().throttled == 0
    assert fake.calls["create"] <= 3 * 9
    assert [e["refusals"] for e in logs if e["event"] == "asyncjobs.create.throttled"] == []
    assert any(e["event"] == "asyncjobs.capacity.exceeded" for e in logs)


async def test_a_full_quota_is_found_out_though_jobs_end_unseen_in_between(journal: SQLiteJournal) -> None:
    """Sweeps 2 s apart, jobs of 1 s: when a create is accepted after a refusal, a job of ours
    has often ended unseen. Counted as still running, it would make the room look like the
    pace's fault, or the quota's level look passed, and each later refusal open a new inquiry
    (each holding the service's creates for a silence). The scheduler looks first: the quota
    of 3 is found out within two inquiries."""
    fake = FakeService(max_running=3, duration=1.0, ambiguous=True)
    await journal.add_specs(minimal_specs(14))
    with capture_logs() as logs:
        campaign = await run(
            journal, fake, min_poll_interval=2.0, poll_interval=2.0, capacity_probe_after=600.0
        )
    assert journal.counts()[JobState.SUCCEEDED] == 14
    assert fake.peak_running <= 3
    assert campaign._state.cap("bedrock:m1").cap == 3
    assert campaign.progress().throttled == 0
    assert sum(1 for e in logs if e["event"] == "asyncjobs.create.limited") <= 2
    assert any(e["event"] == "asyncjobs.capacity.exceeded" for e in logs)


async def test_one_text_for_throttles_is_found_out_by_an_accepted_create(journal: SQLiteJournal) -> None:
    """A service that takes one create per 0.6 s, and refuses faster ones with the quota's error:
    the pace, discovered from nothing, stops there; the cap stays; the refusals count as throttles."""
    # 1 create per 0.6 s: slow start meets it at 2/s, before the first job (4 s) can have ended
    fake = FakeService(min_gap=0.6, duration=4.0, ambiguous=True)
    await journal.add_specs(minimal_specs(10))
    with capture_logs() as logs:
        campaign = await run(journal, fake, create_rate=None, max_running={"m1": 16})
    assert journal.counts()[JobState.SUCCEEDED] == 10
    assert campaign._state.cap("bedrock:m1").cap == 16
    refused = fake.calls["refused:Throttled"]
    assert refused > 0, "slow start reached a pace the service refused"
    assert campaign.progress().throttled == refused
    assert not any(e["event"] == "asyncjobs.capacity.exceeded" for e in logs)
    assert len(fake.jobs) == 10 and max(fake.names().values()) == 1


async def test_keys_take_turns_for_create_tokens_busiest_first(journal: SQLiteJournal) -> None:
    """Claimed jobs of several keys are created alternately, the key with the most work per slot
    first: one key's batch must not queue for every create token of the service."""
    order: list[str] = []

    class Recording(FakeService):
        async def create(self, job: Job) -> str:
            order.append(job.id)  # as sent: job.submitted follows the journaling, in any order
            return await super().create(job)

    fake = Recording(duration=0.01)
    await journal.add_specs(
        minimal_specs(6, model="few") + [JobSpec(s.id + "b", s.service, s.request) for s in minimal_specs(9)]
    )
    campaign = Campaign(
        journal,
        adapters={Service.BEDROCK: fake},
        settings=Settings(**{**FAKE_SERVICE_RUN, "create_rate": 100.0}),
    )
    with anyio.fail_after(30):
        await campaign.run()
    keys = ["m1" if job_id.endswith("b") else "few" for job_id in order]
    assert keys[:12] == ["m1", "few"] * 6
    assert keys[12:] == ["m1"] * 3


async def test_no_sweep_for_slots_while_claimed_jobs_wait_for_the_create_rate(journal: SQLiteJournal) -> None:
    """A full key whose slots are held by jobs still waiting for their create gains nothing from a
    sweep: the create rate holds it up. Its first sweep comes once every slot holds a created job."""
    polls_at_create: list[int] = []

    class Recording(FakeService):
        async def create(self, job: Job) -> str:
            # counted as the create is sent: a job.submitted event comes after its ARN is journaled,
            # and under load the sweep the fifth create allows may come first
            polls_at_create.append(self.calls["poll"])
            return await super().create(job)

    fake = Recording(duration=1.5)
    await journal.add_specs(minimal_specs(10))
    campaign = Campaign(
        journal,
        adapters={Service.BEDROCK: fake},
        settings=Settings(
            **{**FAKE_SERVICE_RUN, "poll_interval": 30.0, "create_rate": 4.0, "max_running": {"m1": 5}}
        ),
    )
    with anyio.fail_after(30):
        await campaign.run()
    assert journal.counts()[JobState.SUCCEEDED] == 10
    assert polls_at_create[:5] == [0] * 5, "no sweep while the first five creates were paced (1 s)"
    assert fake.calls["poll"] >= 2
