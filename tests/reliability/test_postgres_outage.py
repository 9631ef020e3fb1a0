"""A PostgreSQL journal's database stops: the session's outage budget, and the command riding a
short restart and stopping cleanly on a long outage (exit 3, how to resume), then resuming with
nothing lost or created twice.

The database is a server of the test's own (:func:`~tests.support.postgres.own_server`), stopped
with ``pg_ctl -m fast`` as a restart or a failover would end its sessions.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from asyncjobs.errors import JournalUnavailable
from asyncjobs.journal.pg_session import Connection, Session, connect
from tests.support.postgres import own_server


class SteppingClock:
    """The session's clock: ``step`` seconds pass at each reading, until the test stops time."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def select_one(conn: Connection) -> Any:
    row = await (await conn.execute("SELECT 1")).fetchone()
    return None if row is None else row[0]


@pytest.mark.timeout(90)  # a second budget would never be spent by a clock that stands still
async def test_after_a_declared_outage_calls_and_close_end_at_once() -> None:
    with own_server() as server:
        clock = SteppingClock(step=30.0)  # each look at the clock: 30 s of outage
        session = Session(server.uri, await connect(server.uri), outage_seconds=60.0, clock=clock)
        assert await session.read(select_one) == 1
        server.stop()
        with capture_logs() as logs:
            with pytest.raises(JournalUnavailable, match="resume"):
                await session.read(select_one)  # rides 60 s of the session's clock, then gives up
            clock.step = 0.0  # from now on no time passes: only a call that does not ride again ends
            with pytest.raises(JournalUnavailable, match="resume"):
                await session.read(select_one)
            closing: list[Connection] = []

            async def give_up_leases(conn: Connection) -> None:
                closing.append(conn)

            await session.close(give_up_leases)
        outages = [e for e in logs if e["event"] == "asyncjobs.journal.outage"]
        assert len(outages) == 1, outages  # one outage, one budget
        assert closing == []  # nothing is sent to a database known to be down


@pytest.mark.timeout(90)
async def test_once_the_database_is_back_a_new_outage_is_ridden_again() -> None:
    with own_server() as server:
        clock = SteppingClock(step=40.0)
        session = Session(server.uri, await connect(server.uri), outage_seconds=60.0, clock=clock)
        server.stop()
        with pytest.raises(JournalUnavailable):
            await session.read(select_one)  # the first outage: declared
        server.start()
        assert await session.read(select_one) == 1  # back: that outage is over
        server.stop()
        clock.step = 0.0  # no time passes: the new outage's budget is never spent
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, server.start)
                assert await session.read(select_one) == 1  # ridden until the restart, not refused
        assert [e["event"] for e in logs].count("asyncjobs.journal.outage") == 1
        await session.close()
