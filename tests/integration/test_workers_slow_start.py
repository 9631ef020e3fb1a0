"""Workers on one PostgreSQL journal double one create pace together while nothing is known of
the service's limit: a worker keeps up with the slow start another worker's doublings took
further, instead of doubling its own from one create a second. Against the emulator with no
request limit, so that the slow start never ends; the test plays the other worker."""

from __future__ import annotations

import functools
import math

import aioboto3
import anyio
import pytest

from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import CREDENTIALS, MakeEmulator
from tests.support.postgres import MakeDatabase
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import MODEL, bedrock_specs

PACE_KEY = "bedrock:us-east-1"


def power_of_two_times(pace: float, base: float) -> bool:
    exponent = math.log2(pace / base)
    return exponent >= 0 and exponent == round(exponent)


@pytest.mark.timeout(120)
async def test_a_slow_start_keeps_up_with_the_pace_another_worker_doubled_to(
    make_emulator: MakeEmulator, postgres_database: MakeDatabase
) -> None:
    """Worker b's own doublings from 1/s give 1, 2, 4, 8...; the other worker's slow start is
    at 6/s: b goes on from 6 (then 12, 24...), a pace its own doublings never reach."""
    emu = await make_emulator(bedrock_max_running=1000, job_seconds=(30.0, 31.0))
    uri = postgres_database("slow_start")
    other = await PostgresJournal.open(uri, campaign="c")
    b = await PostgresJournal.open(uri, campaign="c")
    settings = Settings(**{**EMULATOR_RUN, "max_running": {MODEL: 1000}, "lease_seconds": 5.0})
    campaign = Campaign(
        b,
        session=aioboto3.Session(**CREDENTIALS),
        endpoint_url=emu.url,
        region="us-east-1",
        settings=settings,
    )
    stop = anyio.Event()
    paces: list[float] = []

    def bedrock_pace() -> float | None:
        return campaign.progress().create_rates.get("bedrock")

    try:
        await other.add_specs(bedrock_specs(400))
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(campaign.run, stop=stop))
            with anyio.fail_after(30):  # b's slow start under way, its creates held back by it
                while bedrock_pace() is None:  # noqa: ASYNC110 (the run has no event for it)
                    await anyio.sleep(0.01)
            await other.save_slow_starts({PACE_KEY: 6.0})
            with anyio.fail_after(15):
                while not paces or not power_of_two_times(paces[-1], 6.0):
                    paces.append(bedrock_pace() or 0.0)
                    await anyio.sleep(0.01)
            stop.set()
    finally:
        await other.aclose()
        await b.aclose()

    assert all(power_of_two_times(pace, 1.0) for pace in paces[:-1])  # its own doublings before
    assert emu.stats()["duplicate_jobs"] == 0
