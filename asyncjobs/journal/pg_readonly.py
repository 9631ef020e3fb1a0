"""A read-only snapshot of a campaign in a PostgreSQL journal: what ``asyncjobs status`` reads.

:class:`PostgresSnapshot` is the PostgreSQL form of :class:`~.readonly.ReadOnlyJournal`: it opens
one connection of its own and reads in one ``REPEATABLE READ READ ONLY`` transaction, so

- **it never writes**: the database refuses any write in a read-only transaction. It creates no
  table (a database without asyncjobs' tables is refused), no campaign, no lease, no worker;
- **every read sees one snapshot**, the campaign as it was at the first read, so the counts and
  the jobs agree with each other;
- **it never waits for the workers, nor they for it**: under MVCC a reader takes no lock that a
  writer waits on. A worker's ingest shows all at once when it commits (there is no progress to
  report, so :attr:`loading` is always None).

The reads are the workers' own (:mod:`.pg_reads`). The URI's password shows as ``***`` in
:attr:`path` and in every error (:mod:`.location`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import anyio
import psycopg

from ..errors import JournalError, JournalUnavailable
from ..model import Job, JobState, StateCounts
from . import location, pg_reads, pg_schema, pg_session
from .base import EventRecord, key_counts, total_counts
from .pg_session import Connection, one_line
from .readonly import Loading
from .shards import ShardRow

T = TypeVar("T")

#: Seconds a reader (status, results) waits for an unanswered connection attempt.
CONNECT_WITHIN = 10.0


class PostgresSnapshot:
    """One campaign of a PostgreSQL journal, read in one read-only transaction. Open it with
    ``open_journal(uri, readonly=True, campaign=...)`` (or :meth:`open`); close it with :meth:`aclose`."""

    def __init__(
        self, uri: str, conn: Connection, campaign: str, counts: Mapping[str, StateCounts], shards: bool
    ) -> None:
        self.__uri = uri  # holds the password: never shown
        self._shown = location.redact(uri)
        self._conn: Connection | None = conn
        self._campaign = campaign
        self._counts = counts
        self._has_shards = shards

    def __repr__(self) -> str:
        return f"<PostgresSnapshot {self._shown} campaign={self._campaign!r}>"

    @classmethod
    async def open(cls, uri: str, *, campaign: str | None = None) -> PostgresSnapshot:
        """Open a snapshot of ``campaign`` (which may be left out when the database holds one).

        Raises :class:`~asyncjobs.errors.JournalUnavailable` if the database cannot be reached,
        :class:`~asyncjobs.errors.JournalError` if it holds no such campaign or no asyncjobs schema.
        """
        shown = location.redact(uri)
        try:
            # a reader waits a few seconds for a host gone from the network, not psycopg's 130
            conn = await pg_session.connect(
                uri, within=CONNECT_WITHIN, autocommit=False, application_name="asyncjobs-status"
            )
        except psycopg.Error as exc:
            raise JournalUnavailable(
                f"journal {shown}: cannot connect: {location.scrub(one_line(exc), uri)}"
            ) from None
        try:
            await conn.set_read_only(True)
            await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            await pg_schema.check_version(conn, shown)
            name = await pg_schema.find_campaign(conn, shown, campaign, create=False)
            counts = key_counts(await pg_reads.counts(conn, name))
            shards = await pg_schema.has_table(conn, "asyncjobs_shards")  # a database made before them
        except psycopg.Error as exc:
            await _close(conn)
            raise JournalError(
                f"journal {shown}: cannot read: {location.scrub(one_line(exc), uri)}"
            ) from None
        except BaseException:
            await _close(conn)
            raise
        return cls(uri, conn, name, counts, shards)

    @property
    def campaign(self) -> str:
        return self._campaign

    @property
    def path(self) -> str:
        """The database's URI, with its password shown as ``***``."""
        return self._shown

    @property
    def loading(self) -> Loading | None:
        """Always None: an ingest under way is invisible to readers until it commits."""
        return None

    def counts(self) -> StateCounts:
        return total_counts({key: counts.counts for key, counts in self._counts.items()})

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return self._counts

    async def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        """The jobs (only those in ``states``, if given) in the order they were added."""
        async for job in pg_reads.all_jobs(self._read, self._campaign, states):
            yield job

    async def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, as the snapshot has it (None if there is no such job)."""
        return await self._read(lambda conn: pg_reads.get(conn, self._campaign, job_id))

    async def events(self, job_id: str) -> list[EventRecord]:
        """Every change of ``job_id``'s state the journal recorded, oldest first (the event log)."""
        return await self._read(lambda conn: pg_reads.events(conn, self._campaign, job_id))

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every records shard (of the records line ``line_id``), by line, retry round and shard."""
        if not self._has_shards:
            return []
        return await self._read(lambda conn: pg_reads.all_shards(conn, self._campaign, line_id))

    async def _read(self, read: Callable[[Connection], Awaitable[T]]) -> T:
        if self._conn is None:
            raise JournalError(f"journal {self._shown}: the snapshot is closed")
        try:
            return await read(self._conn)
        except psycopg.Error as exc:
            raise JournalError(
                f"journal {self._shown}: cannot read: {location.scrub(one_line(exc), self.__uri)}"
            ) from None

    async def aclose(self) -> None:
        """End the snapshot (its transaction is rolled back: it wrote nothing) and disconnect."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)

    async def __aenter__(self) -> PostgresSnapshot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _close(conn: Connection) -> None:
    with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):  # over either way
        await conn.close()
