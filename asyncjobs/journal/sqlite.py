"""The SQLite journal: one local file in WAL mode, the embedded default.

- **Durable before the network.** :meth:`SQLiteJournal.transition` returns only after
  its change is committed (``synchronous=FULL`` by default: it survives a power cut,
  not only a killed process).
- **Group commit.** Concurrent changes share one transaction: the first writer to find
  no flush under way becomes the leader and commits everything queued, shielded from
  cancellation, while the others wait for their batch.
- **One process at a time.** An exclusive ``flock`` on ``<journal>.lock`` is held while
  the journal is open; a second process gets :class:`~asyncjobs.errors.JournalLocked`.
- **Private.** The database (and so its WAL) and the lock file are created with mode 0600, and a
  journal file that is a link, another user's or writable by others is refused (see :mod:`.files`).
- **Versioned.** ``PRAGMA user_version`` holds the schema version; a newer one is refused.

All SQL lives in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import orjson
import structlog

from .. import lifecycle
from ..errors import (
    CampaignError,
    JournalError,
    JournalLocked,
    JournalSchemaError,
    JournalUnwritable,
    SpecChanged,
)
from ..lifecycle import Event
from ..model import Job, JobSpec, JobState, Service, StateCounts, evolve, spec_digest
from ..naming import idempotency_token, job_name
from . import files
from .base import AddResult, Change, EventRecord
from .single import SingleProcessWorker

log = structlog.get_logger("asyncjobs.journal")

SCHEMA_VERSION = 1
_APPLICATION_ID = 0x41534A42  # "ASJB"
_INGEST_BATCH = 5000
#: The indexes of ``jobs``, dropped while a fresh journal is bulk-loaded and built after.
#: (Journals made by earlier development versions enforce the two unique ones as column constraints, which
#: cannot be dropped: they are loaded row by row.)
_JOB_INDEXES = {
    "jobs_id": "CREATE UNIQUE INDEX jobs_id ON jobs (id)",
    "jobs_job_name": "CREATE UNIQUE INDEX jobs_job_name ON jobs (job_name)",
    "jobs_by_state": "CREATE INDEX jobs_by_state ON jobs (state, quota_key, seq)",
}
_INSERT_JOB = (
    "INSERT INTO jobs (id, service, quota_key, request, digest, given_name, job_name,"
    " source, ingest, updated_at, state, attempt) VALUES "
)
_JOB_VALUES = "(?,?,?,?,?,?,?,?,?,?, 'pending', 1)"

_SCHEMA = """
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

_JOB_COLUMNS = (
    "id, seq, service, quota_key, state, attempt, job_name, request, digest, arn, "
    "remote_status, last_error, submitted_at, updated_at"
)
# ``token`` may be set on the caller's Job, but it is derived on read, never stored
_FIELDS = frozenset({"arn", "remote_status", "last_error", "submitted_at", "job_name", "token", "attempt"})

T = TypeVar("T")
Durability = Literal["full", "normal"]


def _row_to_job(row: sqlite3.Row | tuple[Any, ...], campaign: str) -> Job:
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


def _is_unwritable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("readonly", "read-only", "disk is full", "disk i/o", "unable to open"))


class SQLiteJournal(SingleProcessWorker):  # the several-worker primitives, for one process
    """A campaign journal in one SQLite file. Open it with :meth:`open`."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int, campaign: str, *, record: bool = True
    ) -> None:
        self._path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self._record = record  # whether the lock file holds our record (see _lock)
        self._campaign = campaign
        self._db = anyio.CapacityLimiter(1)
        self._queue: list[tuple[Change, asyncio.Future[Job]]] = []
        self._flushing = False
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
    ) -> SQLiteJournal:
        """Open (or create) the journal at ``path``.

        ``campaign`` names a new journal's campaign (default: the file's stem); an
        existing journal keeps the name it was created with.
        """
        return await anyio.to_thread.run_sync(cls._open_sync, Path(path), campaign, create, durability)

    @classmethod
    def _open_sync(
        cls, path: Path, campaign: str | None, create: bool, durability: Durability
    ) -> SQLiteJournal:
        # nothing found at the journal's paths is trusted: a link, another user's file or one that
        # others can write is refused before anything is opened (files.py says why)
        if not files.exists(path) and not create:
            raise JournalError(f"{path}: no such journal")
        files.check_all(path)
        lock_fd, record = cls._lock(path)
        try:
            try:
                identity = files.prepare_database(path, create=create)
            except OSError as exc:
                raise JournalUnwritable(f"{path}: cannot create the journal: {exc.strerror}") from exc
            files.check_all(path)  # again, now that no other asyncjobs process can be creating them
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                files.check_same(path, identity)  # SQLite opens by name: the name still means that file
                name = cls._prepare(conn, path, campaign or path.stem, durability)
                files.check_all(path)  # and the -wal and -shm it has just created or opened
            except BaseException:
                conn.close()
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        journal = cls(path, conn, lock_fd, name, record=record)
        journal._load_counts()
        return journal

    @staticmethod
    def _lock(path: Path) -> tuple[int, bool]:
        """Take ``<journal>.lock``: its descriptor, and whether it may hold our lock record.

        The pid (and a bulk load's progress) is written only into a lock file created here or one
        that is empty or holds an earlier record: a file of anything else is locked, never truncated.
        """
        lock_path = files.sibling(path, files.LOCK_SUFFIX)
        try:
            fd, created = files.open_private(lock_path)
        except OSError as exc:
            raise JournalError(f"{path}: cannot open the lock file {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError):
                found = files.read_record(fd)[1]
                holder = "" if found is None else f" (pid {found.pid})"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JournalLocked(
                    f"journal {path} is in use by another asyncjobs process{holder}"
                ) from None
            raise JournalError(f"{path}: cannot lock the journal: {exc.strerror}") from exc
        rewritable = created
        with contextlib.suppress(OSError):
            rewritable = rewritable or files.read_record(fd)[0]
            if rewritable:
                files.write_record(fd, files.LockRecord(os.getpid()))
        return fd, rewritable

    @staticmethod
    def _prepare(conn: sqlite3.Connection, path: Path, campaign: str, durability: Durability) -> str:
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            app_id, version = (
                conn.execute("PRAGMA application_id").fetchone()[0],
                conn.execute("PRAGMA user_version").fetchone()[0],
            )
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise JournalSchemaError(f"{path}: not an asyncjobs journal ({exc})") from exc
        if tables and app_id != _APPLICATION_ID:
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
                meta = ",".join(f"('{k}', '{v}')" for k, v in (("created_at", time.time()), ("ingests", 0)))
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("SAVEPOINT s")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute(f"INSERT INTO meta (key, value) VALUES {meta}")
                    conn.execute("INSERT INTO meta (key, value) VALUES ('campaign', ?)", (campaign,))
                    conn.execute("RELEASE s")
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
        except sqlite3.Error as exc:
            if _is_unwritable(exc):
                raise JournalUnwritable(f"{path}: the journal is not writable: {exc}") from exc
            raise JournalError(f"{path}: {exc}") from exc
        row = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        if row is None:
            raise JournalSchemaError(f"{path}: not an asyncjobs journal (no campaign name)")
        return str(row[0])

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
        if self._record:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
        os.close(self._lock_fd)

    def _to_job(self, row: tuple[Any, ...]) -> Job:
        return _row_to_job(row, self._campaign)

    # ------------------------------------------------------------- properties
    @property
    def campaign(self) -> str:
        return self._campaign

    @property
    def path(self) -> str:
        return str(self._path)

    def counts(self) -> StateCounts:
        total: Counter[JobState] = Counter()
        for per_key in self._counts.values():
            total.update(per_key)
        return StateCounts({s: n for s, n in total.items() if n})

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        return {k: StateCounts({s: n for s, n in c.items() if n}) for k, c in self._counts.items()}

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=self._db)

    # ---------------------------------------------------------------- ingest
    async def add_specs(self, specs: Iterable[JobSpec]) -> AddResult:
        result, added = await self._run(lambda: self._add_sync(specs))
        for key, n in added.items():
            self._counts[key][JobState.PENDING] += n
        return result

    def _add_sync(self, specs: Iterable[JobSpec]) -> tuple[AddResult, Counter[str]]:
        added: Counter[str] = Counter()
        existing = 0
        # one process holds the journal (flock): it cannot fill up between here and BEGIN
        fresh = self._conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is None
        bulk = fresh and self._indexes_droppable()
        # a fresh journal is loaded with a rollback journal: each page is written once, not to
        # the WAL and again at the checkpoint (still atomic and durable; WAL again at the end)
        switched = bulk and self._journal_mode("delete")
        try:
            with self._transaction() as conn:
                ingest = int(conn.execute("SELECT value FROM meta WHERE key = 'ingests'").fetchone()[0]) + 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'ingests'", (str(ingest),))
                if bulk:  # rows go in unindexed; the indexes are built once, sorted, at the end
                    for name in _JOB_INDEXES:
                        conn.execute(f"DROP INDEX {name}")
                    self._note_loading(0, "inserting")
                for batch in _batches(specs, _INGEST_BATCH):
                    rows = self._encode(batch, ingest)
                    if bulk:
                        self._insert_many(rows)
                    else:
                        rows, skipped = self._store(rows, ingest, fresh)
                        existing += skipped
                    added.update(r[2] for r in rows)
                    if bulk:
                        self._note_loading(added.total(), "inserting")
                if bulk:
                    self._note_loading(added.total(), "indexing")
                    self._build_indexes()
        finally:
            if bulk:
                self._note_loading(None)
            if switched:
                self._journal_mode("wal")
        log.debug("asyncjobs.journal.ingested", added=sum(added.values()), existing=existing, bulk=bulk)
        return AddResult(added=sum(added.values()), existing=existing), added

    def _indexes_droppable(self) -> bool:
        """Whether the indexes of ``jobs`` can be dropped for a bulk load and built after it."""
        conn = self._conn
        marks = ",".join("?" * len(_JOB_INDEXES))
        (n,) = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
            list(_JOB_INDEXES),
        ).fetchone()
        return bool(n == len(_JOB_INDEXES))

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

    def _note_loading(self, jobs: int | None, stage: str = "inserting") -> None:
        """Record how far a bulk load has got, in the lock file (None: the load is over).

        Readers wait while the load holds the database (a rollback journal, written under an
        exclusive lock) and its rows appear all at once at the commit, so ``status`` reports this.
        """
        if not self._record:
            return
        loading = None if jobs is None else {"campaign": self._campaign, "jobs": jobs, "stage": stage}
        with contextlib.suppress(OSError):
            files.write_record(self._lock_fd, files.LockRecord(os.getpid(), loading))

    def _insert_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with few statements: each step of a multi-row INSERT is one call
        into SQLite, instead of one per row."""
        conn = self._conn
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 10
        per = max(1, min(500, limit))
        whole = len(rows) - len(rows) % per
        if whole:
            sql = _INSERT_JOB + ",".join([_JOB_VALUES] * per)
            for start in range(0, whole, per):
                conn.execute(sql, [v for row in rows[start : start + per] for v in row])
        if whole < len(rows):
            conn.executemany(_INSERT_JOB + _JOB_VALUES, rows[whole:])

    def _build_indexes(self) -> None:
        """Build the indexes of a bulk load; a repeated id or job name raises CampaignError
        naming its two places (the first repeat in input order)."""
        for name, sql in _JOB_INDEXES.items():
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

    def _encode(self, batch: list[JobSpec], ingest: int) -> list[tuple[Any, ...]]:
        """The rows of ``batch`` (no I/O); raises on an id repeated within the batch.

        The hot loop of an ingest: the request is encoded once, and hashed as those bytes.
        """
        rows: list[tuple[Any, ...]] = []
        seen: dict[str, str | None] = {}
        now = time.time()
        campaign = self._campaign
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
            raw = dumps(request, option=sort)
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

    def _store(
        self, rows: list[tuple[Any, ...]], ingest: int, fresh: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
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
                if row[0] not in known:
                    kept.append(row)
                    continue
                digest, when, first = known[row[0]]
                if when == ingest:
                    raise CampaignError(
                        f"duplicate id {row[0]!r} (first at {first})", source=row[7], field="id"
                    )
                if digest != row[4]:
                    raise SpecChanged(row[0], row[7])
                skipped += 1
            rows = kept
        self._insert(rows)
        return rows, skipped

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        self._conn.execute("SAVEPOINT batch")
        try:
            self._conn.executemany(_INSERT_JOB + _JOB_VALUES, rows)
        except sqlite3.IntegrityError:
            # a constraint error leaves the transaction open: diagnose against the journal as it was
            self._conn.execute("ROLLBACK TO batch")
            self._conn.execute("RELEASE batch")
            self._raise_duplicate(rows)
            raise
        self._conn.execute("RELEASE batch")

    def _raise_duplicate(self, rows: list[tuple[Any, ...]]) -> None:
        marks = ",".join("?" * len(rows))
        firsts = dict(
            self._conn.execute(
                f"SELECT id, source FROM jobs WHERE id IN ({marks})", [r[0] for r in rows]
            ).fetchall()
        )
        for row in rows:
            if row[0] in firsts:
                raise CampaignError(
                    f"duplicate id {row[0]!r} (first at {firsts[row[0]]})", source=row[7], field="id"
                )
        names: dict[str, str] = {}
        for row in rows:
            name, source = row[6], row[7] or "<specs>"
            if name in names:
                raise CampaignError(
                    f"duplicate jobName {name!r} (first at {names[name]})",
                    source=source,
                    field="request.jobName",
                )
            names[name] = source
        marks = ",".join("?" * len(rows))
        for name, first in self._conn.execute(
            f"SELECT job_name, source FROM jobs WHERE job_name IN ({marks})", [r[6] for r in rows]
        ):
            raise CampaignError(
                f"duplicate jobName {name!r} (first at {first})", source=names[name], field="request.jobName"
            )

    # ----------------------------------------------------------------- reads
    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]:
        if limit <= 0 or not self._counts[quota_key][JobState.PENDING]:
            return []

        def read() -> list[Job]:
            skip = set(exclude)
            cur = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'pending' AND quota_key = ?"
                " ORDER BY seq LIMIT ?",
                (quota_key, limit + len(skip)),
            )
            return [j for j in map(self._to_job, cur) if j.id not in skip][:limit]

        return await self._run(read)

    async def active(self) -> list[Job]:
        def read() -> list[Job]:
            cur = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs"
                " WHERE state IN ('submitting', 'submitted', 'running') ORDER BY seq"
            )
            return list(map(self._to_job, cur))

        return await self._run(read)

    async def get(self, job_id: str) -> Job | None:
        def read() -> Job | None:
            row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
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
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT 1000", args
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

    # ---------------------------------------------------------------- writes
    async def save_paces(self, paces: Mapping[str, float]) -> None:
        """Kept as ``pace:<service>:<region>`` rows of ``meta``: journals of earlier versions
        read them as unknown keys and ignore them, so the schema version stays."""
        if not paces:
            return

        def write() -> None:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [(f"pace:{key}", repr(float(pace))) for key, pace in paces.items()],
                )

        with anyio.CancelScope(shield=True):
            await self._run(write)

    async def transition(self, job: Job, event: Event, *, detail: str | None = None, **fields: Any) -> Job:
        (new,) = await self.transition_many([Change(job, event, fields, detail)])
        return new

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        """Remote status changes within the same normalised state: one commit, no event rows."""
        if not updates:
            return []
        now = time.time()
        jobs = [evolve(job, job.state, now, {"remote_status": status}) for job, status in updates]

        def write() -> None:
            with self._transaction() as conn:
                conn.executemany(
                    "UPDATE jobs SET remote_status = ?, updated_at = ? WHERE seq = ?",
                    [(j.remote_status, now, j.seq) for j in jobs],
                )

        with anyio.CancelScope(shield=True):
            await self._run(write)
        return jobs

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        if not changes:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Job]] = []
        state_of: dict[int, JobState] = {}  # a job changed twice in this call: its state in between
        for change in changes:
            seq = change.job.seq
            state_of[seq] = lifecycle.apply(state_of.get(seq, change.job.state), change.event)  # raise now
            unknown = set(change.fields) - _FIELDS
            if unknown:
                raise TypeError(f"unknown job fields {sorted(unknown)}")
            fut: asyncio.Future[Job] = loop.create_future()
            self._queue.append((change, fut))
            futures.append(fut)
        if not self._flushing:
            self._flushing = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        batch, self._queue = self._queue, []
                        await self._flush(batch)
            finally:
                self._flushing = False
        # a caller cancelled while waiting loses only the result: its change is still committed
        try:
            return [await f for f in futures]
        finally:
            for f in futures:  # a failed batch fails every change: report it once, retrieve the rest
                if f.done() and not f.cancelled():
                    f.exception()

    async def _flush(self, batch: list[tuple[Change, asyncio.Future[Job]]]) -> None:
        now = time.time()
        # changes to one job apply in order, each to what the one before left
        latest: dict[int, Job] = {}
        before: list[Job] = []
        jobs: list[Job] = []
        for change, _ in batch:
            old = latest.get(change.job.seq, change.job)
            new = evolve(old, lifecycle.apply(old.state, change.event), now, change.fields)
            latest[new.seq] = new
            before.append(old)
            jobs.append(new)
        try:
            await self._run(lambda: self._write_sync(batch, before, jobs, now))
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), old, new in zip(batch, before, jobs, strict=True):
            per_key = self._counts[new.quota_key]
            per_key[old.state] -= 1
            per_key[new.state] += 1
            if not fut.done():
                fut.set_result(new)

    def _write_sync(
        self,
        batch: list[tuple[Change, asyncio.Future[Job]]],
        before: list[Job],
        jobs: list[Job],
        now: float,
    ) -> None:
        with self._transaction() as conn:
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
                    for j in jobs
                ],
            )
            conn.executemany(
                "INSERT INTO events (job_id, ts, event, from_state, to_state, attempt, arn, detail)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [
                    (j.id, now, str(c.event), str(old.state), str(j.state), j.attempt, j.arn, c.detail)
                    for (c, _), old, j in zip(batch, before, jobs, strict=True)
                ],
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error; SQLite
        errors become JournalUnwritable (read-only file, full disk) or JournalError."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.Error) -> JournalError:
        if _is_unwritable(exc):
            return JournalUnwritable(f"journal {self._path} cannot be written: {exc}")
        return JournalError(f"journal {self._path}: {exc}")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends it by itself on some errors
    (a full disk), and a failing ROLLBACK must not hide the error that caused it."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
