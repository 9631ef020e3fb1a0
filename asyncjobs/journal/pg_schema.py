"""The PostgreSQL journal's tables: one set per database, every row keyed by its campaign.

Created on first use, under an advisory lock so that workers starting together do not race;
``asyncjobs_schema.version`` is the schema version, and a newer one is refused. Times are
seconds since the epoch (``double precision``), as in the SQLite journal; lease and bucket
times come from the database's clock (:data:`NOW`), so hosts whose clocks disagree still agree
on when a lease expires. PostgreSQL 13 or later (``pg_xact_status`` on ``xid8``).

A table added after a database was made (``asyncjobs_shards``) is created when a worker of a
later asyncjobs opens it (every statement is ``IF NOT EXISTS``): an older asyncjobs ignores the
table, so the schema version stays.
"""

from __future__ import annotations

from . import schema

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
