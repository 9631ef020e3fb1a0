"""Reading a campaign of the PostgreSQL journal: jobs, events, shards and counts.

Every read is a function of a connection and the campaign's name, so the one SQL serves both
who read: a worker's :class:`~.postgres.PostgresJournal` (through its session, which rides
outages) and the read-only snapshot of ``asyncjobs status`` (:mod:`.pg_readonly`), which never
writes.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..model import Job, JobState
from . import shards
from .base import EventRecord
from .pg_schema import JOB_COLUMNS
from .pg_session import Connection
from .schema import row_to_job
from .shards import ShardRow

#: The states that hold one of a quota key's running-job slots, as SQL.
ACTIVE = "('submitting', 'submitted', 'running')"
#: A page of :func:`jobs_after`.
PAGE = 1000


async def select_jobs(conn: Connection, campaign: str, where: str, args: Sequence[Any]) -> list[Job]:
    """The campaign's jobs that match ``where`` (SQL after ``AND``, its ``%s`` filled from ``args``)."""
    cur = await conn.execute(
        f"SELECT {JOB_COLUMNS} FROM asyncjobs_jobs WHERE campaign = %s AND {where}", (campaign, *args)
    )
    return [row_to_job(tuple(r), campaign) for r in await cur.fetchall()]


async def pending(conn: Connection, campaign: str, quota_key: str, limit: int, skip: int) -> list[Job]:
    """Up to ``limit + skip`` pending jobs of ``quota_key``, oldest first."""
    where = "state = 'pending' AND quota_key = %s ORDER BY seq LIMIT %s"
    return await select_jobs(conn, campaign, where, (quota_key, limit + skip))


async def active(conn: Connection, campaign: str) -> list[Job]:
    return await select_jobs(conn, campaign, f"state IN {ACTIVE} ORDER BY seq", ())


async def get(conn: Connection, campaign: str, job_id: str) -> Job | None:
    found = await select_jobs(conn, campaign, "id = %s", (job_id,))
    return found[0] if found else None


async def jobs_after(
    conn: Connection, campaign: str, after: int, states: Iterable[JobState] | None
) -> list[Job]:
    """A page of the jobs (in ``states``, if given) after the one numbered ``after``, in campaign order."""
    if states is None:
        return await select_jobs(conn, campaign, f"seq > %s ORDER BY seq LIMIT {PAGE}", (after,))
    wanted = [str(s) for s in states]
    return await select_jobs(
        conn, campaign, f"seq > %s AND state = ANY(%s) ORDER BY seq LIMIT {PAGE}", (after, wanted)
    )


async def all_jobs(
    read: Callable[[Callable[[Connection], Awaitable[list[Job]]]], Awaitable[list[Job]]],
    campaign: str,
    states: Iterable[JobState] | None,
) -> AsyncIterator[Job]:
    """Every job (in ``states``, if given) in campaign order, a page at a time, each page read
    through ``read`` (the worker's session, or a snapshot's transaction)."""
    wanted = None if states is None else list(states)
    after = 0
    while True:
        page = await read(functools.partial(jobs_after, campaign=campaign, after=after, states=wanted))
        for job in page:
            yield job
        if len(page) < PAGE:
            return
        after = page[-1].seq


async def events(
    conn: Connection, campaign: str, job_id: str | None = None, limit: int | None = None
) -> list[EventRecord]:
    """The event log (of one job), oldest first."""
    sql = (
        "SELECT seq, job_id, ts, event, from_state, to_state, attempt, arn, detail"
        " FROM asyncjobs_events WHERE campaign = %s"
    )
    args: list[Any] = [campaign]
    if job_id is not None:
        sql += " AND job_id = %s"
        args.append(job_id)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT %s"
        args.append(limit)
    cur = await conn.execute(sql, args)
    return [EventRecord(*r) for r in await cur.fetchall()]


async def select_shards(conn: Connection, campaign: str, where: str, args: Sequence[Any]) -> list[ShardRow]:
    """The campaign's shards that match ``where``, by line, retry round and shard."""
    cur = await conn.execute(
        f"SELECT {shards.COLUMNS} FROM asyncjobs_shards WHERE campaign = %s AND {where}"
        " ORDER BY line_id, retry_round, job_id",
        (campaign, *args),
    )
    return [shards.decode_row(r) for r in await cur.fetchall()]


async def all_shards(conn: Connection, campaign: str, line_id: str | None = None) -> list[ShardRow]:
    """Every shard (of the records line ``line_id``), by line, retry round and shard."""
    if line_id is None:
        return await select_shards(conn, campaign, "true", ())
    return await select_shards(conn, campaign, "line_id = %s", (line_id,))


async def counts(conn: Connection, campaign: str) -> dict[str, Counter[JobState]]:
    """Jobs per state for each quota key (one ``GROUP BY`` over the state index)."""
    cur = await conn.execute(
        "SELECT quota_key, state, count(*) FROM asyncjobs_jobs WHERE campaign = %s GROUP BY 1, 2", (campaign,)
    )
    per_key: dict[str, Counter[JobState]] = defaultdict(Counter)
    for key, state, n in await cur.fetchall():
        per_key[key][JobState(state)] = n
    return per_key
