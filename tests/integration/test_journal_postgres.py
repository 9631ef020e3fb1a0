"""The PostgreSQL journal with several workers on one campaign, outages and secrets, against a real
server (:mod:`tests.support.postgres`). What one worker sees is in the contract suite."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import psycopg
import pytest
from structlog.testing import capture_logs

from asyncjobs.errors import JournalConflict, JournalError, JournalUnavailable, SpecChanged
from asyncjobs.journal import Journal, open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobSpec, JobState, Service
from tests.support import postgres as postgres_support
from tests.support.postgres import MakeDatabase, OwnServer, database_uri


def spec(i: int, model: str = "m1", **extra: object) -> JobSpec:
    return JobSpec(
        f"s{i}", Service.BEDROCK, {"modelId": model, "roleArn": "r", **extra}, source=f"c.jsonl:{i + 1}"
    )


@pytest.fixture
async def workers(postgres_database: MakeDatabase) -> AsyncIterator[Callable[..., object]]:
    """``await open_worker(campaign="camp")``: another journal object (a worker) on one database."""
    uri = postgres_database("shared")
    opened: list[Journal] = []

    async def open_worker(**kw: object) -> Journal:
        journal = await open_journal(uri, **kw)  # type: ignore[arg-type]
        opened.append(journal)
        return journal

    yield open_worker
    for journal in opened:
        await journal.aclose()


async def test_workers_racing_for_claims_never_pass_the_cap_nor_share_a_job(workers) -> None:  # type: ignore[no-untyped-def]
    """Three workers claim and finish jobs of one key as fast as they can, under a cap of 7."""
    first: Journal = await workers(campaign="camp")
    await first.add_specs([spec(i) for i in range(150)])
    racers = [first, await workers(campaign="camp"), await workers(campaign="camp")]
    claimed: Counter[str] = Counter()
    peak = 0
    rng = random.Random(13)

    async def run(journal: Journal) -> None:
        nonlocal peak
        while True:
            batch = await journal.claim("bedrock:m1", cap=7, limit=rng.randint(1, 4))
            active = await _active_in_database(journal)
            peak = max(peak, active)
            claimed.update(j.id for j in batch)
            if not batch:
                if not await journal.pending("bedrock:m1", 1):
                    return
                await anyio.sleep(0.001)  # the cap is full: others hold the slots
                continue
            for job in batch:
                job = await journal.transition(job, Event.CREATED, arn=f"arn:{job.id}")
                await journal.transition(job, Event.OBSERVE_SUCCEEDED)

    async with anyio.create_task_group() as tg:
        for journal in racers:
            tg.start_soon(run, journal)
    assert sorted(claimed) == sorted(f"s{i}" for i in range(150))
    assert set(claimed.values()) == {1}  # no job claimed twice
    assert 0 < peak <= 7
    claims = [e for e in await first.events() if e.event == "claim"]
    assert len(claims) == 150
    await first.refresh()
    assert first.counts()[JobState.SUCCEEDED] == 150


async def _active_in_database(journal: Journal) -> int:
    return sum(1 for _ in await journal.active())


async def test_an_expired_lease_is_taken_over_and_the_old_worker_is_refused(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="camp")
    b: Journal = await workers(campaign="camp")
    await a.add_specs([spec(i) for i in range(4)])
    held = await a.claim("bedrock:m1", cap=10, limit=2, lease_seconds=60)
    lapsed = await a.claim("bedrock:m1", cap=10, limit=2, lease_seconds=0)  # as if a stopped heartbeating
    assert [j.id for j in await b.take_over_expired(lease_seconds=60)] == [j.id for j in lapsed]
    assert await b.take_over_expired() == []  # b's now, and live
    assert await a.heartbeat(lease_seconds=60) == 2  # a keeps only the jobs it still holds
    assert await b.take_over_expired() == []
    assert await a.heartbeat(lease_seconds=0) == 2  # a's heartbeat stops: its leases end now
    taken = await b.take_over_expired(lease_seconds=60)
    assert [j.id for j in taken] == [j.id for j in held]
    with pytest.raises(JournalConflict, match="'s0'"):
        await a.transition(held[0], Event.CREATED, arn="arn:late")
    done = await b.transition(taken[0], Event.CREATED, arn="arn:reconciled")
    assert done.arn == "arn:reconciled"
    stored = await b.get("s0")
    assert stored is not None and stored.arn == "arn:reconciled"
    assert [e.event for e in await b.events("s0")] == ["claim", "created"]


async def test_a_change_decided_from_a_stale_state_is_refused_alone(workers) -> None:  # type: ignore[no-untyped-def]
    """Two workers observe one job; the second commit decided from the old state is refused, and
    the other changes of its group commit are kept."""
    a: Journal = await workers(campaign="camp")
    b: Journal = await workers(campaign="camp")
    await a.add_specs([spec(0), spec(1)])
    jobs = await a.claim("bedrock:m1", cap=5, limit=2)
    submitted = [await a.transition(j, Event.CREATED, arn=f"arn:{j.id}") for j in jobs]
    await b.transition(submitted[0], Event.OBSERVE_FAILED)
    with pytest.raises(JournalConflict):
        await a.transition(submitted[0], Event.OBSERVE_RUNNING)
    running = await a.transition(submitted[1], Event.OBSERVE_RUNNING)
    assert running.state is JobState.RUNNING
    stored = await a.get("s0")
    assert stored is not None and stored.state is JobState.FAILED


async def test_one_worker_sweeps_each_kind_at_a_time(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="camp")
    b: Journal = await workers(campaign="camp")
    assert await a.try_lease_sweep("bedrock", 60)
    assert not await b.try_lease_sweep("bedrock", 60)
    assert await b.try_lease_sweep("personalize:batch-inference", 60)  # another kind
    assert await a.try_lease_sweep("bedrock", 0)  # renewed, to end now
    assert await b.try_lease_sweep("bedrock", 60)  # expired: b's now
    assert not await a.try_lease_sweep("bedrock", 60)
    await b.aclose()  # a closing worker gives its leases up
    assert await a.try_lease_sweep("bedrock", 60)


async def test_workers_share_one_create_rate(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="camp")
    b: Journal = await workers(campaign="camp")
    other: Journal = await workers(campaign="other")
    assert await a.take("bedrock:us-east-1", rate=0.01) == 0.0
    assert 99 < await b.take("bedrock:us-east-1", rate=0.01) <= 100  # b waits for a's token
    assert await other.take("bedrock:us-east-1", rate=0.01) == 0.0  # each campaign has its own
    await a.save_paces({"bedrock:us-east-1": 2.5})
    assert await b.paces() == {"bedrock:us-east-1": 2.5}


async def test_a_second_worker_joins_with_identical_specs_and_is_refused_a_changed_one(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="camp")
    assert (await a.add_specs([spec(i) for i in range(5)])).added == 5
    b: Journal = await workers(campaign="camp")
    assert b.counts()[JobState.PENDING] == 5  # counted at open
    joined = await b.add_specs([spec(i) for i in range(5)])
    assert (joined.added, joined.existing) == (0, 5)
    with pytest.raises(SpecChanged, match=r"c\.jsonl:3: spec 's2' differs"):
        await b.add_specs([spec(2, model="m2")])
    # workers that ingest at the same moment take turns: one adds, the other joins
    c: Journal = await workers(campaign="together")
    d: Journal = await workers(campaign="together")
    results = []

    async def ingest(journal: Journal) -> None:
        results.append(await journal.add_specs([spec(i) for i in range(3000)]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ingest, c)
        tg.start_soon(ingest, d)
    assert sorted((r.added, r.existing) for r in results) == [(0, 3000), (3000, 0)]


async def test_campaigns_in_one_database_are_apart(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="alpha")
    assert await workers() is not None  # one campaign: its name may be left out
    b: Journal = await workers(campaign="beta")
    await a.add_specs([spec(i) for i in range(3)])
    await b.add_specs([spec(i) for i in range(2)])  # the same ids, another campaign
    assert (a.counts().total, b.counts().total) == (3, 2)
    job = await b.get("s0")
    assert job is not None and job.job_name.startswith("beta")
    with pytest.raises(JournalError, match=r"holds 2 campaigns \(alpha, beta\); name one"):
        await workers()
    with pytest.raises(JournalError, match="no campaign 'gamma'"):
        await workers(campaign="gamma", create=False)


async def test_counts_follow_other_workers(workers) -> None:  # type: ignore[no-untyped-def]
    a: Journal = await workers(campaign="camp")
    b: Journal = await workers(campaign="camp")
    await a.add_specs([spec(i) for i in range(4)])
    await a.claim("bedrock:m1", cap=10, limit=3)
    assert b.counts()[JobState.SUBMITTING] == 0  # not refreshed yet
    await b.refresh()
    assert (b.counts()[JobState.SUBMITTING], b.counts()[JobState.PENDING]) == (3, 1)


async def test_the_password_never_shows(postgres_server: str, postgres_database: MakeDatabase) -> None:
    """The server trusts local connections, so a password in the URI is accepted and unused."""
    secret = "s3cr%2Fet-PW"
    uri = postgres_database("secret").replace("postgres:@", f"postgres:{secret}@")
    with capture_logs() as logs:
        journal = await open_journal(uri + "&application_name=x", campaign="camp")
        try:
            await journal.add_specs([spec(0)])
            shown = [journal.path, repr(journal), str(logs)]
        finally:
            await journal.aclose()
        bad = database_uri(postgres_server, "no_such_database").replace("postgres:@", f"postgres:{secret}@")
        with pytest.raises(JournalError) as refused:
            await open_journal(bad, campaign="camp")
        shown += [str(refused.value), repr(refused.value), str(logs)]
    assert journal.path.startswith("postgresql://postgres:***@/")
    for text in shown:
        assert "s3cr" not in text and "PW" not in text, text
    assert "no_such_database" in str(refused.value)  # the error still says what is wrong


def test_without_the_driver_the_error_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys, anyio; sys.modules['psycopg'] = None\n"
        "from asyncjobs.journal import open_journal\n"
        "anyio.run(open_journal, 'postgresql://u:pw@db.example/x')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "pip install 'asyncjobs[postgres]'" in done.stderr
    assert "pw@" not in done.stderr


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    with postgres_support.own_server() as server:
        yield server


async def test_a_short_restart_is_ridden_and_a_long_outage_stops_cleanly(own_server: OwnServer) -> None:
    from asyncjobs.journal.postgres import PostgresJournal

    journal = await PostgresJournal.open(own_server.uri, campaign="camp", outage_seconds=60)
    try:
        await journal.add_specs([spec(i) for i in range(6)])
        claimed = await journal.claim("bedrock:m1", cap=10, limit=4)
        own_server.stop()
        async with anyio.create_task_group() as tg:

            async def restart() -> None:
                await anyio.sleep(1.0)
                await anyio.to_thread.run_sync(own_server.start)

            tg.start_soon(restart)
            # sent while the database is down: each waits for it, and is recorded once
            created = [await journal.transition(j, Event.CREATED, arn=f"arn:{j.id}") for j in claimed]
        assert [j.state for j in created] == [JobState.SUBMITTED] * 4
        assert len(await journal.events()) == 8  # 4 claims + 4 creates: nothing twice
        assert [j.id for j in await journal.pending("bedrock:m1", 10)] == ["s4", "s5"]
    finally:
        await journal.aclose()

    hasty = await PostgresJournal.open(own_server.uri, campaign="camp", outage_seconds=1)
    try:
        own_server.stop()
        with pytest.raises(JournalUnavailable, match=r"unreachable for \d+ s .*resume"):
            await hasty.claim("bedrock:m1", cap=10, limit=1)
    finally:
        await anyio.to_thread.run_sync(own_server.start)
        await hasty.aclose()
    again = await open_journal(own_server.uri, campaign="camp")
    try:
        assert again.counts()[JobState.SUBMITTED] == 4 and again.counts()[JobState.PENDING] == 2
    finally:
        await again.aclose()


async def test_a_transaction_cut_off_before_its_commit_is_sent_again_once(
    postgres_database: MakeDatabase,
) -> None:
    """The worker's session is ended while its commit waits on a row lock: after reconnecting it
    looks its transaction up (aborted), sends it again, and records the change exactly once."""
    uri = postgres_database("cut")
    journal = await open_journal(uri, campaign="camp")
    try:
        await journal.add_specs([spec(0)])
        (job,) = await journal.claim("bedrock:m1", cap=1, limit=1)
        created: list[object] = []

        async def create() -> None:
            created.append(await journal.transition(job, Event.CREATED, arn="arn:1"))

        async with (
            await psycopg.AsyncConnection.connect(uri, autocommit=True) as admin,
            anyio.create_task_group() as tg,
            admin.transaction(),
        ):  # the row lock ends with the transaction, before the task group waits for the worker
            await admin.execute("SELECT 1 FROM asyncjobs_jobs WHERE id = 's0' FOR UPDATE")
            tg.start_soon(create)
            pid = None
            while pid is None:  # the worker's UPDATE now waits for the lock
                await anyio.sleep(0.02)
                cur = await admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'asyncjobs'"
                    " AND wait_event_type = 'Lock' AND datname = current_database()"
                )
                row = await cur.fetchone()
                pid = row[0] if row else None
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert len(created) == 1
        stored = await journal.get("s0")
        assert stored is not None and (stored.state, stored.arn) == (JobState.SUBMITTED, "arn:1")
        assert [e.event for e in await journal.events("s0")] == ["claim", "created"]
    finally:
        await journal.aclose()


async def test_counts_stay_exact_while_refreshes_interleave_with_commits(workers) -> None:  # type: ignore[no-untyped-def]
    journal: Journal = await workers(campaign="camp")
    await journal.add_specs([spec(i) for i in range(200)])
    jobs = await journal.pending("bedrock:m1", 200)
    committing = True

    async def refresh() -> None:
        while committing:
            await journal.refresh()
            await anyio.lowlevel.checkpoint()

    async def claim(share: list) -> None:  # type: ignore[type-arg]
        for job in share:
            await journal.transition(job, Event.CLAIM)

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresh)
        async with anyio.create_task_group() as claims:
            for k in range(20):
                claims.start_soon(claim, jobs[k::20])
        committing = False
    assert (journal.counts()[JobState.SUBMITTING], journal.counts()[JobState.PENDING]) == (200, 0)


async def test_a_plain_claim_transition_leases_the_job_too(postgres_database: MakeDatabase) -> None:
    """The dispatcher's two-step claim (``pending`` then ``transition(CLAIM)``) also leases the job,
    for the journal's ``lease_seconds``: here none, so another worker may take it over at once."""
    from asyncjobs.journal.postgres import PostgresJournal

    uri = postgres_database("plain")
    a = await PostgresJournal.open(uri, campaign="camp", lease_seconds=0)
    b = await open_journal(uri, campaign="camp")
    try:
        await a.add_specs([spec(0)])
        (job,) = await a.pending("bedrock:m1", 1)
        claimed = await a.transition(job, Event.CLAIM)
        assert [j.id for j in await b.take_over_expired()] == ["s0"]
        with pytest.raises(JournalConflict):
            await a.transition(claimed, Event.DEFER)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_silent_peer_is_noticed_by_tcp_keepalives_unless_the_uri_sets_its_own(
    postgres_database: MakeDatabase,
) -> None:
    """A network cut that closes nothing would leave a statement (or the listener) waiting for the
    kernel's timeout; libpq's keepalives and ``tcp_user_timeout`` end the wait. A URI that sets
    any of those settings keeps its own, unmixed with ours."""
    uri = postgres_database("keepalive")

    async def settings(journal: Journal) -> dict[str, str]:
        async def read(conn: psycopg.AsyncConnection) -> dict[str, str]:  # type: ignore[type-arg]
            return conn.info.get_parameters()

        return await journal._session.read(read)  # type: ignore[attr-defined]

    ours = await open_journal(uri, campaign="c")
    theirs = await open_journal(f"{uri}&keepalives_idle=3", campaign="c")
    try:
        got = await settings(ours)
        assert {k: got.get(k) for k in ("keepalives", "keepalives_idle", "tcp_user_timeout")} == {
            "keepalives": "1",
            "keepalives_idle": "10",
            "tcp_user_timeout": "25000",
        }
        got = await settings(theirs)
        assert got.get("keepalives_idle") == "3"
        assert "tcp_user_timeout" not in got and "keepalives_count" not in got
    finally:
        await ours.aclose()
        await theirs.aclose()
