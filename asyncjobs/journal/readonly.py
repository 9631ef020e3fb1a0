"""A read-only snapshot of a journal: what ``asyncjobs status`` and ``results`` read beside a run.

:class:`JournalView` is what a snapshot offers, whatever the journal: :class:`ReadOnlyJournal`
reads a SQLite file, :class:`~.pg_readonly.PostgresSnapshot` a campaign of a PostgreSQL
database. ``open_journal(location, readonly=True)`` opens the one that fits.

:class:`ReadOnlyJournal` takes no lock and writes nothing, so it can read a journal that another
process has open: SQLite readers of a WAL database do not block its writer, nor wait for it. Every
read sees one snapshot, the journal as it was when it was opened (one read transaction spans the
reader's life), so the counts and the jobs agree with each other.

Nothing of the journal changes, with one exception SQLite makes for every reader of a WAL
database: it opens the ``-wal`` and ``-shm`` files beside it, creating them (empty, with the
database's mode) when no one has the journal open, and marks its reads in the ``-shm``.

The journal's files are checked as a run checks them (:mod:`.files`, with "read" in the refusal):
a journal that another user could have changed is refused before SQLite reads it, and its side
files again once SQLite has opened them.

One case blocks readers: a run bulk-loading a new campaign writes the database itself, under an
exclusive lock, until the load commits. The reader waits a little for that lock and then gives up
on the rows: it reports what the run's lock record says about the load instead (:class:`Loading`).
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import anyio

from ..errors import JournalError, JournalSchemaError
from ..model import Job, JobState, StateCounts
from . import files, shards
from .base import EventRecord
from .schema import JOB_COLUMNS, SCHEMA_VERSION, row_to_job
from .shards import ShardRow

#: How long a snapshot waits for a writer's lock (a commit, a journal-mode switch) before it
#: reports what it can: a bulk load holds the lock for as long as it takes.
SNAPSHOT_WAIT = 2.0
_PAGE = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class Loading:
    """A bulk load of a new campaign under way, as the lock record of the run doing it says:
    its pid, how many jobs it has read so far and its stage (None where the record says nothing)."""

    pid: int | None
    jobs: int | None
    stage: str | None


class JournalView(Protocol):
    """A read-only snapshot of a campaign's journal: every read sees the journal as it was at one
    moment, and nothing is written, locked or leased."""

    @property
    def campaign(self) -> str | None:
        """The campaign's name; None only while a SQLite bulk load hides it."""
        ...

    @property
    def path(self) -> str:
        """Where the journal is, for messages (a URI's password as ``***``)."""
        ...

    @property
    def loading(self) -> Loading | None:
        """A bulk load under way, whose jobs show only once it has committed (SQLite)."""
        ...

    def counts(self) -> StateCounts: ...

    def counts_by_key(self) -> Mapping[str, StateCounts]: ...

    def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def events(self, job_id: str) -> list[EventRecord]: ...

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every records shard (of one records line), by line, retry round and shard."""
        ...

    async def aclose(self) -> None: ...


class ReadOnlyJournal:
    """One consistent snapshot of a journal, read without its lock. Open it with
    ``open_journal(path, readonly=True)`` (or :meth:`open`); close it with :meth:`aclose`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection | None,
        campaign: str | None,
        counts: Mapping[str, StateCounts],
        loading: Loading | None,
    ) -> None:
        self._path = path
        self._conn = conn  # None when a bulk load kept the rows out of reach
        self._campaign = campaign
        self._counts = counts
        self._loading = loading
        self._db = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, wait: float = SNAPSHOT_WAIT) -> ReadOnlyJournal:
        """Open a snapshot of the journal at ``path``, waiting at most ``wait`` seconds for a writer.

        Raises :class:`~asyncjobs.errors.JournalError` if there is no journal there or it cannot be
        read, :class:`~asyncjobs.errors.JournalUnsafe` if one of its files must not be trusted.
        """
        return await anyio.to_thread.run_sync(cls._open_sync, Path(path), wait)

    @classmethod
    def _open_sync(cls, path: Path, wait: float) -> ReadOnlyJournal:
        found = files.check_all(path, "read")
        if found is None:
            raise JournalError(f"{path}: no such journal")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=wait, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _unreadable(path, exc) from exc
        try:
            files.check_same(path, (found.st_dev, found.st_ino), "read")  # SQLite opened it by name
            campaign, counts = _begin_snapshot(conn, path)
            files.check_all(path, "read")  # and the -wal and -shm SQLite has just opened (or created)
        except sqlite3.OperationalError as exc:
            conn.close()
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:  # not waiting on a writer
                raise _unreadable(path, exc) from exc
            return cls._while_loading(path)
        except sqlite3.Error as exc:
            conn.close()
            raise _unreadable(path, exc) from exc
        except BaseException:
            conn.close()
            raise
        record = _lock_record(path)  # read after the snapshot: whether a load began before it
        loading = _loading(record) if record is not None and record.loading is not None else None
        return cls(path, conn, campaign, counts, loading)

    @classmethod
    def _while_loading(cls, path: Path) -> ReadOnlyJournal:
        """A bulk load keeps readers out until it commits: no rows, only what its lock record says."""
        record = _lock_record(path)
        named = (record.loading or {}).get("campaign") if record is not None else None
        return cls(path, None, named if isinstance(named, str) else None, {}, _loading(record))

    @property
    def campaign(self) -> str | None:
        """The campaign's name; None only while a load hides it and its lock record does not say."""
        return self._campaign

    @property
    def path(self) -> str:
        return str(self._path)

    @property
    def loading(self) -> Loading | None:
        """The bulk load under way, if any: its jobs show only once it has committed."""
        return self._loading

    def counts(self) -> StateCounts:
        total: Counter[JobState] = Counter()
        for per_key in self._counts.values():
            total.update(per_key.counts)
        return StateCounts({s: n for s, n in total.items() if n})

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return self._counts

    async def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        """The jobs (only those in ``states``, if given) in the order they were added."""
        if self._conn is None or self._campaign is None:
            return
        conn, campaign = self._conn, self._campaign
        where, args = "seq > ?", []
        if states is not None:
            wanted = [str(s) for s in states]
            where += f" AND state IN ({','.join('?' * len(wanted))})"
            args = wanted
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT {_PAGE}"
        after = 0
        while True:

            def read(after: int = after) -> list[Job]:
                try:
                    return [row_to_job(row, campaign) for row in conn.execute(sql, [after, *args])]
                except sqlite3.Error as exc:
                    raise _unreadable(self._path, exc) from exc

            page = await anyio.to_thread.run_sync(read, limiter=self._db)
            for job in page:
                yield job
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    async def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, as the snapshot has it (None if there is no such job)."""

        def read(conn: sqlite3.Connection, campaign: str) -> Job | None:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else row_to_job(row, campaign)

        return await self._read(read, None)

    async def events(self, job_id: str) -> list[EventRecord]:
        """Every change of ``job_id``'s state the journal recorded, oldest first (the event log)."""

        def read(conn: sqlite3.Connection, campaign: str) -> list[EventRecord]:
            sql = (
                "SELECT seq, job_id, ts, event, from_state, to_state, attempt, arn, detail"
                " FROM events WHERE job_id = ? ORDER BY seq"
            )
            return [EventRecord(*row) for row in conn.execute(sql, (job_id,))]

        return await self._read(read, [])

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every records shard (of the records line ``line_id``), by line, retry round and shard;
        none in a journal made before records lines were (it has no table for them yet)."""

        def read(conn: sqlite3.Connection, campaign: str) -> list[ShardRow]:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shards'")
            return shards.all_shards(conn, line_id) if found.fetchone() else []

        return await self._read(read, [])

    async def _read(self, read: Callable[[sqlite3.Connection, str], T], empty: T) -> T:
        """``read(connection, campaign)`` in a worker thread; ``empty`` while a load hides the rows."""
        if self._conn is None or self._campaign is None:
            return empty
        conn, campaign = self._conn, self._campaign

        def guarded() -> T:
            try:
                return read(conn, campaign)
            except sqlite3.Error as exc:
                raise _unreadable(self._path, exc) from exc

        return await anyio.to_thread.run_sync(guarded, limiter=self._db)

    async def aclose(self) -> None:
        """End the snapshot (SQLite may then checkpoint past it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.close, limiter=self._db)

    async def __aenter__(self) -> ReadOnlyJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _begin_snapshot(conn: sqlite3.Connection, path: Path) -> tuple[str, dict[str, StateCounts]]:
    """Start the read transaction that every later read shares; the campaign and the counts."""
    conn.execute("BEGIN")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise JournalSchemaError(f"{path}: journal schema version {version} is not supported here")
    (campaign,) = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
    per_key: defaultdict[str, dict[JobState, int]] = defaultdict(dict)
    rows = conn.execute("SELECT quota_key, state, count(*) FROM jobs GROUP BY quota_key, state")
    for key, state, n in rows:
        per_key[key][JobState(state)] = n
    return str(campaign), {key: StateCounts(counts) for key, counts in per_key.items()}


def _lock_record(path: Path) -> files.LockRecord | None:
    """What the journal's lock file says (None if it cannot be read: only a load's progress is lost)."""
    try:
        return files.holder(path)
    except OSError:
        return None


def _loading(record: files.LockRecord | None) -> Loading:
    told: Mapping[str, Any] = (record.loading or {}) if record is not None else {}
    jobs, stage = told.get("jobs"), told.get("stage")
    return Loading(
        pid=record.pid if record is not None else None,
        jobs=jobs if isinstance(jobs, int) else None,
        stage=stage if isinstance(stage, str) else None,
    )


def _unreadable(path: Path, exc: sqlite3.Error) -> JournalError:
    return JournalError(f"{path}: cannot read the journal: {exc}")
