"""The SQLite journal's schema: its tables, its version, and a row of ``jobs`` read as a :class:`Job`.

- **Versioned.** ``PRAGMA user_version`` holds the schema version; a newer one is refused, and
  ``PRAGMA application_id`` marks the file as an asyncjobs journal (another database is refused).
- **Created whole.** A new journal's tables, indexes and ``meta`` rows are created in one
  transaction: a journal is either complete or absent.
- **Bulk-loadable.** The indexes of ``jobs`` are plain ``CREATE INDEX`` statements
  (:data:`JOB_INDEXES`) so that a bulk load can drop them and build them once at the end
  (:mod:`.ingest`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import orjson

from ..errors import JournalError, JournalSchemaError, JournalUnwritable
from ..model import Job, JobState, Service
from ..naming import idempotency_token
from .shards import create_table as create_shards_table
from .transaction import is_unwritable, rollback

SCHEMA_VERSION = 1
APPLICATION_ID = 0x41534A42  # "ASJB"
Durability = Literal["full", "normal"]

#: The indexes of ``jobs``, dropped while a fresh journal is bulk-loaded and built after.
#: (Journals made by earlier development versions enforce the two unique ones as column constraints, which
#: cannot be dropped: they are loaded row by row.)
JOB_INDEXES = {
    "jobs_id": "CREATE UNIQUE INDEX jobs_id ON jobs (id)",
    "jobs_job_name": "CREATE UNIQUE INDEX jobs_job_name ON jobs (job_name)",
    "jobs_by_state": "CREATE INDEX jobs_by_state ON jobs (state, quota_key, seq)",
}
#: A new job row: the values of :func:`asyncjobs.journal.ingest.encode_rows`, pending, at attempt 1.
INSERT_JOB = (
    "INSERT INTO jobs (id, service, quota_key, request, digest, given_name, job_name,"
    " source, ingest, updated_at, state, attempt) VALUES "
)
JOB_VALUES = "(?,?,?,?,?,?,?,?,?,?, 'pending', 1)"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL,
    service       TEXT NOT NULL,
    quota_key     TEXT NOT NULL,
    request       TEXT NOT NULL,
    digest        TEXT NOT NULL,
    given_name    TEXT,
    job_name      TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    arn           TEXT,
    remote_status TEXT,
    last_error    TEXT,
    source        TEXT,
    ingest        INTEGER NOT NULL,
    submitted_at  REAL,
    updated_at    REAL NOT NULL
);
CREATE UNIQUE INDEX jobs_id ON jobs (id);
CREATE UNIQUE INDEX jobs_job_name ON jobs (job_name);
CREATE INDEX jobs_by_state ON jobs (state, quota_key, seq);
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL,
    ts         REAL NOT NULL,
    event      TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    arn        TEXT,
    detail     TEXT
);
CREATE INDEX events_by_job ON events (job_id, seq);
"""

#: The columns :func:`row_to_job` reads, in its order.
JOB_COLUMNS = (
    "id, seq, service, quota_key, state, attempt, job_name, request, digest, arn, "
    "remote_status, last_error, submitted_at, updated_at"
)


def row_to_job(row: sqlite3.Row | tuple[Any, ...], campaign: str) -> Job:
    """The job in a row of :data:`JOB_COLUMNS`; its token is derived, never stored."""
    (
        id_,
        seq,
        service,
        quota_key,
        state,
        attempt,
        name,
        request,
        digest,
        arn,
        remote,
        error,
        sub,
        upd,
    ) = row
    return Job(
        id=id_,
        seq=seq,
        service=Service(service),
        quota_key=quota_key,
        state=JobState(state),
        attempt=attempt,
        job_name=name,
        token=idempotency_token(campaign, id_, attempt, digest),  # derived, never stored
        request=orjson.loads(request),
        digest=digest,
        arn=arn,
        remote_status=remote,
        last_error=error,
        submitted_at=sub,
        updated_at=upd,
    )


def prepare(conn: sqlite3.Connection, path: Path, campaign: str, durability: Durability) -> str:
    """Check (or create) the schema on a newly opened connection; the journal's campaign name.

    An empty database becomes a journal of ``campaign``; an existing journal keeps its name.
    """
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        app_id, version = (
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
        )
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise JournalSchemaError(f"{path}: not an asyncjobs journal ({exc})") from exc
    if tables and app_id != APPLICATION_ID:
        raise JournalSchemaError(f"{path}: not an asyncjobs journal")
    if version > SCHEMA_VERSION:
        raise JournalSchemaError(
            f"{path}: journal schema version {version} is newer than this asyncjobs supports "
            f"({SCHEMA_VERSION}); upgrade asyncjobs"
        )
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {durability.upper()}")
        conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: keeps index pages hot during ingest
        if not tables:
            _create(conn, campaign)
        create_shards_table(conn)  # records shards: added to journals made before it (shards.py)
    except sqlite3.Error as exc:
        if is_unwritable(exc):
            raise JournalUnwritable(f"{path}: the journal is not writable: {exc}") from exc
        raise JournalError(f"{path}: {exc}") from exc
    row = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
    if row is None:
        raise JournalSchemaError(f"{path}: not an asyncjobs journal (no campaign name)")
    return str(row[0])


def _create(conn: sqlite3.Connection, campaign: str) -> None:
    """Create the tables of a new journal of ``campaign``, all in one transaction."""
    meta = ",".join(f"('{k}', '{v}')" for k, v in (("created_at", time.time()), ("ingests", 0)))
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("SAVEPOINT s")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"INSERT INTO meta (key, value) VALUES {meta}")
        conn.execute("INSERT INTO meta (key, value) VALUES ('campaign', ?)", (campaign,))
        conn.execute("RELEASE s")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
