"""The ``shards`` table: what the journal knows of each records shard beside its job row.

A shard job (:class:`~asyncjobs.records.expand.ShardSpec`) is journaled like any job, in
``jobs``; its shard (the records file's byte range and checksum), its input object and what
became of it live here, one row per shard job, keyed by the job's id:

- written by :meth:`~asyncjobs.journal.sqlite.SQLiteJournal.add_specs` in the same
  transaction as the job rows (a journal never holds a shard job without its shard);
- ``uploaded_at`` set once its input object is in S3 (before its create is sent);
- ``output_uri``, ``manifest_uri``, ``manifest`` (Bedrock's ``manifest.json.out``, as JSON
  text) and ``collected_at`` set once its job ended and its outputs were found.

``retry_round`` is 0 for a records line's own shards and k for the shards of its k-th retry
of failed records (:mod:`asyncjobs.records.retry` names their line ``<id>/retry<k>``).

The table is created with a new journal, and added to a journal made before it when one is
opened for writing (``CREATE TABLE IF NOT EXISTS``): an older asyncjobs ignores the table, so
the schema version stays. The functions here run on the journal's connection, in its thread.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..model import JobSpec

SHARDS_TABLE = """
CREATE TABLE IF NOT EXISTS shards (
    job_id       TEXT PRIMARY KEY,
    line_id      TEXT NOT NULL,
    service      TEXT NOT NULL,
    shard        TEXT NOT NULL,
    input_uri    TEXT NOT NULL,
    retry_round  INTEGER NOT NULL,
    uploaded_at  REAL,
    output_uri   TEXT,
    manifest_uri TEXT,
    manifest     TEXT,
    collected_at REAL
);
CREATE INDEX IF NOT EXISTS shards_by_line ON shards (line_id, retry_round, job_id)
"""

_RETRY_LINE = re.compile(r"^(?P<line>.+)/retry(?P<round>[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class ShardRow:
    """One row of ``shards``."""

    job_id: str
    line_id: str
    service: str
    #: :meth:`asyncjobs.records.shards.Shard.as_dict`.
    shard: Mapping[str, Any]
    input_uri: str
    retry_round: int
    uploaded_at: float | None
    output_uri: str | None
    manifest_uri: str | None
    manifest: Any
    collected_at: float | None


COLUMNS = (
    "job_id, line_id, service, shard, input_uri, retry_round, uploaded_at, output_uri,"
    " manifest_uri, manifest, collected_at"
)


def create_table(conn: sqlite3.Connection) -> None:
    for statement in SHARDS_TABLE.split(";"):
        if statement.strip():
            conn.execute(statement)


def line_and_round(line_id: str) -> tuple[str, int]:
    """(records line id, retry round) of a shard spec's ``line_id``."""
    found = _RETRY_LINE.match(line_id)
    if found is None:
        return line_id, 0
    return found["line"], int(found["round"])


#: The columns of a row of :func:`shard_rows`, as an ingest writes them.
INSERT_COLUMNS = ("job_id", "line_id", "service", "shard", "input_uri", "retry_round")


def shard_rows(specs: Iterable[JobSpec]) -> list[tuple[str, str, str, str, str, int]]:
    """A row (:data:`INSERT_COLUMNS`) for each shard spec among ``specs``; the SQLite and the
    PostgreSQL ingest both write these."""
    # imported here: the journal does not depend on the records package otherwise
    from ..records.expand import ShardSpec

    rows = []
    for spec in specs:
        if isinstance(spec, ShardSpec):
            line, round_ = line_and_round(spec.line_id)
            shard = orjson.dumps(spec.shard.as_dict()).decode()
            rows.append((spec.id, line, str(spec.service), shard, spec.input_uri, round_))
    return rows


def insert_shards(conn: sqlite3.Connection, specs: Iterable[JobSpec]) -> None:
    """Rows for the shard specs among ``specs`` (inside the ingest's transaction); a shard
    already journaled is left as it is (its spec is the same, or ingest refused it)."""
    rows = shard_rows(specs)
    if rows:
        conn.executemany(
            f"INSERT INTO shards ({', '.join(INSERT_COLUMNS)})"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            rows,
        )


def decode_row(values: Sequence[Any]) -> ShardRow:
    """The :class:`ShardRow` of a row read as :data:`COLUMNS` (either journal)."""
    job_id, line, service, shard, uri, round_, uploaded, out, man_uri, manifest, collected = values
    return ShardRow(
        job_id=job_id,
        line_id=line,
        service=service,
        shard=orjson.loads(shard),
        input_uri=uri,
        retry_round=round_,
        uploaded_at=uploaded,
        output_uri=out,
        manifest_uri=man_uri,
        manifest=None if manifest is None else orjson.loads(manifest),
        collected_at=collected,
    )


def get_shard(conn: sqlite3.Connection, job_id: str) -> ShardRow | None:
    found = conn.execute(f"SELECT {COLUMNS} FROM shards WHERE job_id = ?", (job_id,)).fetchone()
    return None if found is None else decode_row(found)


def all_shards(conn: sqlite3.Connection, line_id: str | None = None) -> list[ShardRow]:
    """Every shard (of one line), by line, round and shard id (input order within a round)."""
    where, args = ("WHERE line_id = ?", (line_id,)) if line_id is not None else ("", ())
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM shards {where} ORDER BY line_id, retry_round, job_id", args
    ).fetchall()
    return [decode_row(r) for r in rows]


def mark_uploaded(conn: sqlite3.Connection, job_id: str) -> None:
    conn.execute(
        "UPDATE shards SET uploaded_at = ? WHERE job_id = ? AND uploaded_at IS NULL", (time.time(), job_id)
    )


def encode_manifest(manifest: Any) -> str | None:
    """The ``manifest`` column's text (JSON) for ``manifest`` (either journal)."""
    return None if manifest is None else orjson.dumps(manifest).decode()


def record_output(
    conn: sqlite3.Connection, job_id: str, output_uri: str, manifest_uri: str | None, manifest: Any
) -> None:
    conn.execute(
        "UPDATE shards SET output_uri = ?, manifest_uri = ?, manifest = ?, collected_at = ? WHERE job_id = ?",
        (
            output_uri,
            manifest_uri,
            encode_manifest(manifest),
            time.time(),
            job_id,
        ),
    )
