"""Loading specs into the PostgreSQL journal: all or nothing, ``COPY`` in batches.

One transaction under the campaign's ingest lock (an advisory lock), so workers that start
together ingest one after the other: the first adds the specs, a later one finds them identical
and joins (a changed spec raises :class:`~asyncjobs.errors.SpecChanged`, a repeated id or job
name :class:`~asyncjobs.errors.CampaignError` naming both places). A records shard job's shard
row (:mod:`.shards`) is written in the same transaction as its job row. The input is read and
encoded in a worker thread, batch by batch, so a million-line campaign does not hold up the
event loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import anyio
from psycopg import errors as pgerrors

from ..errors import CampaignError, JournalError, SpecChanged
from ..model import JobSpec
from .ingest import batches, check_new_rows, encode_rows, name_taken
from .pg_schema import INGEST_COLUMNS
from .pg_session import Attempt, Connection, Session
from .shards import INSERT_COLUMNS as SHARD_COLUMNS
from .shards import shard_rows

BATCH = 5000

Row = tuple[Any, ...]
T = TypeVar("T")
# where a row of encode_rows (shared with the SQLite ingest) keeps what an ingest looks at
ID, QUOTA_KEY, DIGEST, JOB_NAME, SOURCE = 0, 2, 4, 6, 7


async def ingest(
    session: Session,
    campaign: str,
    specs: Iterable[JobSpec],
    on_commit: Callable[[Counter[str]], None] | None = None,
) -> tuple[Counter[str], int]:
    """Add ``specs`` to ``campaign``: the specs added per quota key (given to ``on_commit`` once
    committed), and how many were there already."""
    chunks = batches(specs, BATCH)

    def next_batch() -> list[JobSpec] | None:
        return next(chunks, None)

    async def work(conn: Connection, _: Attempt) -> tuple[Counter[str], int]:
        added: Counter[str] = Counter()
        existing = 0
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"asyncjobs:ingest:{campaign}",)
            )
            cur = await conn.execute(
                "UPDATE asyncjobs_campaigns SET ingests = ingests + 1 WHERE name = %s RETURNING ingests",
                (campaign,),
            )
            row = await cur.fetchone()
            if row is None:
                raise JournalError(f"journal {session.shown}: campaign {campaign!r} was removed")
            number = int(row[0])
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM asyncjobs_jobs WHERE campaign = %s)", (campaign,)
            )
            found = await cur.fetchone()
            fresh = not (found and found[0])
            while (batch := await anyio.to_thread.run_sync(next_batch)) is not None:
                rows = encode_rows(batch, campaign, number)
                if not fresh:
                    rows, skipped = await _skip_known(conn, campaign, rows, number)
                    existing += skipped
                await _copy(conn, campaign, rows)
                added_ids = {r[ID] for r in rows}
                await _insert_shards(conn, campaign, [s for s in batch if s.id in added_ids])
                added.update(r[QUOTA_KEY] for r in rows)
        return added, existing

    # the input is read as the load goes: a load cut off by an outage is not repeated here
    def committed(result: tuple[Counter[str], int]) -> None:
        if on_commit is not None:
            on_commit(result[0])

    return await session.call(work, retry="never", on_commit=committed)


async def _insert_shards(conn: Connection, campaign: str, specs: list[JobSpec]) -> None:
    """The shard rows of the shard specs among ``specs`` (their job rows were just added)."""
    rows = shard_rows(specs)
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        f"INSERT INTO asyncjobs_shards (campaign, {', '.join(SHARD_COLUMNS)})"
        " SELECT %s::text, * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
        " %s::int[])"
        " ON CONFLICT (campaign, job_id) DO NOTHING",
        (campaign, *(list(c) for c in columns)),
    )


async def _skip_known(conn: Connection, campaign: str, rows: list[Row], number: int) -> tuple[list[Row], int]:
    """``rows`` without the specs already journaled; raises on a repeat or a changed spec."""
    cur = await conn.execute(
        "SELECT id, digest, ingest, source FROM asyncjobs_jobs WHERE campaign = %s AND id = ANY(%s)",
        (campaign, [r[ID] for r in rows]),
    )
    known = {r[0]: r[1:] for r in await cur.fetchall()}
    kept = []
    for row in rows:
        if row[ID] not in known:
            kept.append(row)
            continue
        digest, when, first = known[row[ID]]
        source = row[SOURCE]
        if when == number:
            raise CampaignError(f"duplicate id {row[ID]!r} (first at {first})", source=source, field="id")
        if digest != row[DIGEST]:
            raise SpecChanged(row[ID], source)
    return kept, len(rows) - len(kept)


async def _copy(conn: Connection, campaign: str, rows: list[Row]) -> None:
    if not rows:
        return
    tail = (campaign, "pending", 1)
    try:
        async with conn.transaction():  # a savepoint: a repeat is diagnosed against what was there
            cur = conn.cursor()
            async with cur.copy(f"COPY asyncjobs_jobs ({INGEST_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row + tail)
    except pgerrors.UniqueViolation:
        await _raise_duplicate(conn, campaign, rows)
        raise


async def _raise_duplicate(conn: Connection, campaign: str, rows: list[Row]) -> None:
    """Name the first repeated id or job name of ``rows`` (against the journal, then within)."""
    cur = await conn.execute(
        "SELECT id, source FROM asyncjobs_jobs WHERE campaign = %s AND id = ANY(%s)",
        (campaign, [r[ID] for r in rows]),
    )
    names = check_new_rows(rows, {r[0]: r[1] for r in await cur.fetchall()})
    cur = await conn.execute(
        "SELECT job_name, source FROM asyncjobs_jobs WHERE campaign = %s AND job_name = ANY(%s)",
        (campaign, list(names)),
    )
    for name, first in await cur.fetchall():
        raise name_taken(name, first, names)
