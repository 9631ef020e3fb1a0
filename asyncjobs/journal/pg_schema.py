"""The PostgreSQL journal's tables: one set per database, every row keyed by its campaign.

Created on first use, under an advisory lock so that workers starting together do not race;
``asyncjobs_schema.version`` is the schema version, and a newer one is refused. Times are
seconds since the epoch (``double precision``), as in the SQLite journal; lease and bucket
times come from the database's clock (:data:`NOW`), so hosts whose clocks disagree still agree
on when a lease expires. PostgreSQL 13 or later (``pg_xact_status`` on ``xid8``).

A table added after a database was made (``asyncjobs_shards``) is created when a worker of a
later asyncjobs opens it (every statement is ``IF NOT EXISTS``): an older asyncjobs ignores the
table, so the schema version stays.

:func:`prepare` (a worker) creates what is missing; :func:`check_version` (a reader) only
checks. :func:`find_campaign` is how both find the campaign they were asked for.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from ..errors import JournalError, JournalSchemaError
from . import schema

Connection = psycopg.AsyncConnection[Any]

SCHEMA_VERSION = 1

#: The database's clock, in seconds since the epoch: the start of the statement (not of its
#: transaction), so one statement that names it twice sees one time.
NOW = "extract(epoch from statement_timestamp())::float8"

#: The advisory lock key (any constant) under which the tables are created.
SCHEMA_LOCK = 0x41534A42_0001

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS asyncjobs_schema (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS asyncjobs_campaigns (
        name       text PRIMARY KEY,
        created_at double precision NOT NULL,
        ingests    integer NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS asyncjobs_jobs (
        seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        campaign      text NOT NULL REFERENCES asyncjobs_campaigns (name) ON DELETE CASCADE,
        id            text NOT NULL,
        service       text NOT NULL,
        quota_key     text NOT NULL,
        request       text NOT NULL,
        digest        text NOT NULL,
        given_name    text,
        job_name      text NOT NULL,
        state         text NOT NULL,
        attempt       integer NOT NULL,
        arn           text,
        remote_status text,
        last_error    text,
        source        text,
        ingest        integer NOT NULL,
        submitted_at  double precision,
        updated_at    double precision NOT NULL,
        lease_owner   text,
        lease_expires double precision,
        UNIQUE (campaign, id),
        UNIQUE (campaign, job_name)
    )""",
    "CREATE INDEX IF NOT EXISTS asyncjobs_jobs_by_state ON asyncjobs_jobs (campaign, state, quota_key, seq)",
    """CREATE TABLE IF NOT EXISTS asyncjobs_events (
        seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        campaign   text NOT NULL,
        job_id     text NOT NULL,
        ts         double precision NOT NULL,
        event      text NOT NULL,
        from_state text NOT NULL,
        to_state   text NOT NULL,
        attempt    integer NOT NULL,
        arn        text,
        detail     text
    )""",
    "CREATE INDEX IF NOT EXISTS asyncjobs_events_by_job ON asyncjobs_events (campaign, job_id, seq)",
    """CREATE TABLE IF NOT EXISTS asyncjobs_meta (
        campaign text NOT NULL,
        key      text NOT NULL,
        value    text NOT NULL,
        PRIMARY KEY (campaign, key)
    )""",
    # a token bucket per campaign and key: the create rate that every worker shares
    """CREATE TABLE IF NOT EXISTS asyncjobs_buckets (
        campaign text NOT NULL,
        key      text NOT NULL,
        tokens   double precision NOT NULL,
        at       double precision NOT NULL,
        PRIMARY KEY (campaign, key)
    )""",
    # who sweeps each job kind's statuses, until when
    """CREATE TABLE IF NOT EXISTS asyncjobs_sweeps (
        campaign text NOT NULL,
        kind     text NOT NULL,
        owner    text NOT NULL,
        expires  double precision NOT NULL,
        PRIMARY KEY (campaign, kind)
    )""",
    # a records shard per shard job, beside its job row (asyncjobs.journal.shards)
    """CREATE TABLE IF NOT EXISTS asyncjobs_shards (
        campaign     text NOT NULL REFERENCES asyncjobs_campaigns (name) ON DELETE CASCADE,
        job_id       text NOT NULL,
        line_id      text NOT NULL,
        service      text NOT NULL,
        shard        text NOT NULL,
        input_uri    text NOT NULL,
        retry_round  integer NOT NULL,
        uploaded_at  double precision,
        output_uri   text,
        manifest_uri text,
        manifest     text,
        collected_at double precision,
        PRIMARY KEY (campaign, job_id)
    )""",
    "CREATE INDEX IF NOT EXISTS asyncjobs_shards_by_line"
    " ON asyncjobs_shards (campaign, line_id, retry_round, job_id)",
)

#: The table made last: a database without it is brought up to date by :data:`STATEMENTS`.
NEWEST_TABLE = "asyncjobs_shards"

#: The columns of a job row: the same as SQLite's, so one codec reads both.
JOB_COLUMNS = schema.JOB_COLUMNS

#: The columns an ingest copies in: a row of :func:`asyncjobs.journal.ingest.encode_rows`,
#: then the campaign, the state and the attempt.
INGEST_COLUMNS = (
    "id, service, quota_key, request, digest, given_name, job_name, source, ingest, updated_at,"
    " campaign, state, attempt"
)


async def prepare(conn: Connection, shown: str) -> None:
    """Create the tables once per database (and those added since it was made); refuse a
    schema newer than this asyncjobs."""
    if not await has_table(conn, NEWEST_TABLE):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in STATEMENTS:
                await conn.execute(statement)
            row = await (await conn.execute("SELECT count(*) FROM asyncjobs_schema")).fetchone()
            if row is not None and row[0] == 0:
                await conn.execute("INSERT INTO asyncjobs_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
    await check_version(conn, shown)


async def check_version(conn: Connection, shown: str) -> None:
    """Refuse a database that holds no asyncjobs schema, or a newer one than this asyncjobs."""
    if not await has_table(conn, "asyncjobs_schema"):
        raise JournalSchemaError(f"journal {shown}: not an asyncjobs database (no schema version)")
    row = await (await conn.execute("SELECT max(version) FROM asyncjobs_schema")).fetchone()
    version = row[0] if row else None
    if version is None:
        raise JournalSchemaError(f"journal {shown}: not an asyncjobs database (no schema version)")
    if version > SCHEMA_VERSION:
        raise JournalSchemaError(
            f"journal {shown}: journal schema version {version} is newer than this asyncjobs supports "
            f"({SCHEMA_VERSION}); upgrade asyncjobs"
        )


async def has_table(conn: Connection, table: str) -> bool:
    found = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))).fetchone()
    return bool(found and found[0])


async def find_campaign(conn: Connection, shown: str, campaign: str | None, create: bool) -> str:
    """The campaign to open: ``campaign``, or the database's only one when it is None.

    A campaign not in the database is created when ``create`` is true (the first worker), else
    refused; so is a missing name when the database holds none or several."""
    cur = await conn.execute("SELECT name FROM asyncjobs_campaigns ORDER BY name")
    names = [str(r[0]) for r in await cur.fetchall()]
    if campaign is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise JournalError(f"journal {shown}: the database holds no campaign; name one (--campaign-name)")
        listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise JournalError(
            f"journal {shown}: the database holds {len(names)} campaigns ({listed});"
            " name one (--campaign-name)"
        )
    if campaign not in names:
        if not create:
            raise JournalError(f"journal {shown}: no campaign {campaign!r} in the database")
        await conn.execute(
            "INSERT INTO asyncjobs_campaigns (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (campaign, time.time()),
        )
    return campaign
