"""The PostgreSQL journal: campaigns in a database that several workers on several hosts share.

Open it with ``open_journal("postgresql://user@host:5432/db", campaign="name")``. One database
holds many campaigns: every row is keyed by its campaign's name (tables in :mod:`.pg_schema`).

- **Driver: psycopg 3, async.** psycopg hands the URI to libpq, so it takes every libpq
  connection URI and parameter exactly as ``psql`` does: a Unix-socket host given as
  ``?host=/path``, ``sslmode``, ``service``, ``passfile``, the ``PG*`` environment variables.
  asyncpg implements the protocol and parses URIs itself, covering a subset of them.
- **Durable before the network.** :meth:`PostgresJournal.transition` returns after its COMMIT.
- **Group commit**, as in the SQLite journal: concurrent changes share one transaction, written
  with one ``UPDATE ... FROM unnest(...)`` and one ``INSERT ... SELECT unnest(...)``. Ingest
  uses ``COPY`` (:mod:`.pg_ingest`). One connection per journal object, riding outages
  (:mod:`.pg_session`).
- **Ownership.** A job in ``submitting`` carries a lease: the worker that claimed it and an
  expiry (the database's clock). A change to a ``submitting`` job is recorded only if this worker
  still holds it, and a change to any job only if the job is still in the state the change was
  decided from; otherwise that change raises :class:`~asyncjobs.errors.JournalConflict` (the
  others of its commit are recorded).
- **Counts.** :meth:`PostgresJournal.counts` answers from memory: this worker's commits are
  applied to it at once, and the campaign is counted again (one ``GROUP BY`` over the state
  index) after a commit of this worker when the last count is older than ``refresh_seconds``,
  and whenever :meth:`PostgresJournal.refresh` is called. Other workers' changes show within
  about ``refresh_seconds`` of this worker's next commit; a decision that must be exact (a quota
  cap) is taken in the database, by :meth:`PostgresJournal.claim`.
- **Wake-ups.** A commit that frees a quota slot or saves a pace or cap notifies the campaign's
  other workers, and :meth:`PostgresJournal.changes` hears them (:mod:`.pg_wake`).
- **Secrets.** The URI's password never leaves the session: :attr:`PostgresJournal.path`,
  ``repr``, errors and logs show :func:`.location.redact`'s form.

This class ties the parts together; each concern has its module: the tables and opening
(:mod:`.pg_schema`), the connection (:mod:`.pg_session`), ingest (:mod:`.pg_ingest`), reads
(:mod:`.pg_reads`, shared with the read-only snapshot of :mod:`.pg_readonly`), state changes
(:mod:`.pg_changes`, queued by :class:`~.commit.GroupCommit` as in the SQLite journal), claims
and leases (:mod:`.pg_leases`), the shared create rate (:mod:`.pg_rate`), and the paces and caps
the workers learn (:mod:`.pg_learned`).
"""

from __future__ import annotations

import functools
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import psycopg
import structlog

from ..errors import JournalError, JournalUnavailable
from ..lifecycle import Event
from ..model import Job, JobSpec, JobState, StateCounts
from . import location, pg_ingest, pg_learned, pg_rate, pg_reads, pg_schema, pg_wake, shards
from .base import AddResult, Change, EventRecord, key_counts, total_counts
from .commit import GroupCommit, check_changes, count_changes
from .pg_changes import ChangeWriter
from .pg_learned import T as Learned
from .pg_leases import Leases
from .pg_session import Connection, Session, connect, one_line
from .shards import ShardRow
from .single import new_worker_id

log = structlog.get_logger("asyncjobs.journal")


class PostgresJournal:
    """One campaign's journal in a shared PostgreSQL database. Open it with :meth:`open`."""

    def __init__(
        self, session: Session, campaign: str, *, worker: str, refresh_seconds: float, lease_seconds: float
    ) -> None:
        self._session = session
        self._shown = session.shown
        self._campaign = campaign
        self._worker = worker
        self._refresh_seconds = refresh_seconds
        self._counts: dict[str, Counter[JobState]] = defaultdict(Counter)
        self._refreshed = 0.0
        writer = ChangeWriter(session, campaign, worker, lease_seconds, self._count_changes)
        self._commits = GroupCommit(writer.commit, settle=self._refresh_if_stale)
        self._update_remote = writer.update_remote
        self._leases = Leases(session, campaign, worker)
        #: Opens the connection :meth:`changes` listens on (it holds the URI: never shown).
        self._connect: Callable[[], Awaitable[Connection]] | None = None

    def __repr__(self) -> str:
        return f"<PostgresJournal {self._shown} campaign={self._campaign!r} worker={self._worker!r}>"

    # ---------------------------------------------------------------- opening
    @classmethod
    async def open(
        cls,
        uri: str,
        *,
        campaign: str | None = None,
        create: bool = True,
        worker: str | None = None,
        outage_seconds: float = 60.0,
        refresh_seconds: float = 1.0,
        lease_seconds: float = 60.0,
    ) -> PostgresJournal:
        """Connect, create the tables if the database has none, and open ``campaign``.

        ``campaign`` may be left out when the database holds exactly one campaign. A campaign not
        in the database is created when ``create`` is true (the first worker), else refused.
        ``lease_seconds`` is the lease a plain ``transition`` into ``submitting`` takes.
        """
        shown = location.redact(uri)
        try:
            conn = await connect(uri)
        except psycopg.Error as exc:
            raise JournalUnavailable(
                f"journal {shown}: cannot connect: {location.scrub(one_line(exc), uri)}"
            ) from None
        try:
            await pg_schema.prepare(conn, shown)
            name = await pg_schema.find_campaign(conn, shown, campaign, create)
        except psycopg.Error as exc:
            await conn.close()
            raise JournalError(f"journal {shown}: {location.scrub(one_line(exc), uri)}") from None
        except BaseException:
            await conn.close()
            raise
        journal = cls(
            Session(uri, conn, outage_seconds=outage_seconds),
            name,
            worker=worker or new_worker_id(),
            refresh_seconds=refresh_seconds,
            lease_seconds=lease_seconds,
        )
        journal._connect = functools.partial(connect, uri)
        await journal.refresh()
        log.debug("asyncjobs.journal.opened", journal=shown, campaign=name, worker=journal.worker)
        return journal

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give up this worker's leases (so others take its jobs over at once) and disconnect."""
        await self._session.close(self._leases.release)

    # ------------------------------------------------------------- properties
    @property
    def campaign(self) -> str:
        return self._campaign

    @property
    def path(self) -> str:
        """The database's URI, with its password shown as ``***``."""
        return self._shown

    @property
    def worker(self) -> str:
        return self._worker

    # ----------------------------------------------------------------- counts
    def counts(self) -> StateCounts:
        return total_counts(self._counts)

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return key_counts(self._counts)

    async def refresh(self) -> None:
        async def read(conn: Connection) -> None:
            counts = await pg_reads.counts(conn, self._campaign)
            # replaced while the session is held: no commit of ours is between this count and its delta
            self._counts = counts
            self._refreshed = time.monotonic()

        await self._session.read(read)

    async def _refresh_if_stale(self) -> None:
        if time.monotonic() - self._refreshed >= self._refresh_seconds:
            try:
                await self.refresh()
            except JournalError as exc:  # the changes are settled; the next commit counts again
                log.warning("asyncjobs.journal.recount_failed", journal=self._shown, error=exc.message)

    def _count_changes(self, before: list[Job], after: list[Job]) -> None:
        count_changes(self._counts, before, after)

    # ---------------------------------------------------------------- ingest
    async def add_specs(self, specs: Iterable[JobSpec]) -> AddResult:
        """All or nothing; workers that start together take turns, and a later one joins
        (:mod:`.pg_ingest`)."""

        def count(added: Counter[str]) -> None:
            for key, n in added.items():
                self._counts[key][JobState.PENDING] += n

        added, existing = await pg_ingest.ingest(self._session, self._campaign, specs, on_commit=count)
        log.debug("asyncjobs.journal.ingested", added=added.total(), existing=existing)
        return AddResult(added=added.total(), existing=existing)

    # ---------------------------------------------------------- records shards
    async def shard(self, job_id: str) -> ShardRow | None:
        """The shard of the shard job ``job_id`` (None for any other job)."""
        found = await self._session.read(
            lambda conn: pg_reads.select_shards(conn, self._campaign, "job_id = %s", (job_id,))
        )
        return found[0] if found else None

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every shard (of the records line ``line_id``), by line, retry round and shard."""
        return await self._session.read(lambda conn: pg_reads.all_shards(conn, self._campaign, line_id))

    async def mark_uploaded(self, job_id: str) -> None:
        """The shard's input object is in S3 (committed on return)."""

        async def body(conn: Connection) -> None:
            await conn.execute(
                "UPDATE asyncjobs_shards SET uploaded_at = %s"
                " WHERE campaign = %s AND job_id = %s AND uploaded_at IS NULL",
                (time.time(), self._campaign, job_id),
            )

        with anyio.CancelScope(shield=True):
            await self._session.write(body)

    async def record_output(
        self, job_id: str, output_uri: str, manifest_uri: str | None, manifest: Any
    ) -> None:
        """Where the shard job's outputs are, and its manifest (committed on return)."""
        text = shards.encode_manifest(manifest)

        async def body(conn: Connection) -> None:
            await conn.execute(
                "UPDATE asyncjobs_shards SET output_uri = %s, manifest_uri = %s, manifest = %s,"
                " collected_at = %s WHERE campaign = %s AND job_id = %s",
                (output_uri, manifest_uri, text, time.time(), self._campaign, job_id),
            )

        with anyio.CancelScope(shield=True):
            await self._session.write(body)

    # ----------------------------------------------------------------- reads
    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]:
        if limit <= 0:
            return []
        skip = set(exclude)
        jobs = await self._session.read(
            lambda conn: pg_reads.pending(conn, self._campaign, quota_key, limit, len(skip))
        )
        return [j for j in jobs if j.id not in skip][:limit]

    async def active(self) -> list[Job]:
        return await self._session.read(lambda conn: pg_reads.active(conn, self._campaign))

    async def get(self, job_id: str) -> Job | None:
        return await self._session.read(lambda conn: pg_reads.get(conn, self._campaign, job_id))

    async def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        async for job in pg_reads.all_jobs(self._session.read, self._campaign, states):
            yield job

    async def events(self, job_id: str | None = None, limit: int | None = None) -> list[EventRecord]:
        return await self._session.read(lambda conn: pg_reads.events(conn, self._campaign, job_id, limit))

    async def paces(self) -> Mapping[str, float]:
        return await pg_learned.read(self._session, self._campaign, pg_learned.PACE, float)

    # ---------------------------------------------------------------- writes
    async def save_paces(self, paces: Mapping[str, float]) -> None:
        await self._share(pg_learned.PACE, {k: float(v) for k, v in paces.items()})

    async def _share(self, prefix: str, values: Mapping[str, Learned], *, stamped: bool = False) -> None:
        """Save values of the kind ``prefix`` that this worker learned, and tell the others
        (:func:`.pg_learned.save`)."""
        await pg_learned.save(
            self._session,
            self._campaign,
            prefix,
            values,
            announce=pg_wake.announcement(self._worker, self._campaign),
            stamped=stamped,
        )

    async def transition(self, job: Job, event: Event, *, detail: str | None = None, **fields: Any) -> Job:
        (new,) = await self.transition_many([Change(job, event, fields, detail)])
        return new

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        return await self._update_remote(updates)

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        if not changes:
            return []
        check_changes(changes)  # raise now, before anything is queued
        return await self._commits.submit(changes)

    # ------------------------------------------------------- several workers
    async def claim(self, quota_key: str, cap: int, limit: int, *, lease_seconds: float = 60.0) -> list[Job]:
        """Count and claim in one transaction under the key's advisory lock (see the protocol)."""

        def count(claimed: list[Job]) -> None:
            per_key = self._counts[quota_key]
            per_key[JobState.PENDING] -= len(claimed)
            per_key[JobState.SUBMITTING] += len(claimed)

        return await self._leases.claim(quota_key, cap, limit, lease_seconds=lease_seconds, on_commit=count)

    async def heartbeat(self, *, lease_seconds: float = 60.0) -> int:
        return await self._leases.heartbeat(lease_seconds=lease_seconds)

    async def take_over_expired(self, limit: int = 1000, *, lease_seconds: float = 60.0) -> list[Job]:
        return await self._leases.take_over_expired(limit, lease_seconds=lease_seconds)

    async def take(self, key: str, rate: float, burst: float = 1.0) -> float:
        """One reservation from the bucket row ``key``, refilled in SQL by the database's clock."""
        return await pg_rate.take(self._session, self._campaign, key, rate, burst)

    def changes(self) -> AsyncGenerator[str, None]:
        """The id of another worker each time it commits a change to this campaign that frees a
        quota slot or saves a pace or cap (:mod:`.pg_wake`: LISTEN on a connection of its own)."""
        if self._connect is None:
            raise JournalError(f"journal {self._shown} is closed")
        return pg_wake.listen(
            self._connect, self._session.error, campaign=self._campaign, worker=self._worker
        )

    async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
        return await self._leases.try_lease_sweep(kind, seconds)

    async def caps(self, *, within: float | None = None) -> Mapping[str, int]:
        return await pg_learned.read(self._session, self._campaign, pg_learned.CAP, int, within=within)

    async def slow_starts(self, *, within: float | None = None) -> Mapping[str, float]:
        return await pg_learned.read(self._session, self._campaign, pg_learned.RISING, float, within=within)

    async def save_slow_starts(self, paces: Mapping[str, float]) -> None:
        await self._share(pg_learned.RISING, {k: float(v) for k, v in paces.items()}, stamped=True)

    async def save_caps(self, caps: Mapping[str, int]) -> None:
        await self._share(pg_learned.CAP, {k: int(v) for k, v in caps.items()}, stamped=True)
