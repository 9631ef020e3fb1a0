"""A PostgreSQL journal's database stops: the session's outage budget, and the command riding a
short restart and stopping cleanly on a long outage (exit 3, how to resume), then resuming with
nothing lost or created twice.

The database is a server of the test's own (:func:`~tests.support.postgres.own_server`), stopped
with ``pg_ctl -m fast`` as a restart or a failover would end its sessions.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from asyncjobs.emulator.process import EmulatorProcess
from asyncjobs.errors import JournalUnavailable
from asyncjobs.journal.location import redact
from asyncjobs.journal.pg_session import Connection, Session, connect
from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import audit
from tests.reliability.workers import load_view
from tests.support.cli import finish, start_cli
from tests.support.postgres import own_server
from tests.support.specs import distinct_specs, write_campaign


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


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that takes connections into its backlog and never answers: a database host gone
    from the network, as the client sees it (no refusal, no reset)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.timeout(60)  # psycopg's own default would wait 130 s for the connection
async def test_a_reconnection_that_gets_no_answer_gives_up_within_the_budget() -> None:
    with own_server() as server, silent_listener() as port:
        # the session reconnects to the silent port: the database's host went off the network
        session = Session(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", await connect(server.uri), outage_seconds=3.0
        )
        server.stop()  # the connection it had is cut
        with pytest.raises(JournalUnavailable, match="unreachable"):
            await session.read(select_one)
        await session.close()


# ------------------------------------------------------------------------ the command
#: The server trusts local connections: the password is carried, never checked, and must not show.
PASSWORD = "pg-PASSWORD-0b5d2e8f-never-show-me"
#: Jobs long enough that the database stops while creates and sweeps are under way.
EMULATOR = ("--job-seconds", "1.0,1.5", "--seed", "13")
SPECS = 12
RUN_ARGS = (
    "--campaign-name", "c", "--poll-interval", "0.3", "--lease-seconds", "3",
    "--max-running", "bedrock=3", "--output", "json",
)  # fmt: skip


def with_password(uri: str) -> str:
    """pgserver's ``postgresql://postgres:@/postgres?host=/dir`` with :data:`PASSWORD` in it."""
    assert uri.startswith("postgresql://postgres:@"), uri
    return uri.replace("postgres:@", f"postgres:{PASSWORD}@", 1)


def once_jobs_were_created(emulator: EmulatorProcess, process: subprocess.Popen[bytes], jobs: int) -> None:
    """Return once the emulator holds ``jobs`` jobs of the run (or the run ended)."""
    while emulator.stats()["jobs_total"] < jobs and process.poll() is None:
        time.sleep(0.05)


def assert_nothing_lost_or_twice(uri: str, emulator: EmulatorProcess) -> None:
    stats = emulator.stats()
    report = audit(anyio.run(load_view, uri, "c"), emulator.jobs(), stats)
    assert report.problems == [], report.problems
    assert report.duplicates == 0 and report.lost == 0
    assert stats["jobs_total"] == SPECS


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_long_outage_stops_the_command_with_exit_3_and_its_resume_hint_finishes(
    start_emulator: StartEmulator, workdir: Path
) -> None:
    emulator = start_emulator(*EMULATOR)
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(SPECS))
    with own_server() as server:
        uri = with_password(server.uri)
        args = ("--endpoint-url", emulator.url, "run", str(campaign), "--journal", uri, *RUN_ARGS)
        process = start_cli(*args, "--outage-seconds", "2", cwd=workdir)
        once_jobs_were_created(emulator, process, 2)
        server.stop()
        stopped = finish(process, timeout=90)

        assert stopped.code == 3, stopped
        assert PASSWORD not in stopped.stdout + stopped.stderr
        assert "error ignored" not in stopped.stderr  # psycopg's own warnings of the lost pipeline
        assert stopped.stderr.count("asyncjobs.journal.outage") == 1  # the outage is told once
        error = stopped.error_lines[-1]
        assert error.startswith("asyncjobs: error: journal postgresql://postgres:***@"), error
        assert "unreachable" in error and "resume the campaign once it is back" in error
        (hint,) = [line for line in stopped.error_lines if "resume with: " in line]
        resume = shlex.split(hint.partition("resume with: ")[2])
        assert resume[:3] == ["asyncjobs", "--endpoint-url", emulator.url], hint
        assert resume[3:] == ["run", "--journal", redact(uri), "--campaign-name", "c"], hint
        summary = stopped.json()  # the summary so far, with the error
        assert summary["error"]["code"] == "JournalUnavailable"
        assert summary["counts"]["succeeded"] < SPECS

        server.start()
        # the hint, with the password that it hides given back (as ~/.pgpass would)
        again = [uri if arg == redact(uri) else arg for arg in resume[1:]]
        resumed = finish(start_cli(*again, "--poll-interval", "0.3", "--output", "json", cwd=workdir), 120)
        assert resumed.code == 0, resumed
        assert resumed.json()["counts"]["succeeded"] == SPECS
        assert_nothing_lost_or_twice(uri, emulator)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_restart_within_the_outage_budget_is_ridden(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(*EMULATOR)
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(SPECS))
    with own_server() as server:
        uri = with_password(server.uri)
        args = ("--endpoint-url", emulator.url, "run", str(campaign), "--journal", uri, *RUN_ARGS)
        process = start_cli(*args, "--outage-seconds", "60", cwd=workdir)
        once_jobs_were_created(emulator, process, 2)
        server.stop()
        time.sleep(1.0)  # down for a while: every part of the run finds it gone
        server.start()
        ran = finish(process, timeout=120)

        assert ran.code == 0, ran
        assert ran.json()["counts"]["succeeded"] == SPECS
        assert PASSWORD not in ran.stdout + ran.stderr
        assert "asyncjobs.journal.outage" in ran.stderr  # it did see the database go
        assert_nothing_lost_or_twice(uri, emulator)
