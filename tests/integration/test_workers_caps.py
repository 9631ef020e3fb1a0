"""Workers on one PostgreSQL journal share the running-jobs caps they find: once one worker has
found a Personalize quota full, the others claim under that cap instead of each being refused by
the service to find it. Against the emulator, whose quota (2) is below the AWS default the
engine believes (5); the refusals are the emulator's own count."""

from __future__ import annotations

import functools
from collections.abc import Callable

import aioboto3
import anyio
import pytest

from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings
from tests.conftest import CREDENTIALS, MakeEmulator
from tests.support.postgres import MakeDatabase
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import personalize_specs

KEY = "personalize:us-east-1:batch-inference"


def worker(journal: PostgresJournal, url: str, on_event: Callable[[CampaignEvent], None]) -> Campaign:
    return Campaign(
        journal,
        session=aioboto3.Session(**CREDENTIALS),
        endpoint_url=url,
        region="us-east-1",
        # no probe above a lowered cap within the test
        settings=Settings(**{**EMULATOR_RUN, "capacity_probe_after": 600.0, "lease_seconds": 5.0}),
        on_event=on_event,
    )


def named(events: list[CampaignEvent], name: str) -> list[CampaignEvent]:
    return [e for e in events if e.name == name]


@pytest.mark.timeout(180)
async def test_a_worker_that_joins_claims_under_the_cap_another_found(
    make_emulator: MakeEmulator, postgres_database: MakeDatabase
) -> None:
    """Worker a finds the quota (refused) and stops; worker b, started after, runs the rest of
    the campaign without one refusal: it claims under the cap a shared."""
    emu = await make_emulator(personalize_max_running=2, job_seconds=(2.0, 2.5))
    uri = postgres_database("joins")
    a = await PostgresJournal.open(uri, campaign="c")
    b = await PostgresJournal.open(uri, campaign="c")
    b_events: list[CampaignEvent] = []
    stop_a = anyio.Event()
    try:
        await a.add_specs(personalize_specs(12))
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(worker(a, emu.url, lambda _: None).run, stop=stop_a))
            with anyio.fail_after(60):  # a is refused, finds the quota full, and shares the cap
                while (await b.caps()).get(KEY) != 2:  # noqa: ASYNC110 (the journal has no event for it)
                    await anyio.sleep(0.05)
            stop_a.set()
        refused_before_b = emu.stats()["quota_rejections_total"]
        assert refused_before_b >= 1
        await b.refresh()
        assert b.counts()[JobState.PENDING] > 0  # b has jobs left to claim when it joins
        with anyio.fail_after(120):
            summary = await worker(b, emu.url, b_events.append).run()
    finally:
        await a.aclose()
        await b.aclose()

    assert summary.counts[JobState.SUCCEEDED] == 12
    assert named(b_events, "job.submitted")  # b created jobs
    assert named(b_events, "create.limited") == []  # b never opened an inquiry
    assert named(b_events, "capacity.exceeded") == []
    stats = emu.stats()
    assert stats["quota_rejections_total"] == refused_before_b  # nobody was refused after b joined
    assert stats["peak_running"].get(KEY, 0) <= 2
    assert stats["duplicate_jobs"] == 0


@pytest.mark.timeout(180)
async def test_an_open_inquiry_is_answered_by_the_cap_another_worker_found(
    make_emulator: MakeEmulator, postgres_database: MakeDatabase
) -> None:
    """Worker b, at a pace of 2 creates/s that others found, is refused with the ambiguous error
    and waits a silence before its probe; the test, as another worker, shares the cap of 2
    meanwhile. b's probe is not sent: the quota is full where it was refused, and the pace's
    provisional cut is undone (not kept, nor softened as after an unclear verdict).

    At 2/s the refused third create goes out a second after it began waiting for the pace, well
    inside the 2 s in which the pace counts as holding creates back, so the refusal is suspected
    of the pace and cuts it; at 1/s it went out just as that window closed, and on a busy machine
    the cut did not always come."""
    emu = await make_emulator(personalize_max_running=2, job_seconds=(6.0, 6.5))
    uri = postgres_database("answered")
    other = await PostgresJournal.open(uri, campaign="c")
    b = await PostgresJournal.open(uri, campaign="c")
    events: list[CampaignEvent] = []
    inquiry_opened = anyio.Event()

    def on_event(event: CampaignEvent) -> None:
        events.append(event)
        if event.name == "create.limited":
            inquiry_opened.set()

    campaign = worker(b, emu.url, on_event)
    try:
        await other.add_specs(personalize_specs(4))
        await other.save_paces({"personalize:us-east-1": 2.0})
        async with anyio.create_task_group() as tg:
            summary = []

            async def run_b() -> None:
                summary.append(await campaign.run())

            tg.start_soon(run_b)
            with anyio.fail_after(60):
                await inquiry_opened.wait()
            await other.save_caps({KEY: 2})
            with anyio.fail_after(120):
                while not summary:  # noqa: ASYNC110 (the run's end is the event)
                    await anyio.sleep(0.05)
    finally:
        await other.aclose()
        await b.aclose()

    assert summary[0].counts[JobState.SUCCEEDED] == 4
    (limited,) = named(events, "create.limited")
    assert limited.data["rate"] < 2.0  # the provisional cut, while it waited
    assert campaign.progress().create_rates["personalize"] == pytest.approx(2.0)
    assert named(events, "capacity.exceeded") == []  # the cap came from the other worker
    stats = emu.stats()
    assert stats["quota_rejections_total"] == 1  # the probe was never sent to be refused again
    assert stats["duplicate_jobs"] == 0
    assert campaign.progress().throttled == 0
