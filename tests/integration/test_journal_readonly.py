"""The read-only journal: one snapshot of a real SQLite journal, read beside the run that holds it.

The expected counts and rows are written out by hand from the changes each test makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asyncjobs.errors import JournalError, JournalSchemaError, JournalUnsafe
from asyncjobs.journal import Loading, ReadOnlyJournal, SQLiteJournal, open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobSpec, JobState, Service, StateCounts


def spec(i: int, model: str) -> JobSpec:
    return JobSpec(f"s{i}", Service.BEDROCK, {"modelId": model, "roleArn": "r"}, source=f"c.jsonl:{i + 1}")


async def held_journal(path: Path) -> SQLiteJournal:
    """A journal as a run leaves it midway: open (its lock held), with jobs in five states.

    s0 pending, s1 submitting, s2 submitted (with an ARN), s3 rejected, s4 pending; s3 and s4 on m2.
    """
    journal = await open_journal(path, campaign="camp")
    await journal.add_specs([spec(0, "m1"), spec(1, "m1"), spec(2, "m1"), spec(3, "m2"), spec(4, "m2")])
    jobs = {job.id: job async for job in journal.jobs()}
    await journal.transition(jobs["s1"], Event.CLAIM)
    submitting = await journal.transition(jobs["s2"], Event.CLAIM)
    await journal.transition(submitting, Event.CREATED, arn="arn:aws:bedrock:s2", submitted_at=1.0)
    submitting = await journal.transition(jobs["s3"], Event.CLAIM)
    await journal.transition(submitting, Event.REJECT, last_error="ValidationException: bad role")
    return journal


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    """:func:`held_journal` at ``c.db``, closed at teardown."""
    journal = await held_journal(tmp_path / "c.db")
    yield journal
    await journal.aclose()


def contents(path: Path) -> dict[str, bytes]:
    """Every file of the journal but SQLite's ``-shm``: a WAL reader marks there what it reads."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if not p.name.endswith("-shm")}


async def test_a_snapshot_beside_the_run_that_holds_the_journal(held: SQLiteJournal) -> None:
    async with await open_journal(held.path, readonly=True) as snapshot:
        assert isinstance(snapshot, ReadOnlyJournal)
        assert (snapshot.campaign, snapshot.path, snapshot.loading) == ("camp", held.path, None)
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
        chosen = [job async for job in snapshot.jobs([JobState.SUBMITTED, JobState.REJECTED])]
        assert [(j.id, j.arn, j.last_error) for j in chosen] == [
            ("s2", "arn:aws:bedrock:s2", None),
            ("s3", None, "ValidationException: bad role"),
        ]
        assert chosen[0].request == {"modelId": "m1", "roleArn": "r"}


async def test_the_snapshot_keeps_the_moment_it_was_opened(held: SQLiteJournal) -> None:
    snapshot = await open_journal(held.path, readonly=True)
    pending = await held.get("s0")
    assert pending is not None
    await held.transition(pending, Event.CANCEL)

    assert [j.state async for j in snapshot.jobs([JobState.CANCELLED])] == []
    assert snapshot.counts()[JobState.PENDING] == 2
    await snapshot.aclose()
    async with await open_journal(held.path, readonly=True) as later:
        assert [j.id async for j in later.jobs([JobState.CANCELLED])] == ["s0"]
        assert later.counts()[JobState.PENDING] == 1


async def test_reading_writes_nothing(held: SQLiteJournal) -> None:
    before = contents(Path(held.path))
    async with await open_journal(held.path, readonly=True) as snapshot:
        assert len([job async for job in snapshot.jobs()]) == 5
    assert contents(Path(held.path)) == before  # the run's lock record included


async def test_a_closed_journal_can_be_read_too(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await held_journal(path)).aclose()
    before = contents(path)
    async with await open_journal(path, readonly=True) as snapshot:
        assert snapshot.counts().total == 5
    after = contents(path)
    # a reader of a WAL database opens its side files, creating them (empty, private) if absent
    assert after.pop("c.db-wal") == b""
    assert stat.S_IMODE((tmp_path / "c.db-wal").stat().st_mode) == 0o600
    assert after == before


async def test_a_journal_made_before_records_shards_has_none(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await held_journal(path)).aclose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE shards")  # as a journal made before records lines were
        conn.commit()

    async with await open_journal(path, readonly=True) as snapshot:
        assert await snapshot.shards() == []
        assert snapshot.counts().total == 5

    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'shards'").fetchone() == (0,)


async def test_no_journal_is_an_error_and_none_is_created(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"nothing\.db: no such journal$"):
        await open_journal(tmp_path / "nothing.db", readonly=True)
    assert os.listdir(tmp_path) == []


async def test_a_journal_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await held_journal(path)).aclose()
    os.chmod(path, 0o666)
    with pytest.raises(JournalUnsafe, match=r"c\.db: refusing to read this journal file: group or others"):
        await open_journal(path, readonly=True)


async def test_a_schema_it_does_not_know_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await held_journal(path)).aclose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(JournalSchemaError, match="journal schema version 99 is not supported here"):
        await open_journal(path, readonly=True)


@contextlib.contextmanager
def bulk_load(path: Path, record: dict[str, object]) -> Iterator[None]:
    """What a run bulk-loading a new campaign does to readers: the database under an exclusive
    lock (outside WAL mode), and the load's progress in the lock record."""
    (path.parent / (path.name + ".lock")).write_text(f"4242\n{json.dumps({'loading': record})}\n")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


async def test_while_a_bulk_load_holds_the_database_the_lock_record_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    await (await open_journal(path)).aclose()
    with bulk_load(path, {"jobs": 1234, "stage": "inserting", "campaign": "big"}):
        snapshot = await ReadOnlyJournal.open(path, wait=0.1)

    assert snapshot.loading == Loading(pid=4242, jobs=1234, stage="inserting")
    assert (snapshot.campaign, snapshot.counts().total) == ("big", 0)
    assert [job async for job in snapshot.jobs()] == []
    await snapshot.aclose()
