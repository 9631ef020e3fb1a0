"""Workers on one PostgreSQL journal hear at once of a slot another worker freed (LISTEN/NOTIFY),
instead of at their next periodic read of the journal. Order and outcome only, never elapsed time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aioboto3
import anyio
import pytest

import asyncjobs.scheduler.workers as workers_part
from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings
from tests.conftest import CREDENTIALS, MakeEmulator
from tests.support.postgres import MakeDatabase
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import MODEL, bedrock_specs

KEY = f"bedrock:{MODEL}"


async def next_from(changes: AsyncIterator[str]) -> str:
    with anyio.fail_after(30):
        return await anext(changes)


async def listening(journal: PostgresJournal, count: int) -> None:
    """Until ``count`` sessions of the journal's database LISTEN (what a notification needs)."""

    async def sessions(conn):  # type: ignore[no-untyped-def]
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = 'LISTEN asyncjobs'"
        )
        row = await cur.fetchone()
        return row[0]

    with anyio.fail_after(30):
        while await journal._session.read(sessions) < count:  # noqa: ASYNC110 (no event for it)
            await anyio.sleep(0.02)


async def test_a_worker_hears_another_free_a_slot_or_save_a_pace_or_cap_and_not_itself(
    postgres_database: MakeDatabase,
) -> None:
    uri = postgres_database("wake")
    a = await PostgresJournal.open(uri, campaign="c")
    b = await PostgresJournal.open(uri, campaign="c")
    c = await PostgresJournal.open(uri, campaign="c")
    other = await PostgresJournal.open(uri, campaign="other")
    heard = b.changes()
    try:
        await a.add_specs(bedrock_specs(3))
        jobs = await a.claim(KEY, 3, 3)
        listener = anyio.create_task_group()
        async with listener:
            first: list[str] = []

            async def take_first() -> None:
                first.append(await next_from(heard))

            listener.start_soon(take_first)
            await listening(a, 1)
            await c.save_paces({"personalize:us-east-1": 1.5})  # a pace saved: b hears of it
        assert first == [c.worker]

        await c.save_caps({KEY: 2})  # a cap found: b hears of it, and reads it
        assert await next_from(heard) == c.worker
        assert await b.caps() == {KEY: 2}

        await other.save_paces({"bedrock:us-east-1": 2.0})  # another campaign: not b's concern
        await other.save_caps({KEY: 1})
        await b.save_paces({"bedrock:us-east-1": 2.0})  # b's own: not told back to it
        await b.save_caps({KEY: 3})
        await a.transition(jobs[0], Event.DEFER, detail="quota full")  # a slot freed by a
        assert await next_from(heard) == a.worker  # in commit order: nothing came before it
        assert await c.caps() == {KEY: 3}  # the campaign's last save, not another campaign's

        created = await a.transition(jobs[1], Event.CREATED, arn="arn:1", submitted_at=time.time())
        await a.transition(created, Event.OBSERVE_SUCCEEDED)  # final: its slot is free
        assert await next_from(heard) == a.worker
    finally:
        await heard.aclose()
        for journal in (a, b, c, other):
            await journal.aclose()


@pytest.mark.timeout(120)
async def test_a_slot_another_worker_frees_is_claimed_without_waiting_for_the_periodic_mirror(
    make_emulator: MakeEmulator, postgres_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker a holds the key's only slot and sweeps its kind; worker b, whose periodic mirror
    would come only in an hour, creates the next job once a records the first one's end."""
    monkeypatch.setattr(workers_part, "MIRROR_INTERVAL", 3600.0)
    emu = await make_emulator()
    uri = postgres_database("handoff")
    a = await PostgresJournal.open(uri, campaign="c")
    b = await PostgresJournal.open(uri, campaign="c")
    events: list[CampaignEvent] = []
    try:
        await a.add_specs(bedrock_specs(2))
        (held,) = await a.claim(KEY, 1, 1)
        held = await a.transition(held, Event.CREATED, arn="arn:held", submitted_at=time.time())
        assert await a.try_lease_sweep("bedrock", 3600)  # b never sweeps (so never sees it end)
        campaign = Campaign(
            b,
            session=aioboto3.Session(**CREDENTIALS),
            endpoint_url=emu.url,
            region="us-east-1",
            settings=Settings(**{**EMULATOR_RUN, "max_running": {"bedrock": 1}}),
            on_event=events.append,
        )
        async with anyio.create_task_group() as tg:
            summary = []

            async def run_b() -> None:
                summary.append(await campaign.run(wait=False))  # returns once all are submitted

            tg.start_soon(run_b)
            await listening(a, 1)  # b has read the journal (the slot is a's) and listens
            assert emu.stats()["jobs_total"] == 0  # the slot was full: b created nothing yet
            await a.transition(held, Event.OBSERVE_SUCCEEDED)
            with anyio.fail_after(60):  # b hears, reads the journal again, claims and creates
                while not summary:  # noqa: ASYNC110 (the run's end is the event)
                    await anyio.sleep(0.05)
    finally:
        await a.aclose()
        await b.aclose()

    assert summary[0].counts[JobState.SUBMITTED] + summary[0].counts[JobState.RUNNING] == 1
    assert summary[0].counts[JobState.SUCCEEDED] == 1  # a's, recorded by a
    assert [e.job_id for e in events if e.name == "job.submitted"] == ["b1"]
    assert not [e for e in events if e.name == "job.final"]  # b learned of b0's end from a
    assert emu.stats()["jobs_total"] == 1
