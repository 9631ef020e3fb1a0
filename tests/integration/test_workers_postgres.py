"""The engine on a PostgreSQL journal: a long database outage stops a worker cleanly, and a
worker started once the database is back finishes the campaign with nothing created twice."""

from __future__ import annotations

import contextlib

import aioboto3
import anyio
import pytest

from asyncjobs.cli.errors import innermost
from asyncjobs.errors import JournalError, JournalUnavailable
from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.model import JobState
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import CREDENTIALS, MakeEmulator
from tests.support.postgres import own_server
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import bedrock_specs


def campaign_on(journal: PostgresJournal, url: str) -> Campaign:
    return Campaign(
        journal,
        session=aioboto3.Session(**CREDENTIALS),
        endpoint_url=url,
        region="us-east-1",
        settings=Settings(**{**EMULATOR_RUN, "lease_seconds": 5.0}),
    )


@pytest.mark.timeout(240)
async def test_a_long_outage_stops_a_worker_and_a_new_one_finishes(
    make_emulator: MakeEmulator,
) -> None:
    emu = await make_emulator(job_seconds=(2.0, 2.5))
    with own_server() as server:
        journal = await PostgresJournal.open(server.uri, campaign="c", outage_seconds=2.0)
        await journal.add_specs(bedrock_specs(6))

        async def stop_the_database_once_jobs_run() -> None:
            while emu.stats()["jobs_total"] < 2:  # noqa: ASYNC110 (the emulator has no event for it)
                await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(server.stop)

        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_the_database_once_jobs_run)
                with anyio.fail_after(120):
                    await campaign_on(journal, emu.url).run()
        except BaseException as exc:  # the run's task group raises a group
            error = innermost(exc)
        with contextlib.suppress(JournalError):  # its leases are given up by expiring instead
            await journal.aclose()

        assert isinstance(error, JournalUnavailable), error
        assert error.summary is not None  # what the command prints before "resume with"
        assert "resume" in error.message

        await anyio.to_thread.run_sync(server.start)
        await anyio.sleep(5.0)  # the stopped worker's leases expire: the next one takes its jobs over
        resumed = await PostgresJournal.open(server.uri, campaign="c", lease_seconds=5.0)
        try:
            with anyio.fail_after(120):
                summary = await campaign_on(resumed, emu.url).run()
        finally:
            await resumed.aclose()

    assert summary.counts[JobState.SUCCEEDED] == 6
    stats = emu.stats()
    assert stats["jobs_total"] == 6
    assert stats["duplicate_jobs"] == 0
