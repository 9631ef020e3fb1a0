"""The read-only snapshot of a PostgreSQL journal's campaign, read beside a worker that works on it,
against a real server (:mod:`tests.support.postgres`).

The expected counts and rows are written out by hand from the changes each test makes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from asyncjobs.errors import JournalError, JournalSchemaError
from asyncjobs.journal import Journal, open_journal
from asyncjobs.journal.pg_readonly import PostgresSnapshot
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobSpec, JobState, Service, StateCounts
from tests.support.postgres import MakeDatabase

PASSWORD = "pg-PASSWORD-3f9d-never-show-me"
TABLES = ("asyncjobs_campaigns", "asyncjobs_jobs", "asyncjobs_events", "asyncjobs_meta", "asyncjobs_sweeps")


def spec(i: int, model: str) -> JobSpec:
    return JobSpec(f"s{i}", Service.BEDROCK, {"modelId": model, "roleArn": "r"}, source=f"c.jsonl:{i + 1}")


def with_password(uri: str) -> str:
    """pgserver's ``postgresql://postgres:@/db?host=/dir`` with a password (carried, never checked)."""
    return uri.replace("postgres:@", f"postgres:{PASSWORD}@", 1)


@pytest.fixture
async def worker(postgres_database: MakeDatabase) -> AsyncIterator[Journal]:
    """A worker midway through campaign ``camp``: s0 pending, s1 submitting (its lease), s2 submitted
    (with an ARN), s3 rejected, s4 pending; s3 and s4 on m2. It holds the m1 sweep lease."""
    journal = await open_journal(with_password(postgres_database("snap")), campaign="camp")
    await journal.add_specs([spec(0, "m1"), spec(1, "m1"), spec(2, "m1"), spec(3, "m2"), spec(4, "m2")])
    jobs = {job.id: job async for job in journal.jobs()}
    await journal.transition(jobs["s1"], Event.CLAIM)
    submitting = await journal.transition(jobs["s2"], Event.CLAIM)
    await journal.transition(submitting, Event.CREATED, arn="arn:aws:bedrock:s2", submitted_at=1.0)
    submitting = await journal.transition(jobs["s3"], Event.CLAIM)
    await journal.transition(submitting, Event.REJECT, last_error="ValidationException: bad role")
    assert await journal.try_lease_sweep("bedrock", 60.0)
    yield journal
    await journal.aclose()


def dump(uri: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables a worker writes, in a fixed order."""
    with psycopg.connect(uri, autocommit=True) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


def has_table(uri: str, table: str) -> bool:
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


async def test_a_snapshot_beside_a_worker(worker: Journal, postgres_database: MakeDatabase) -> None:
    uri = with_password(postgres_database("snap"))
    async with await open_journal(uri, campaign="camp", readonly=True) as snapshot:
        assert isinstance(snapshot, PostgresSnapshot)
        assert (snapshot.campaign, snapshot.loading) == ("camp", None)
        assert snapshot.path == uri.replace(PASSWORD, "***")
        assert PASSWORD not in repr(snapshot)
        assert snapshot.counts() == StateCounts(
            {JobState.PENDING: 2, JobState.SUBMITTING: 1, JobState.SUBMITTED: 1, JobState.REJECTED: 1}
        )
        assert snapshot.counts_by_key() == {
            "bedrock:m1": StateCounts({JobState.PENDING: 1, JobState.SUBMITTING: 1, JobState.SUBMITTED: 1}),
            "bedrock:m2": StateCounts({JobState.PENDING: 1, JobState.REJECTED: 1}),
        }
        assert [(j.id, j.state) async for j in snapshot.jobs()] == [
            ("s0", JobState.PENDING),
            ("s1", JobState.SUBMITTING),
            ("s2", JobState.SUBMITTED),
            ("s3", JobState.REJECTED),
            ("s4", JobState.PENDING),
        ]
        assert [j.id async for j in snapshot.jobs([JobState.PENDING])] == ["s0", "s4"]
        s2 = await snapshot.get("s2")
        assert s2 is not None and s2.arn == "arn:aws:bedrock:s2"
        assert await snapshot.get("nope") is None
        events = await snapshot.events("s3")
        assert [(e.event, e.from_state, e.to_state) for e in events] == [
            ("claim", "pending", "submitting"),
            ("reject", "submitting", "rejected"),
        ]
        assert events[-1].detail is None
        assert await snapshot.events("s0") == []
        assert await snapshot.shards() == []


async def test_the_campaign_is_found_when_the_database_holds_one(
    worker: Journal, postgres_database: MakeDatabase
) -> None:
    async with await open_journal(postgres_database("snap"), readonly=True) as snapshot:
        assert snapshot.campaign == "camp"
        assert snapshot.counts().total == 5


async def test_the_snapshot_keeps_the_moment_it_was_opened(
    worker: Journal, postgres_database: MakeDatabase
) -> None:
    uri = postgres_database("snap")
    snapshot = await open_journal(uri, campaign="camp", readonly=True)
    try:
        assert (await snapshot.get("s4")) is not None
        s0 = await worker.get("s0")
        assert s0 is not None
        await worker.transition(s0, Event.CLAIM)  # after the snapshot's first read

        again = await snapshot.get("s0")
        assert again is not None and again.state == JobState.PENDING
        assert [j.id async for j in snapshot.jobs([JobState.PENDING])] == ["s0", "s4"]
    finally:
        await snapshot.aclose()
    async with await open_journal(uri, campaign="camp", readonly=True) as later:
        now = await later.get("s0")
        assert now is not None and now.state == JobState.SUBMITTING
        assert later.counts()[JobState.SUBMITTING] == 2


async def test_reading_writes_nothing_and_takes_no_lease(
    worker: Journal, postgres_database: MakeDatabase
) -> None:
    uri = postgres_database("snap")
    before = dump(uri)

    async with await open_journal(uri, campaign="camp", readonly=True) as snapshot:
        _ = [j async for j in snapshot.jobs()]
        await snapshot.events("s1")
        await snapshot.shards()

    assert dump(uri) == before  # the worker's lease on s1 and its sweep lease are as they were
    assert await worker.heartbeat() == 1


async def test_a_database_without_asyncjobs_tables_is_refused_and_left_as_it_is(
    postgres_database: MakeDatabase,
) -> None:
    uri = with_password(postgres_database("empty"))

    with pytest.raises(JournalSchemaError, match="not an asyncjobs database") as raised:
        await open_journal(uri, readonly=True)

    assert PASSWORD not in raised.value.message
    assert "***" in raised.value.message
    assert not has_table(uri, "asyncjobs_schema")


async def test_a_campaign_must_exist_and_be_named_among_several(
    worker: Journal, postgres_database: MakeDatabase
) -> None:
    uri = with_password(postgres_database("snap"))
    other = await open_journal(uri, campaign="other")
    await other.aclose()
    before = dump(uri)

    with pytest.raises(JournalError, match="no campaign 'nope'") as unknown:
        await open_journal(uri, campaign="nope", readonly=True)
    with pytest.raises(JournalError, match=r"holds 2 campaigns \(camp, other\).*--campaign-name") as unnamed:
        await open_journal(uri, readonly=True)

    assert dump(uri) == before  # no campaign made
    for raised in (unknown, unnamed):
        assert PASSWORD not in raised.value.message


async def test_a_database_made_before_records_shards_has_none(
    worker: Journal, postgres_database: MakeDatabase
) -> None:
    uri = postgres_database("snap")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("DROP TABLE asyncjobs_shards")

    async with await open_journal(uri, campaign="camp", readonly=True) as snapshot:
        assert await snapshot.shards() == []
        assert snapshot.counts().total == 5

    assert not has_table(uri, "asyncjobs_shards")  # a reader does not bring the schema up to date


async def test_an_unreachable_database_is_unavailable_without_its_password(tmp_path: object) -> None:
    uri = f"postgresql://someone:{PASSWORD}@/db?host={tmp_path}&connect_timeout=2"

    with pytest.raises(JournalError, match="cannot connect") as raised:
        await open_journal(uri, readonly=True)

    assert PASSWORD not in raised.value.message
