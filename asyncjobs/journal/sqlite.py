"""The SQLite journal: one local file in WAL mode, the embedded default.

- **Durable before the network.** :meth:`SQLiteJournal.transition` returns only after
  its change is committed (``synchronous=FULL`` by default: it survives a power cut,
  not only a killed process).
- **Group commit.** Concurrent changes share one transaction (:mod:`.commit`).
- **One process at a time.** An exclusive ``flock`` on ``<journal>.lock`` is held while
  the journal is open; a second process gets :class:`~asyncjobs.errors.JournalLocked` (:mod:`.lock`).
- **Private.** The database (and so its WAL) and the lock file are created with mode 0600, and a
  journal file that is a link, another user's or writable by others is refused (see :mod:`.files`).
- **Versioned.** ``PRAGMA user_version`` holds the schema version; a newer one is refused (:mod:`.schema`).

The SQL lives here (reads and state changes), in :mod:`.schema` (the tables) and in
:mod:`.ingest` (adding specs).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ..errors import JournalError, JournalUnwritable
from ..lifecycle import Event
from ..model import Job, JobSpec, JobState, StateCounts, evolve
from . import files, schema, shards
from .base import AddResult, Change, EventRecord, key_counts, total_counts
from .commit import GroupCommit, apply_changes, check_changes, count_changes
from .ingest import Ingest
from .lock import JournalLock
from .schema import JOB_COLUMNS, SCHEMA_VERSION, Durability
from .single import SingleProcessWorker
from .transaction import transaction

__all__ = ["SCHEMA_VERSION", "Durability", "SQLiteJournal"]

T = TypeVar("T")


class SQLiteJournal(SingleProcessWorker):  # the several-worker primitives, for one process
    """A campaign journal in one SQLite file. Open it with :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: JournalLock, campaign: str) -> None:
        self._path = path
        self._conn = conn
        self._lock = lock
        self._campaign = campaign
        self._db = anyio.CapacityLimiter(1)  # the one connection is used from one thread at a time
        self._ingest = Ingest(conn, path, campaign, self._note_loading)
        self._commits = GroupCommit(self._commit)
        self._counts: dict[str, Counter[JobState]] = defaultdict(Counter)
        self._closed = False

    # ---------------------------------------------------------------- opening
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        campaign: str | None = None,
        create: bool = True,
        durability: Durability = "full",
        connection_class: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> SQLiteJournal:
        """Open (or create) the journal at ``path``.

        ``campaign`` names a new journal's campaign (default: the file's stem); an
        existing journal keeps the name it was created with. ``connection_class`` is the
        class of the one SQLite connection (``sqlite3.connect``'s ``factory``): tests give a
        subclass that fails chosen statements, as a full disk would.
        """
        return await anyio.to_thread.run_sync(
            cls._open_sync, Path(path), campaign, create, durability, connection_class
        )

    @classmethod
    def _open_sync(
        cls,
        path: Path,
        campaign: str | None,
        create: bool,
        durability: Durability,
        connection_class: type[sqlite3.Connection],
    ) -> SQLiteJournal:
        # nothing found at the journal's paths is trusted: a link, another user's file or one that
        # others can write is refused before anything is opened (files.py says why)
        if not files.exists(path) and not create:
            raise JournalError(f"{path}: no such journal")
        files.check_all(path)
        lock = JournalLock.acquire(path)
        try:
            try:
                identity = files.prepare_database(path, create=create)
            except OSError as exc:
                raise JournalUnwritable(f"{path}: cannot create the journal: {exc.strerror}") from exc
            files.check_all(path)  # again, now that no other asyncjobs process can be creating them
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, factory=connection_class
            )
            try:
                files.check_same(path, identity)  # SQLite opens by name: the name still means that file
                name = schema.prepare(conn, path, campaign or path.stem, durability)
                files.check_all(path)  # and the -wal and -shm it has just created or opened
            except BaseException:
                conn.close()
                raise
        except BaseException:
            # as before the split, the record stays: harmless, the next open overwrites it
            lock.release(clear_record=False)
            raise
        journal = cls(path, conn, lock, name)
        journal._load_counts()
        return journal

    def _load_counts(self) -> None:
        for key, state, n in self._conn.execute(
            "SELECT quota_key, state, count(*) FROM jobs GROUP BY quota_key, state"
        ):
            self._counts[key][JobState(state)] = n

    async def __aenter__(self) -> SQLiteJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._run(self._close_sync)

    def _close_sync(self) -> None:
        try:
            files.check_all(self._path)
        except JournalError:  # a planted WAL would be read by one more statement: close without one
            pass
        else:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
        self._conn.close()
        self._lock.release()

    # ------------------------------------------------------------- properties
    @property
    def campaign(self) -> str:
        return self._campaign

    @property
    def path(self) -> str:
        return str(self._path)

    def counts(self) -> StateCounts:
        return total_counts(self._counts)

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return key_counts(self._counts)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=self._db)

    # ---------------------------------------------------------------- ingest
    async def add_specs(self, specs: Iterable[JobSpec]) -> AddResult:
        result, added = await self._run(lambda: self._ingest.add(specs))
        for key, n in added.items():
            self._counts[key][JobState.PENDING] += n
        return result

    def _note_loading(self, jobs: int | None, stage: str) -> None:
        self._lock.note_loading(self._campaign, jobs, stage)

    # ----------------------------------------------------------------- reads
    def _to_job(self, row: tuple[Any, ...]) -> Job:
        return schema.row_to_job(row, self._campaign)

    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]:
        if limit <= 0 or not self._counts[quota_key][JobState.PENDING]:
            return []

        def read() -> list[Job]:
            skip = set(exclude)
            cur = self._conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' AND quota_key = ?"
                " ORDER BY seq LIMIT ?",
                (quota_key, limit + len(skip)),
            )
            return [j for j in map(self._to_job, cur) if j.id not in skip][:limit]

        return await self._run(read)

    async def active(self) -> list[Job]:
        def read() -> list[Job]:
            cur = self._conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs"
                " WHERE state IN ('submitting', 'submitted', 'running') ORDER BY seq"
            )
            return list(map(self._to_job, cur))

        return await self._run(read)

    async def get(self, job_id: str) -> Job | None:
        def read() -> Job | None:
            row = self._conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else self._to_job(row)

        return await self._run(read)

    async def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        wanted = [str(s) for s in states] if states is not None else None
        after = 0
        while True:
            where = "seq > ?"
            args: list[Any] = [after]
            if wanted is not None:
                where += f" AND state IN ({','.join('?' * len(wanted))})"
                args += wanted

            def read(where: str = where, args: list[Any] = args) -> list[Job]:
                cur = self._conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT 1000", args
                )
                return list(map(self._to_job, cur))

            page = await self._run(read)
            for job in page:
                yield job
            if len(page) < 1000:
                return
            after = page[-1].seq

    async def events(self, job_id: str | None = None, limit: int | None = None) -> list[EventRecord]:
        def read() -> list[EventRecord]:
            sql = "SELECT seq, job_id, ts, event, from_state, to_state, attempt, arn, detail FROM events"
            args: list[Any] = []
            if job_id is not None:
                sql += " WHERE job_id = ?"
                args.append(job_id)
            sql += " ORDER BY seq"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            return [EventRecord(*row) for row in self._conn.execute(sql, args)]

        return await self._run(read)

    async def paces(self) -> Mapping[str, float]:
        def read() -> dict[str, float]:
            rows = self._conn.execute("SELECT key, value FROM meta WHERE key LIKE 'pace:%'")
            return {key.removeprefix("pace:"): float(value) for key, value in rows}

        return await self._run(read)

    # ---------------------------------------------------------- records shards
    async def shard(self, job_id: str) -> shards.ShardRow | None:
        """The shard of the shard job ``job_id`` (None for any other job)."""
        return await self._run(lambda: shards.get_shard(self._conn, job_id))

    async def shards(self, line_id: str | None = None) -> list[shards.ShardRow]:
        """Every shard (of the records line ``line_id``), by line, retry round and shard."""
        return await self._run(lambda: shards.all_shards(self._conn, line_id))

    async def mark_uploaded(self, job_id: str) -> None:
        """The shard's input object is in S3 (committed on return)."""

        def write() -> None:
            with transaction(self._conn, self._path) as conn:
                shards.mark_uploaded(conn, job_id)

        with anyio.CancelScope(shield=True):
            await self._run(write)

    async def record_output(
        self, job_id: str, output_uri: str, manifest_uri: str | None, manifest: Any
    ) -> None:
        """Where the shard job's outputs are, and its manifest (committed on return)."""

        def write() -> None:
            with transaction(self._conn, self._path) as conn:
                shards.record_output(conn, job_id, output_uri, manifest_uri, manifest)

        with anyio.CancelScope(shield=True):
            await self._run(write)

    # ---------------------------------------------------------------- writes
    async def save_paces(self, paces: Mapping[str, float]) -> None:
        """Kept as ``pace:<service>:<region>`` rows of ``meta``: journals of earlier versions
        read them as unknown keys and ignore them, so the schema version stays."""
        if not paces:
            return

        def write() -> None:
            with transaction(self._conn, self._path) as conn:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [(f"pace:{key}", repr(float(pace))) for key, pace in paces.items()],
                )

        with anyio.CancelScope(shield=True):
            await self._run(write)

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        """Remote status changes within the same normalised state: one commit, no event rows."""
        if not updates:
            return []
        now = time.time()
        jobs = [evolve(job, job.state, now, {"remote_status": status}) for job, status in updates]

        def write() -> None:
            with transaction(self._conn, self._path) as conn:
                conn.executemany(
                    "UPDATE jobs SET remote_status = ?, updated_at = ? WHERE seq = ?",
                    [(j.remote_status, now, j.seq) for j in jobs],
                )

        with anyio.CancelScope(shield=True):
            await self._run(write)
        return jobs

    async def transition(self, job: Job, event: Event, *, detail: str | None = None, **fields: Any) -> Job:
        (new,) = await self.transition_many([Change(job, event, fields, detail)])
        return new

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        if not changes:
            return []
        check_changes(changes)  # raise now, before anything is queued
        return await self._commits.submit(changes)

    async def _commit(self, changes: list[Change]) -> list[Job]:
        """One group commit's batch: written in one transaction, then counted."""
        now = time.time()
        before, after = apply_changes(changes, now)
        await self._run(lambda: _write_changes(self._conn, self._path, changes, before, after, now))
        count_changes(self._counts, before, after)
        return after


def _write_changes(
    conn: sqlite3.Connection,
    path: Path,
    changes: list[Change],
    before: list[Job],
    after: list[Job],
    now: float,
) -> None:
    """The rows of a batch of changes: each job's new state and fields, and an event each."""
    with transaction(conn, path):
        conn.executemany(
            "UPDATE jobs SET state = ?, attempt = ?, job_name = ?, arn = ?,"
            " remote_status = ?, last_error = ?, submitted_at = ?, updated_at = ? WHERE seq = ?",
            [
                (
                    str(j.state),
                    j.attempt,
                    j.job_name,
                    j.arn,
                    j.remote_status,
                    j.last_error,
                    j.submitted_at,
                    now,
                    j.seq,
                )
                for j in after
            ],
        )
        conn.executemany(
            "INSERT INTO events (job_id, ts, event, from_state, to_state, attempt, arn, detail)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (j.id, now, str(c.event), str(old.state), str(j.state), j.attempt, j.arn, c.detail)
                for c, old, j in zip(changes, before, after, strict=True)
            ],
        )
