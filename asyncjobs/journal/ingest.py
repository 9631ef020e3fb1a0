"""Adding specs to a SQLite journal: all or nothing, fast for a fresh journal of millions.

- **One transaction.** An ingest is all or nothing; its number (``meta.ingests``) is stored on
  each row it adds, which tells a spec repeated within this input (a duplicate) from one that an
  earlier ingest already added (skipped, unless its content changed: :class:`SpecChanged`).
- **Bulk load.** A fresh journal is loaded without its indexes, which are built once, sorted, at
  the end, with multi-row INSERTs, and with a rollback journal instead of the WAL (each page is
  written once, not to the WAL and again at the checkpoint). A repeated id or job name is then
  found when the unique indexes are built, and named with both of its places.
- **Row by row.** A journal that already holds jobs is loaded batch by batch against its indexes,
  skipping the specs it already holds.
- **Progress.** A bulk load holds the database until its commit, so it reports how far it has got
  through ``note_loading`` (the journal writes that into its lock file, for ``status``).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson
import structlog

from ..errors import CampaignError, SpecChanged
from ..model import JobSpec, spec_digest
from ..naming import job_name
from ..storable import storage_problem
from . import files
from .base import AddResult
from .schema import INSERT_JOB, JOB_INDEXES, JOB_VALUES
from .shards import insert_shards
from .transaction import transaction

log = structlog.get_logger("asyncjobs.journal")

T = TypeVar("T")
BATCH = 5000
#: ``note_loading(jobs, stage)``: a bulk load has inserted ``jobs`` rows and is at ``stage``
#: ("inserting", "indexing"); ``jobs`` None: the load is over.
NoteLoading = Callable[[int | None, str], None]
Row = tuple[Any, ...]
# where a row of encode_rows keeps what a duplicate's message names
_ID, _JOB_NAME, _SOURCE = 0, 6, 7


def encode_rows(batch: list[JobSpec], campaign: str, ingest: int) -> list[Row]:
    """The rows of ``batch`` (no I/O), in :data:`~.schema.INSERT_JOB`'s column order; raises
    on an id repeated within the batch.

    The hot loop of an ingest: the request is encoded once, and hashed as those bytes.
    """
    rows: list[Row] = []
    seen: dict[str, str | None] = {}
    now = time.time()
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    for spec in batch:
        spec_id = spec.id
        if spec_id in seen:
            raise CampaignError(
                f"duplicate id {spec_id!r} (first at {seen[spec_id]})",
                source=spec.source or "<specs>",
                field="id",
            )
        seen[spec_id] = spec.source
        request = spec.request
        service = str(spec.service)
        try:
            raw = dumps(request, option=sort)
        except orjson.JSONEncodeError:
            # a spec built in Python skips the campaign file's checks: name the member, write nothing
            path, reason = storage_problem(request) or ("request", "cannot be stored in the journal")
            raise CampaignError(reason, source=spec.source or f"spec {spec_id!r}", field=path) from None
        given = request.get("jobName")
        rows.append(
            (
                spec_id,
                service,
                spec.quota_key,
                raw.decode(),
                spec_digest(service, raw),
                given,
                job_name(campaign, spec_id, 1, given if isinstance(given, str) else None),
                spec.source or "<specs>",
                ingest,
                now,
            )
        )
    return rows


class Ingest:
    """The ingest engine of one journal's connection (used from the journal's one worker thread)."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, campaign: str, note_loading: NoteLoading
    ) -> None:
        self._conn = conn
        self._path = path
        self._campaign = campaign
        self._note_loading = note_loading

    def add(self, specs: Iterable[JobSpec]) -> tuple[AddResult, Counter[str]]:
        """Add ``specs`` in one transaction: what was done, and the jobs added per quota key."""
        added: Counter[str] = Counter()
        existing = 0
        # one process holds the journal (flock): it cannot fill up between here and BEGIN
        fresh = self._conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is None
        bulk = fresh and self._indexes_droppable()
        # a fresh journal is loaded with a rollback journal: each page is written once, not to
        # the WAL and again at the checkpoint (still atomic and durable; WAL again at the end)
        switched = bulk and self._journal_mode("delete")
        try:
            with transaction(self._conn, self._path) as conn:
                ingest = int(conn.execute("SELECT value FROM meta WHERE key = 'ingests'").fetchone()[0]) + 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'ingests'", (str(ingest),))
                if bulk:  # rows go in unindexed; the indexes are built once, sorted, at the end
                    for name in JOB_INDEXES:
                        conn.execute(f"DROP INDEX {name}")
                    self._note_loading(0, "inserting")
                for batch in batches(specs, BATCH):
                    rows = encode_rows(batch, self._campaign, ingest)
                    if bulk:
                        self._insert_many(rows)
                    else:
                        rows, skipped = self._store(rows, ingest, fresh)
                        existing += skipped
                    insert_shards(conn, batch)  # a shard job's shard, in the same transaction
                    added.update(r[2] for r in rows)
                    if bulk:
                        self._note_loading(added.total(), "inserting")
                if bulk:
                    self._note_loading(added.total(), "indexing")
                    self._build_indexes()
        finally:
            if bulk:
                self._note_loading(None, "inserting")
            if switched:
                self._journal_mode("wal")
        log.debug("asyncjobs.journal.ingested", added=sum(added.values()), existing=existing, bulk=bulk)
        return AddResult(added=sum(added.values()), existing=existing), added

    # ------------------------------------------------------------- the bulk load
    def _indexes_droppable(self) -> bool:
        """Whether the indexes of ``jobs`` can be dropped for a bulk load and built after it."""
        marks = ",".join("?" * len(JOB_INDEXES))
        (n,) = self._conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
            list(JOB_INDEXES),
        ).fetchone()
        return bool(n == len(JOB_INDEXES))

    def _journal_mode(self, mode: str) -> bool:
        """Switch SQLite's journal mode (outside a transaction); False if it could not be."""
        # the switch deletes the -wal and the load creates a -journal: SQLite would replay a WAL or
        # a "hot" rollback journal planted meanwhile, so the files are checked again first
        files.check_all(self._path)
        try:
            (now,) = self._conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()
        except sqlite3.Error as exc:  # a reader holds the file: carry on as before
            log.warning("asyncjobs.journal.mode_unchanged", mode=mode, error=str(exc))
            return False
        return bool(str(now).lower() == mode)

    def _insert_many(self, rows: list[Row]) -> None:
        """Insert ``rows`` with few statements: each step of a multi-row INSERT is one call
        into SQLite, instead of one per row."""
        conn = self._conn
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 10
        per = max(1, min(500, limit))
        whole = len(rows) - len(rows) % per
        if whole:
            sql = INSERT_JOB + ",".join([JOB_VALUES] * per)
            for start in range(0, whole, per):
                conn.execute(sql, [v for row in rows[start : start + per] for v in row])
        if whole < len(rows):
            conn.executemany(INSERT_JOB + JOB_VALUES, rows[whole:])

    def _build_indexes(self) -> None:
        """Build the indexes of a bulk load; a repeated id or job name raises CampaignError
        naming its two places (the first repeat in input order)."""
        for name, sql in JOB_INDEXES.items():
            try:
                self._conn.execute(sql)
            except sqlite3.IntegrityError:
                column, label, field = (
                    ("id", "id", "id") if name == "jobs_id" else ("job_name", "jobName", "request.jobName")
                )
                found = self._conn.execute(
                    f"SELECT value, source, first FROM (SELECT {column} AS value, seq, source,"
                    " row_number() OVER w AS n, first_value(source) OVER w AS first FROM jobs"
                    f" WINDOW w AS (PARTITION BY {column} ORDER BY seq)) WHERE n = 2 ORDER BY seq LIMIT 1"
                ).fetchone()
                if found is None:
                    raise
                value, source, first = found
                raise CampaignError(
                    f"duplicate {label} {value!r} (first at {first})", source=source, field=field
                ) from None

    # ------------------------------------------------------------- row by row
    def _store(self, rows: list[Row], ingest: int, fresh: bool) -> tuple[list[Row], int]:
        """Insert ``rows``, skipping specs already journaled; raises on duplicates and changes."""
        skipped = 0
        if not fresh:  # a resumed campaign: most ids may be known already
            marks = ",".join("?" * len(rows))
            known = {
                row[0]: row[1:]
                for row in self._conn.execute(
                    f"SELECT id, digest, ingest, source FROM jobs WHERE id IN ({marks})", [r[0] for r in rows]
                )
            }
            kept = []
            for row in rows:
                if row[_ID] not in known:
                    kept.append(row)
                    continue
                digest, when, first = known[row[_ID]]
                if when == ingest:
                    raise CampaignError(
                        f"duplicate id {row[_ID]!r} (first at {first})", source=row[_SOURCE], field="id"
                    )
                if digest != row[4]:
                    raise SpecChanged(row[_ID], row[_SOURCE])
                skipped += 1
            rows = kept
        self._insert(rows)
        return rows, skipped

    def _insert(self, rows: list[Row]) -> None:
        self._conn.execute("SAVEPOINT batch")
        try:
            self._conn.executemany(INSERT_JOB + JOB_VALUES, rows)
        except sqlite3.IntegrityError:
            # a constraint error leaves the transaction open: diagnose against the journal as it was
            self._conn.execute("ROLLBACK TO batch")
            self._conn.execute("RELEASE batch")
            self._raise_duplicate(rows)
            raise
        self._conn.execute("RELEASE batch")

    def _raise_duplicate(self, rows: list[Row]) -> None:
        """Raise CampaignError naming the id or job name of ``rows`` that is already taken."""
        marks = ",".join("?" * len(rows))
        ids = [r[_ID] for r in rows]
        taken = dict(self._conn.execute(f"SELECT id, source FROM jobs WHERE id IN ({marks})", ids))
        names = check_new_rows(rows, taken)
        for name, first in self._conn.execute(
            f"SELECT job_name, source FROM jobs WHERE job_name IN ({marks})", [r[_JOB_NAME] for r in rows]
        ):
            raise name_taken(name, first, names)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter); both journals ingest this way."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_new_rows(rows: list[Row], ids_taken: Mapping[str, str]) -> dict[str, str]:
    """Raise CampaignError for the first of ``rows`` whose id is taken (``ids_taken``: id ->
    where it first stands) or whose job name repeats within ``rows``; else each job name of
    ``rows`` with where it stands, to name a job name already in the journal by
    :func:`name_taken`. Both journals check a batch that would not go in with these."""
    for row in rows:
        if row[_ID] in ids_taken:
            raise CampaignError(
                f"duplicate id {row[_ID]!r} (first at {ids_taken[row[_ID]]})", source=row[_SOURCE], field="id"
            )
    names: dict[str, str] = {}
    for row in rows:
        name, source = row[_JOB_NAME], row[_SOURCE] or "<specs>"
        if name in names:
            raise name_taken(name, names[name], {name: source})
        names[name] = source
    return names


def name_taken(name: str, first: str, names: Mapping[str, str]) -> CampaignError:
    """The error for job name ``name``, first at ``first``, given again where ``names`` says."""
    return CampaignError(
        f"duplicate jobName {name!r} (first at {first})", source=names[name], field="request.jobName"
    )
