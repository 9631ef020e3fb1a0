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
- **Wake-ups.** A commit that frees a quota slot (a job final, or given back to ``pending``) or
  saves a pace sends ``NOTIFY asyncjobs`` in its transaction; :meth:`PostgresJournal.changes`
  LISTENs on a connection of its own, so the other workers hear of it at the commit instead of
  at their next periodic refresh.
- **Secrets.** The URI's password never leaves the session: :attr:`PostgresJournal.path`,
  ``repr``, errors and logs show :func:`.location.redact`'s form.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import psycopg
import structlog

from .. import lifecycle
from ..errors import JournalConflict, JournalError, JournalSchemaError, JournalUnavailable
from ..lifecycle import Event
from ..model import Job, JobSpec, JobState, StateCounts, evolve
from . import location, pg_ingest, shards
from .base import AddResult, Change, EventRecord, key_counts, total_counts
from .pg_schema import JOB_COLUMNS, NEWEST_TABLE, NOW, SCHEMA_LOCK, SCHEMA_VERSION, STATEMENTS
from .pg_session import Connection, Session, connect, one_line
from .schema import row_to_job
from .shards import ShardRow
from .single import new_worker_id

log = structlog.get_logger("asyncjobs.journal")

_FIELDS = frozenset({"arn", "remote_status", "last_error", "submitted_at", "job_name", "token", "attempt"})
_ACTIVE = "('submitting', 'submitted', 'running')"
_J_COLUMNS = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))

_UPDATE_JOBS = f"""
UPDATE asyncjobs_jobs AS j SET state = v.state, attempt = v.attempt, job_name = v.job_name, arn = v.arn,
    remote_status = v.remote_status, last_error = v.last_error, submitted_at = v.submitted_at,
    updated_at = %(now)s::float8,
    lease_owner = CASE WHEN v.state = 'submitting' THEN %(worker)s::text END,
    lease_expires = CASE WHEN v.state = 'submitting' THEN {NOW} + %(lease)s::float8 END
FROM unnest(%(seq)s::bigint[], %(old)s::text[], %(state)s::text[], %(attempt)s::int[], %(job_name)s::text[],
            %(arn)s::text[], %(remote)s::text[], %(error)s::text[], %(submitted)s::float8[])
    AS v(seq, old_state, state, attempt, job_name, arn, remote_status, last_error, submitted_at)
WHERE j.seq = v.seq AND j.campaign = %(campaign)s::text AND j.state = v.old_state
    AND (j.state <> 'submitting' OR j.lease_owner = %(worker)s::text)
RETURNING j.seq
"""

#: The channel of :meth:`PostgresJournal.changes`; a payload is ``<worker> <campaign>``.
CHANNEL = "asyncjobs"
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"

_INSERT_EVENTS = """
INSERT INTO asyncjobs_events (campaign, job_id, ts, event, from_state, to_state, attempt, arn, detail)
SELECT %s::text, * FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::text[], %s::int[],
                               %s::text[], %s::text[])
"""


class _Conflict(Exception):
    """Some changes of a batch found their job changed by another worker (the batch rolls back)."""

    def __init__(self, seqs: set[int]) -> None:
        self.seqs = seqs


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
        self._lease_seconds = lease_seconds
        self._queue: list[tuple[Change, asyncio.Future[Job]]] = []
        self._flushing = False
        self._counts: dict[str, Counter[JobState]] = defaultdict(Counter)
        self._refreshed = 0.0
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
            await cls._prepare(conn, shown)
            name = await cls._campaign_of(conn, shown, campaign, create)
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

    @staticmethod
    async def _prepare(conn: Connection, shown: str) -> None:
        """Create the tables once per database (and those added since it was made); refuse a
        schema newer than this asyncjobs."""
        found = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (NEWEST_TABLE,))).fetchone()
        if not (found and found[0]):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in STATEMENTS:
                    await conn.execute(statement)
                row = await (await conn.execute("SELECT count(*) FROM asyncjobs_schema")).fetchone()
                if row is not None and row[0] == 0:
                    await conn.execute(
                        "INSERT INTO asyncjobs_schema (version) VALUES (%s)", (SCHEMA_VERSION,)
                    )
        row = await (await conn.execute("SELECT max(version) FROM asyncjobs_schema")).fetchone()
        version = row[0] if row else None
        if version is None:
            raise JournalSchemaError(f"journal {shown}: not an asyncjobs database (no schema version)")
        if version > SCHEMA_VERSION:
            raise JournalSchemaError(
                f"journal {shown}: journal schema version {version} is newer than this asyncjobs supports "
                f"({SCHEMA_VERSION}); upgrade asyncjobs"
            )

    @staticmethod
    async def _campaign_of(conn: Connection, shown: str, campaign: str | None, create: bool) -> str:
        cur = await conn.execute("SELECT name FROM asyncjobs_campaigns ORDER BY name")
        names = [str(r[0]) for r in await cur.fetchall()]
        if campaign is None:
            if len(names) == 1:
                return names[0]
            if not names:
                raise JournalError(
                    f"journal {shown}: the database holds no campaign; name one (--campaign-name)"
                )
            listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise JournalError(
                f"journal {shown}: the database holds {len(names)} campaigns ({listed}); "
                "name one (--campaign-name)"
            )
        if campaign not in names:
            if not create:
                raise JournalError(f"journal {shown}: no campaign {campaign!r} in the database")
            await conn.execute(
                "INSERT INTO asyncjobs_campaigns (name, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (campaign, time.time()),
            )
        return campaign

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give up this worker's leases (so others take its jobs over at once) and disconnect."""

        async def release(conn: Connection) -> None:
            await conn.execute(
                f"UPDATE asyncjobs_jobs SET lease_expires = {NOW} WHERE campaign = %s"
                " AND state = 'submitting' AND lease_owner = %s",
                (self._campaign, self._worker),
            )
            await conn.execute(
                "DELETE FROM asyncjobs_sweeps WHERE campaign = %s AND owner = %s",
                (self._campaign, self._worker),
            )

        await self._session.close(release)

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

    def counts(self) -> StateCounts:
        return total_counts(self._counts)

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return key_counts(self._counts)

    async def refresh(self) -> None:
        async def read(conn: Connection) -> None:
            cur = await conn.execute(
                "SELECT quota_key, state, count(*) FROM asyncjobs_jobs WHERE campaign = %s GROUP BY 1, 2",
                (self._campaign,),
            )
            counts: dict[str, Counter[JobState]] = defaultdict(Counter)
            for key, state, n in await cur.fetchall():
                counts[key][JobState(state)] = n
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

    def _to_job(self, row: Sequence[Any]) -> Job:
        return row_to_job(tuple(row), self._campaign)

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
        found = await self._select_shards("job_id = %s", (job_id,))
        return found[0] if found else None

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every shard (of the records line ``line_id``), by line, retry round and shard."""
        if line_id is None:
            return await self._select_shards("true", ())
        return await self._select_shards("line_id = %s", (line_id,))

    async def _select_shards(self, where: str, args: Sequence[Any]) -> list[ShardRow]:
        async def body(conn: Connection) -> list[ShardRow]:
            cur = await conn.execute(
                f"SELECT {shards.COLUMNS} FROM asyncjobs_shards WHERE campaign = %s AND {where}"
                " ORDER BY line_id, retry_round, job_id",
                (self._campaign, *args),
            )
            return [shards.decode_row(r) for r in await cur.fetchall()]

        return await self._session.read(body)

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
    async def _select_jobs(self, where: str, args: Sequence[Any]) -> list[Job]:
        async def body(conn: Connection) -> list[Job]:
            cur = await conn.execute(
                f"SELECT {JOB_COLUMNS} FROM asyncjobs_jobs WHERE campaign = %s AND {where}",
                (self._campaign, *args),
            )
            return [self._to_job(r) for r in await cur.fetchall()]

        return await self._session.read(body)

    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]:
        if limit <= 0:
            return []
        skip = set(exclude)
        jobs = await self._select_jobs(
            "state = 'pending' AND quota_key = %s ORDER BY seq LIMIT %s", (quota_key, limit + len(skip))
        )
        return [j for j in jobs if j.id not in skip][:limit]

    async def active(self) -> list[Job]:
        return await self._select_jobs(f"state IN {_ACTIVE} ORDER BY seq", ())

    async def get(self, job_id: str) -> Job | None:
        found = await self._select_jobs("id = %s", (job_id,))
        return found[0] if found else None

    async def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        wanted = None if states is None else [str(s) for s in states]
        after = 0
        while True:
            if wanted is None:
                page = await self._select_jobs("seq > %s ORDER BY seq LIMIT 1000", (after,))
            else:
                page = await self._select_jobs(
                    "seq > %s AND state = ANY(%s) ORDER BY seq LIMIT 1000", (after, wanted)
                )
            for job in page:
                yield job
            if len(page) < 1000:
                return
            after = page[-1].seq

    async def events(self, job_id: str | None = None, limit: int | None = None) -> list[EventRecord]:
        sql = (
            "SELECT seq, job_id, ts, event, from_state, to_state, attempt, arn, detail"
            " FROM asyncjobs_events WHERE campaign = %s"
        )
        args: list[Any] = [self._campaign]
        if job_id is not None:
            sql += " AND job_id = %s"
            args.append(job_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)

        async def body(conn: Connection) -> list[EventRecord]:
            cur = await conn.execute(sql, args)
            return [EventRecord(*r) for r in await cur.fetchall()]

        return await self._session.read(body)

    async def paces(self) -> Mapping[str, float]:
        """Every worker's learned paces: one ``pace:<service>:<region>`` row each in ``meta``."""

        async def body(conn: Connection) -> dict[str, float]:
            cur = await conn.execute(
                "SELECT key, value FROM asyncjobs_meta WHERE campaign = %s AND key LIKE 'pace:%%'",
                (self._campaign,),
            )
            return {key.removeprefix("pace:"): float(value) for key, value in await cur.fetchall()}

        return await self._session.read(body)

    # ---------------------------------------------------------------- writes
    async def save_paces(self, paces: Mapping[str, float]) -> None:
        if not paces:
            return

        async def body(conn: Connection) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO asyncjobs_meta (campaign, key, value) VALUES (%s, %s, %s)"
                    " ON CONFLICT (campaign, key) DO UPDATE SET value = excluded.value",
                    [
                        (self._campaign, f"pace:{key}", repr(float(pace)))
                        for key, pace in sorted(paces.items())
                    ],
                )
            await conn.execute(_NOTIFY, (self._announcement,))

        with anyio.CancelScope(shield=True):
            await self._session.write(body)

    async def transition(self, job: Job, event: Event, *, detail: str | None = None, **fields: Any) -> Job:
        (new,) = await self.transition_many([Change(job, event, fields, detail)])
        return new

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        if not updates:
            return []
        now = time.time()
        jobs = [evolve(job, job.state, now, {"remote_status": status}) for job, status in updates]

        async def body(conn: Connection) -> None:
            await conn.execute(
                "UPDATE asyncjobs_jobs AS j SET remote_status = v.remote, updated_at = %s"
                " FROM unnest(%s::bigint[], %s::text[]) AS v(seq, remote)"
                " WHERE j.seq = v.seq AND j.campaign = %s",
                (now, [j.seq for j in jobs], [j.remote_status for j in jobs], self._campaign),
            )

        with anyio.CancelScope(shield=True):
            await self._session.write(body)
        return jobs

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        if not changes:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Job]] = []
        state_of: dict[int, JobState] = {}
        for change in changes:  # check everything before queueing anything
            seq = change.job.seq
            state_of[seq] = lifecycle.apply(state_of.get(seq, change.job.state), change.event)
            unknown = set(change.fields) - _FIELDS
            if unknown:
                raise TypeError(f"unknown job fields {sorted(unknown)}")
        for change in changes:
            fut: asyncio.Future[Job] = loop.create_future()
            self._queue.append((change, fut))
            futures.append(fut)
        if not self._flushing:
            self._flushing = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:  # changes queued during a recount are flushed too
                        while self._queue:
                            batch, self._queue = self._queue, []
                            await self._flush(batch)
                        await self._refresh_if_stale()
            finally:
                self._flushing = False
        try:
            return [await f for f in futures]
        finally:
            for f in futures:
                if f.done() and not f.cancelled():
                    f.exception()

    async def _flush(self, batch: list[tuple[Change, asyncio.Future[Job]]]) -> None:
        while batch:
            now = time.time()
            latest: dict[int, Job] = {}
            before: list[Job] = []
            jobs: list[Job] = []
            for change, _ in batch:  # changes to one job apply in order, each to what the one before left
                old = latest.get(change.job.seq, change.job)
                new = evolve(old, lifecycle.apply(old.state, change.event), now, change.fields)
                latest[new.seq] = new
                before.append(old)
                jobs.append(new)

            def count(_: None, before: list[Job] = before, jobs: list[Job] = jobs) -> None:
                for old, new in zip(before, jobs, strict=True):
                    per_key = self._counts[new.quota_key]
                    per_key[old.state] -= 1
                    per_key[new.state] += 1

            try:
                await self._session.write(
                    functools.partial(self._write_changes, batch=batch, before=before, jobs=jobs, now=now),
                    count,
                )
            except _Conflict as conflict:
                kept = []
                for change, fut in batch:
                    if change.job.seq in conflict.seqs:
                        fut.set_exception(JournalConflict(change.job.id))
                    else:
                        kept.append((change, fut))
                batch = kept
                continue
            except BaseException as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, fut), new in zip(batch, jobs, strict=True):
                if not fut.done():
                    fut.set_result(new)
            return

    async def _write_changes(
        self,
        conn: Connection,
        *,
        batch: list[tuple[Change, asyncio.Future[Job]]],
        before: list[Job],
        jobs: list[Job],
        now: float,
    ) -> None:
        # one row per job: its state after every change of the batch, checked against its state before
        latest = {j.seq: j for j in jobs}
        first_state: dict[int, JobState] = {}
        for old in before:
            first_state.setdefault(old.seq, old.state)
        final = list(latest.values())
        cur = await conn.execute(
            _UPDATE_JOBS,
            {
                "now": now,
                "worker": self._worker,
                "lease": self._lease_seconds,
                "campaign": self._campaign,
                "seq": [j.seq for j in final],
                "old": [str(first_state[j.seq]) for j in final],
                "state": [str(j.state) for j in final],
                "attempt": [j.attempt for j in final],
                "job_name": [j.job_name for j in final],
                "arn": [j.arn for j in final],
                "remote": [j.remote_status for j in final],
                "error": [j.last_error for j in final],
                "submitted": [j.submitted_at for j in final],
            },
        )
        changes = [c for c, _ in batch]
        await conn.execute(  # sent at once (pipelined); rolled back with the batch on a conflict
            _INSERT_EVENTS,
            (
                self._campaign,
                [j.id for j in jobs],
                [now] * len(jobs),
                [str(c.event) for c in changes],
                [str(o.state) for o in before],
                [str(j.state) for j in jobs],
                [j.attempt for j in jobs],
                [j.arn for j in jobs],
                [c.detail for c in changes],
            ),
        )
        if any(j.state.is_final or j.state is JobState.PENDING for j in final):
            # a slot is free: the other workers hear of it at the COMMIT (dropped on a rollback)
            await conn.execute(_NOTIFY, (self._announcement,))
        done = {r[0] for r in await cur.fetchall()}
        if len(done) < len(final):
            raise _Conflict({j.seq for j in final} - done)

    # ------------------------------------------------------- several workers
    @property
    def _announcement(self) -> str:
        return f"{self._worker} {self._campaign}"

    async def changes(self) -> AsyncGenerator[str, None]:
        """The id of another worker each time it commits a change to this campaign that frees a
        quota slot or saves a pace (LISTEN on a connection of this generator's own, closed with it).

        A lost connection raises :class:`~asyncjobs.errors.JournalError`: nothing is retried here,
        since a listener that missed notifications must read the journal again anyway."""
        if self._connect is None:
            raise JournalError(f"journal {self._shown} is closed")
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            raise self._session.error(exc) from None
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for note in conn.notifies():
                worker, _, campaign = note.payload.partition(" ")
                if campaign == self._campaign and worker != self._worker:
                    yield worker
        except psycopg.Error as exc:
            raise self._session.error(exc) from None
        finally:
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def claim(self, quota_key: str, cap: int, limit: int, *, lease_seconds: float = 60.0) -> list[Job]:
        """Count and claim in one transaction under the key's advisory lock (see the protocol)."""
        if limit <= 0 or cap <= 0:
            return []
        now = time.time()

        async def body(conn: Connection) -> list[Job]:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"asyncjobs:claim:{self._campaign}:{quota_key}",),
            )
            cur = await conn.execute(
                "SELECT count(*) FROM asyncjobs_jobs"
                f" WHERE campaign = %s AND quota_key = %s AND state IN {_ACTIVE}",
                (self._campaign, quota_key),
            )
            row = await cur.fetchone()
            room = min(limit, cap - (row[0] if row else 0))
            if room <= 0:
                return []
            cur = await conn.execute(
                f"""WITH picked AS (
                        SELECT seq FROM asyncjobs_jobs WHERE campaign = %(c)s AND quota_key = %(k)s
                            AND state = 'pending' ORDER BY seq LIMIT %(n)s FOR UPDATE SKIP LOCKED)
                    UPDATE asyncjobs_jobs AS j SET state = 'submitting', updated_at = %(now)s,
                        lease_owner = %(w)s, lease_expires = {NOW} + %(lease)s::float8
                    FROM picked WHERE j.seq = picked.seq RETURNING {_J_COLUMNS}""",
                {
                    "c": self._campaign,
                    "k": quota_key,
                    "n": room,
                    "now": now,
                    "w": self._worker,
                    "lease": lease_seconds,
                },
            )
            claimed = sorted((self._to_job(r) for r in await cur.fetchall()), key=lambda j: j.seq)
            if claimed:
                await conn.execute(
                    _INSERT_EVENTS,
                    (
                        self._campaign,
                        [j.id for j in claimed],
                        [now] * len(claimed),
                        [str(Event.CLAIM)] * len(claimed),
                        [str(JobState.PENDING)] * len(claimed),
                        [str(JobState.SUBMITTING)] * len(claimed),
                        [j.attempt for j in claimed],
                        [j.arn for j in claimed],
                        [None] * len(claimed),
                    ),
                )
            return claimed

        def count(claimed: list[Job]) -> None:
            per_key = self._counts[quota_key]
            per_key[JobState.PENDING] -= len(claimed)
            per_key[JobState.SUBMITTING] += len(claimed)

        with anyio.CancelScope(shield=True):  # claimed jobs are this worker's: never lose the answer
            claimed = await self._session.write(body, count)
        return claimed

    async def heartbeat(self, *, lease_seconds: float = 60.0) -> int:
        async def body(conn: Connection) -> int:
            cur = await conn.execute(
                f"UPDATE asyncjobs_jobs SET lease_expires = {NOW} + %s::float8"
                " WHERE campaign = %s AND state = 'submitting' AND lease_owner = %s RETURNING seq",
                (lease_seconds, self._campaign, self._worker),
            )
            return len(await cur.fetchall())  # (a pipelined statement has no row count until read)

        return await self._session.write(body)

    async def take_over_expired(self, limit: int = 1000, *, lease_seconds: float = 60.0) -> list[Job]:
        async def body(conn: Connection) -> list[Job]:
            cur = await conn.execute(
                f"""WITH picked AS (
                        SELECT seq, lease_owner FROM asyncjobs_jobs WHERE campaign = %(c)s
                            AND state = 'submitting' AND lease_expires <= {NOW}
                            ORDER BY seq LIMIT %(n)s FOR UPDATE SKIP LOCKED)
                    UPDATE asyncjobs_jobs AS j
                    SET lease_owner = %(w)s, lease_expires = {NOW} + %(lease)s::float8
                    FROM picked WHERE j.seq = picked.seq RETURNING {_J_COLUMNS}, picked.lease_owner""",
                {"c": self._campaign, "n": limit, "w": self._worker, "lease": lease_seconds},
            )
            rows = await cur.fetchall()
            for row in rows:
                log.info("asyncjobs.journal.taken_over", job_id=row[0], worker=self._worker, previous=row[-1])
            return sorted((self._to_job(r[:-1]) for r in rows), key=lambda j: j.seq)

        with anyio.CancelScope(shield=True):
            taken = await self._session.write(body)
        return taken

    async def take(self, key: str, rate: float, burst: float = 1.0) -> float:
        """One reservation from the bucket row ``key``, refilled in SQL by the database's clock."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")

        async def body(conn: Connection) -> float:
            cur = await conn.execute(
                f"""INSERT INTO asyncjobs_buckets AS b (campaign, key, tokens, at)
                    VALUES (%(c)s, %(k)s, %(burst)s::float8 - 1, {NOW})
                    ON CONFLICT (campaign, key) DO UPDATE SET
                        tokens = least(%(burst)s::float8,
                                       b.tokens + greatest(0, {NOW} - b.at) * %(rate)s::float8) - 1,
                        at = {NOW}
                    RETURNING tokens""",
                {"c": self._campaign, "k": key, "burst": burst, "rate": rate},
            )
            row = await cur.fetchone()
            tokens = float(row[0]) if row else 0.0
            return max(0.0, -tokens / rate)

        return await self._session.write(body)

    async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
        async def body(conn: Connection) -> bool:
            cur = await conn.execute(
                f"""INSERT INTO asyncjobs_sweeps AS s (campaign, kind, owner, expires)
                    VALUES (%s, %s, %s, {NOW} + %s::float8)
                    ON CONFLICT (campaign, kind)
                    DO UPDATE SET owner = excluded.owner, expires = excluded.expires
                    WHERE s.owner = excluded.owner OR s.expires <= {NOW}
                    RETURNING owner""",
                (self._campaign, kind, self._worker, seconds),
            )
            return await cur.fetchone() is not None

        return await self._session.write(body)
