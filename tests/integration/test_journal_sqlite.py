"""What is particular to the SQLite journal: the bulk load of a fresh journal, and journals
created before it (unique column constraints instead of droppable indexes)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from asyncjobs.errors import CampaignError
from asyncjobs.journal import files, open_journal
from asyncjobs.journal.schema import JOB_INDEXES, SCHEMA
from asyncjobs.model import JobSpec, Service
from tests.support.specs import numbered_spec


def indexes(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def journal_mode(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


async def test_a_bulk_load_leaves_the_indexes_and_wal_in_place(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with await open_journal(path) as journal:
        specs = [numbered_spec(i) for i in range(7_003)]  # two full batches and a short one
        assert (await journal.add_specs(specs)).added == 7_003
        assert set(JOB_INDEXES) <= indexes(path)
        assert journal_mode(path) == "wal"
        job = await journal.get("s7002")
        assert job is not None and job.seq == 7_003 and job.digest == specs[-1].digest
        assert [j.id for j in await journal.pending("bedrock:m1", 3)] == ["s0", "s1", "s2"]
        again = await journal.add_specs(
            [numbered_spec(7_002), numbered_spec(7_003)]
        )  # the row path, on the built indexes
        assert (again.added, again.existing) == (1, 1)


async def test_a_failed_bulk_load_leaves_an_empty_indexed_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with await open_journal(path) as journal:
        dup = [numbered_spec(i) for i in range(6_000)] + [
            JobSpec("s5", Service.BEDROCK, {"modelId": "m1"}, "x:9")
        ]
        with pytest.raises(CampaignError, match=r"^x:9: id: duplicate id 's5' \(first at c\.jsonl:6\)"):
            await journal.add_specs(dup)
        assert journal.counts().total == 0
        assert set(JOB_INDEXES) <= indexes(path)
        assert journal_mode(path) == "wal"
        assert (await journal.add_specs([numbered_spec(1), numbered_spec(2)])).added == 2
    with contextlib.closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(  # the unique indexes are back in force
            "INSERT INTO jobs (id, service, quota_key, request, digest, job_name, state, attempt,"
            " ingest, updated_at) SELECT id, service, quota_key, request, digest, 'other', state,"
            " attempt, ingest, updated_at FROM jobs WHERE id = 's1'"
        )


async def test_the_first_repeat_in_input_order_is_named(tmp_path: Path) -> None:
    async with await open_journal(tmp_path / "j.db") as journal:
        specs = [numbered_spec(i, jobName=f"n{i}") for i in range(8_000)]
        specs[7_000] = numbered_spec(7_000, jobName="n2")  # repeats n2 (line 3) at line 7001 ...
        specs[7_500] = numbered_spec(7_500, jobName="n1")  # ... before n1 is repeated at line 7501
        with pytest.raises(CampaignError, match=r"^c\.jsonl:7001: request\.jobName: duplicate jobName 'n2'"):
            await journal.add_specs(specs)


async def test_digests_are_those_of_the_specs(tmp_path: Path) -> None:
    arn = "arn:aws:personalize:eu-west-1:1:v"
    specs = [
        numbered_spec(0, tags=[{"key": "naïve", "value": "日本"}]),
        JobSpec("p", Service.PERSONALIZE_SEGMENT, {"solutionVersionArn": arn}),
    ]
    async with await open_journal(tmp_path / "j.db") as journal:
        await journal.add_specs(specs)
        for s in specs:
            job = await journal.get(s.id)
            assert job is not None
            assert (job.digest, job.quota_key) == (s.digest, s.quota_key)


async def test_a_journal_with_unique_columns_loads_row_by_row(tmp_path: Path) -> None:
    """Journals created before the indexes became droppable keep working, duplicates named."""
    path = tmp_path / "old.db"
    async with await open_journal(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the earlier schema: UNIQUE column constraints
        conn.execute("DROP TABLE jobs")
        old = SCHEMA.split("CREATE TABLE events")[0]
        old = old.replace("id            TEXT NOT NULL,", "id            TEXT NOT NULL UNIQUE,")
        old = old.replace("job_name      TEXT NOT NULL,", "job_name      TEXT NOT NULL UNIQUE,")
        for statement in old.split(";"):
            if statement.strip() and "UNIQUE INDEX" not in statement and "CREATE TABLE meta" not in statement:
                conn.execute(statement)
        conn.commit()
    assert not {"jobs_id", "jobs_job_name"} & indexes(path)
    async with await open_journal(path) as journal:
        dup = [numbered_spec(i) for i in range(6_000)] + [
            JobSpec("s5", Service.BEDROCK, {"modelId": "m1"}, "x:9")
        ]
        with pytest.raises(CampaignError, match=r"^x:9: id: duplicate id 's5'"):
            await journal.add_specs(dup)
        assert (await journal.add_specs([numbered_spec(i) for i in range(6_000)])).added == 6_000
        assert journal_mode(path) == "wal"


_LOAD = """
import asyncio, sys
from asyncjobs.journal import open_journal
from asyncjobs.model import JobSpec, Service
from tests.support.specs import numbered_spec

async def main():
    journal = await open_journal(sys.argv[1])
    specs = (JobSpec(f"s{i}", Service.BEDROCK, {"modelId": "m1", "roleArn": "r"}) for i in range(1_000_000))
    await journal.add_specs(specs)

asyncio.run(main())
"""


def rows_loaded(path: Path) -> int:
    """How many rows a bulk load says (in its lock record) it has inserted so far."""
    record = files.holder(path)
    loading = None if record is None else record.loading
    if not loading or loading.get("stage") != "inserting":
        return 0
    return int(loading["jobs"])


async def test_a_load_killed_halfway_leaves_a_whole_empty_journal(tmp_path: Path) -> None:
    """SIGKILL in the middle of a bulk load (rollback journal on disk, indexes dropped in the
    open transaction): the next open rolls it back, and the journal is as it was before.

    The load is killed from outside, once its lock record says three batches are in: the
    million specs it was given keep it inserting long after that."""
    path = tmp_path / "j.db"
    async with await open_journal(path):
        pass
    log = tmp_path / "load.log"
    with log.open("wb") as stderr, anyio.fail_after(60):
        async with await anyio.open_process([sys.executable, "-c", _LOAD, str(path)], stderr=stderr) as load:
            while load.returncode is None:  # a load that ends by itself fails the test below
                if rows_loaded(path) >= 15_000:
                    load.send_signal(signal.SIGKILL)
                    break
                await anyio.sleep(0.01)
            await load.wait()
    assert load.returncode == -signal.SIGKILL, log.read_text()
    assert (tmp_path / "j.db-journal").exists(), "the kill left a hot rollback journal"
    async with await open_journal(path) as journal:
        assert journal.counts().total == 0
        assert journal_mode(path) == "wal"
        assert set(JOB_INDEXES) <= indexes(path)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (await journal.add_specs([numbered_spec(i) for i in range(6_000)])).added == 6_000
