"""The journal's records shards (``ShardStore``): written with their jobs, all or nothing, and
what became of each shard kept across reopenings.

Run over every journal that keeps shards (:class:`~asyncjobs.journal.base.ShardStore`): SQLite
and PostgreSQL (a real server, :mod:`tests.support.postgres`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from asyncjobs.errors import CampaignError
from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.journal.base import ShardStore
from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.model import JobSpec, Service
from asyncjobs.records import RecordsOptions, ShardSpec, expand_records_line

Journal = SQLiteJournal | PostgresJournal
Opener = Callable[..., Awaitable[Journal]]
REQUEST = {
    "roleArn": "arn:aws:iam::123456789012:role/R",
    "modelId": "m1",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://in/staging/"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://out/results/"}},
}


@pytest.fixture(params=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[Journal] = []
    make_database = request.getfixturevalue("postgres_database") if request.param == "postgres" else None

    async def open_(name: str = "j.db") -> Journal:
        journal: Journal
        if make_database is None:
            journal = await open_journal(tmp_path / name, campaign="camp")
        else:
            opened_pg = await open_journal(make_database(name), campaign="camp")
            assert isinstance(opened_pg, PostgresJournal)
            journal = opened_pg
        opened.append(journal)
        return journal

    yield open_
    for journal in opened:
        await journal.aclose()


def shard_specs(folder: Path, line_id: str = "summaries", records: int = 30) -> list[ShardSpec]:
    path = folder / f"{line_id.replace('/', '-')}.jsonl"
    path.write_text(
        "".join(json.dumps({"recordId": f"R{i}", "modelInput": {"i": i}}) + "\n" for i in range(records))
    )
    return expand_records_line(
        line_id,
        Service.BEDROCK,
        REQUEST,
        path.name,
        base_dir=str(folder),
        options=RecordsOptions(campaign="camp", records_per_job=10, min_records_per_job=5),
        source="c.jsonl:1",
    )


async def test_shards_are_journaled_with_their_jobs(opener: Opener, tmp_path: Path) -> None:
    journal = await opener()
    assert isinstance(journal, ShardStore)
    specs = shard_specs(tmp_path)
    plain = JobSpec("plain", Service.BEDROCK, {**REQUEST}, source="c.jsonl:2")
    assert (await journal.add_specs([*specs, plain])).added == 4

    rows = await journal.shards()
    assert [r.job_id for r in rows] == ["summaries/00001", "summaries/00002", "summaries/00003"]
    assert {r.line_id for r in rows} == {"summaries"}
    assert [r.retry_round for r in rows] == [0, 0, 0]
    assert [r.shard["records"] for r in rows] == [10, 10, 10]
    assert [r.input_uri for r in rows] == [s.input_uri for s in specs]
    assert all(r.uploaded_at is None and r.collected_at is None for r in rows)
    assert await journal.shard("plain") is None
    assert (await journal.add_specs(specs)).existing == 3  # a resumed ingest: nothing new
    assert len(await journal.shards()) == 3


async def test_an_ingest_that_fails_leaves_no_shard(opener: Opener, tmp_path: Path) -> None:
    journal = await opener()
    specs = shard_specs(tmp_path)
    with pytest.raises(CampaignError, match="duplicate id"):
        await journal.add_specs([*specs, specs[0]])
    assert await journal.shards() == []
    assert journal.counts().total == 0


async def test_retry_shards_name_their_line_and_round(opener: Opener, tmp_path: Path) -> None:
    journal = await opener()
    await journal.add_specs([*shard_specs(tmp_path), *shard_specs(tmp_path, "summaries/retry2", records=8)])
    rows = await journal.shards("summaries")
    assert [(r.job_id, r.retry_round) for r in rows] == [
        ("summaries/00001", 0),
        ("summaries/00002", 0),
        ("summaries/00003", 0),
        ("summaries/retry2/00001", 2),
    ]


async def test_uploads_and_outputs_are_kept(opener: Opener, tmp_path: Path) -> None:
    journal = await opener()
    await journal.add_specs(shard_specs(tmp_path))
    await journal.mark_uploaded("summaries/00002")
    manifest = {"totalRecordCount": 10, "inputTokenCount": 7}
    await journal.record_output("summaries/00002", "s3://out/x.out", "s3://out/manifest.json.out", manifest)
    await journal.aclose()

    again = await opener()
    row = await again.shard("summaries/00002")
    assert row is not None and row.uploaded_at is not None and row.collected_at is not None
    assert (row.output_uri, row.manifest_uri, row.manifest) == (
        "s3://out/x.out",
        "s3://out/manifest.json.out",
        manifest,
    )
    other = await again.shard("summaries/00001")
    assert other is not None and other.uploaded_at is None and other.output_uri is None


async def test_a_journal_made_before_shards_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with await open_journal(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE shards")  # as a journal of an earlier version
        conn.commit()
    async with await open_journal(path) as journal:
        assert await journal.shards() == []
        await journal.add_specs(shard_specs(tmp_path))
        assert len(await journal.shards()) == 3


async def test_a_postgres_database_made_before_shards_gains_the_table(
    postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri = postgres_database("old")
    async with await open_journal(uri, campaign="camp"):
        pass
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("DROP TABLE asyncjobs_shards")  # as a database of an earlier version
    async with await open_journal(uri, campaign="camp") as journal:
        assert isinstance(journal, PostgresJournal)
        assert await journal.shards() == []
        await journal.add_specs(shard_specs(tmp_path))
        assert len(await journal.shards()) == 3
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT version FROM asyncjobs_schema").fetchall() == [(1,)]


async def test_a_postgres_worker_joining_adds_no_shard(
    postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri = postgres_database("shared")
    specs = shard_specs(tmp_path)
    async with (
        await open_journal(uri, campaign="camp") as first,
        await open_journal(uri, campaign="camp") as second,
    ):
        assert isinstance(first, PostgresJournal) and isinstance(second, PostgresJournal)
        assert (await first.add_specs(specs)).added == 3
        await first.mark_uploaded("summaries/00001")
        joined = await second.add_specs(specs)
        assert (joined.added, joined.existing) == (0, 3)
        rows = await second.shards()
        assert [r.job_id for r in rows] == ["summaries/00001", "summaries/00002", "summaries/00003"]
        assert rows[0].uploaded_at is not None  # what the first worker recorded is kept
