"""The PostgreSQL journal's connection: one statement at a time, riding database outages.

- **One connection.** Every statement of a journal goes through one psycopg ``AsyncConnection``
  (autocommit, explicit transactions), one at a time: group commit already makes one transaction
  of concurrent changes, and the reads the scheduler makes are few.
- **Outages.** A lost connection (a restart, a failover, a dropped network) is re-opened with
  backoff for up to ``outage_seconds``. A read is then run again. A write is run again unless it
  committed: its transaction id, taken before the COMMIT, is looked up with ``pg_xact_status``
  after reconnecting, so a commit whose answer was lost is neither repeated nor lost. Past
  ``outage_seconds``, :class:`~asyncjobs.errors.JournalUnavailable` says how long it lasted and to
  resume. Work that cannot be repeated (an ingest reads its input as it goes) raises it at once.
- **One outage, one budget.** The outage is the session's, not a call's: a call that starts while
  it lasts (calls take turns) has only what is left of the budget, and once the budget is spent
  each call tries to reconnect once and raises. So the writes a stopping run still shields, and
  :meth:`Session.close`, end promptly instead of each riding the outage again.
- **Secrets.** The URI, which may hold a password, stays in this object: messages name the
  database by its redacted form and driver messages are scrubbed (:mod:`.location`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
import psycopg
import structlog
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from ..errors import JournalError, JournalUnavailable
from . import location

log = structlog.get_logger("asyncjobs.journal")

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]
Retry = Literal["read", "write", "never"]

_ROLLBACK_RETRIES = 20  # serialization failures and deadlocks in a row before giving up
#: Seconds :meth:`Session.close` gives its last statement (giving up leases, which expire anyway).
CLOSE_SECONDS = 5.0


@dataclass
class Attempt:
    """One try of a write: its transaction id (known before the COMMIT) and its result."""

    xid: str | None = None
    result: Any = None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


#: libpq's TCP settings for a connection whose URI sets none of its own: a peer that vanished
#: without a word (a network cut, a host powered off, a failover that kept the old address) is
#: noticed after about 25 s, and the connection handled as lost (an outage to ride), instead of
#: a statement or the listener waiting for the kernel's own timeout, which is minutes to hours.
#: Keepalives are answered by a live server's kernel, so a long statement is not cut short.
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,  # seconds of silence before the first probe
    "keepalives_interval": 5,  # seconds between unanswered probes
    "keepalives_count": 3,  # unanswered probes before the connection is dropped
    "tcp_user_timeout": 25_000,  # ms that sent data may stay unacknowledged (Linux)
}


async def connect(
    uri: str, *, within: float | None = None, autocommit: bool = True, application_name: str = "asyncjobs"
) -> Connection:
    """A connection to ``uri``; given ``within``, an attempt that gets no answer (a host gone from
    the network) fails after about that many seconds (libpq's least is 2) instead of psycopg's
    130, unless the URI or ``PGCONNECT_TIMEOUT`` sets a timeout of its own. The TCP settings of
    :data:`KEEPALIVE` apply unless the URI sets any of them."""
    given = conninfo_to_dict(uri)
    options: dict[str, Any] = {}
    own = "connect_timeout" in given or "PGCONNECT_TIMEOUT" in os.environ
    if within is not None and not own:
        options["connect_timeout"] = max(2, math.ceil(within))
    if not given.keys() & KEEPALIVE.keys():  # libpq ignores them on a Unix socket
        options.update(KEEPALIVE)
    return await psycopg.AsyncConnection.connect(
        uri, autocommit=autocommit, application_name=application_name, **options
    )


class Session:
    """The connection of one journal object. ``shown`` is the URI with its password hidden."""

    def __init__(
        self,
        uri: str,
        conn: Connection,
        *,
        outage_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.__uri = uri  # holds the password: never shown
        self.shown = location.redact(uri)
        self._conn: Connection | None = conn
        self._outage_seconds = outage_seconds
        self._clock = clock
        #: When the connection was lost, until a statement runs again (the outage being ridden).
        self._down_since: float | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def scrub(self, exc: BaseException) -> str:
        """``exc`` as one line, without the password."""
        return location.scrub(one_line(exc), self.__uri)

    def error(self, exc: psycopg.Error) -> JournalError:
        return JournalError(f"journal {self.shown}: {self.scrub(exc)}")

    async def read(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """``body`` (reads only), run again after an outage."""

        async def work(conn: Connection, _: Attempt) -> T:
            return await body(conn)

        return await self.call(work, retry="read")

    async def write(
        self, body: Callable[[Connection], Awaitable[T]], on_commit: Callable[[T], None] | None = None
    ) -> T:
        """``body`` in one transaction, run again after an outage unless it committed;
        ``on_commit`` sees its result before any other call runs (see :meth:`call`)."""

        async def work(conn: Connection, attempt: Attempt) -> T:
            # pipelined: statements go out without waiting for each answer, until one is read
            async with conn.pipeline(), conn.transaction():
                xid = await conn.execute("SELECT pg_current_xact_id()::text")
                attempt.result = await body(conn)
                row = await xid.fetchone()  # known before the COMMIT is sent
                attempt.xid = None if row is None else row[0]
            return attempt.result  # type: ignore[no-any-return]

        return await self.call(work, retry="write", on_commit=on_commit)

    async def call(
        self,
        work: Callable[[Connection, Attempt], Awaitable[T]],
        *,
        retry: Retry,
        on_commit: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``work`` on the connection, riding an outage as the module docstring says.

        ``on_commit(result)`` runs before the next call can start: what it keeps in memory (the
        journal's counts) is never overtaken by a read that already saw the commit.
        """
        if self._closed:
            raise JournalError(f"journal {self.shown} is closed")
        async with self._lock:
            result = await self._retrying(work, retry)
            if on_commit is not None:
                on_commit(result)
            return result

    async def _retrying(self, work: Callable[[Connection, Attempt], Awaitable[T]], retry: Retry) -> T:
        """Run ``work`` until it succeeds, the outage outlasts ``outage_seconds`` or ``retry`` forbids."""
        delay = 0.05
        rollbacks = 0
        doubt: Attempt | None = None  # a write whose COMMIT may or may not have happened
        attempt = Attempt()
        while True:
            try:
                if doubt is not None:
                    status = await self._status(await self._connection(), doubt)
                    self._down_since = None
                    if status == "committed":
                        return doubt.result  # type: ignore[no-any-return]
                    if status == "in progress":  # the old session is still ending
                        await anyio.sleep(delay)
                        continue
                    doubt = None
                attempt = Attempt()
                result = await work(await self._connection(), attempt)
                self._down_since = None
                return result
            except pgerrors.TransactionRollback as exc:  # a serialization failure or deadlock
                rollbacks += 1
                if rollbacks > _ROLLBACK_RETRIES:
                    raise self.error(exc) from None
                await anyio.sleep(delay * rollbacks)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not self._lost():
                    raise self.error(exc) from None
                if self._closed:  # closed under this call: no reconnecting
                    raise JournalError(f"journal {self.shown} is closed") from None
                now = self._clock()
                if self._down_since is None:
                    self._down_since = now
                    log.warning("asyncjobs.journal.outage", journal=self.shown, error=self.scrub(exc))
                message = self.scrub(exc)
                if retry == "never":
                    raise JournalUnavailable(
                        f"journal {self.shown}: the connection to the database was lost ({message});"
                        " nothing of this call was recorded: run it again"
                    ) from None
                if now - self._down_since >= self._outage_seconds:
                    raise JournalUnavailable(
                        f"journal {self.shown}: the database has been unreachable for"
                        f" {now - self._down_since:.0f} s ({message}); resume the campaign once it is back"
                    ) from None
                if retry == "write" and attempt.xid is not None and doubt is None:
                    doubt = attempt
                await anyio.sleep(delay)
                delay = min(2.0, delay * 2)
            except psycopg.Error as exc:
                raise self.error(exc) from None
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled mid-statement: the session is unknown
                    await self._drop()
                raise

    async def close(self, last: Callable[[Connection], Awaitable[None]] | None = None) -> None:
        """Run ``last`` (best effort: not during an outage, and for at most :data:`CLOSE_SECONDS`)
        and disconnect."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if last is not None and self._down_since is None and not self._lost():
                with anyio.move_on_after(CLOSE_SECONDS), contextlib.suppress(psycopg.Error):
                    async with self._lock:
                        conn = self._conn
                        if conn is not None and not self._lost():
                            async with conn.transaction():
                                await last(conn)
            await self._drop()

    # ------------------------------------------------------------------ private
    async def _connection(self) -> Connection:
        if self._conn is None or self._lost():
            await self._drop()
            # a reconnection gets no longer than what is left of the outage's budget
            spent = 0.0 if self._down_since is None else self._clock() - self._down_since
            self._conn = await connect(self.__uri, within=self._outage_seconds - spent)
            log.info("asyncjobs.journal.reconnected", journal=self.shown)
        return self._conn

    def _lost(self) -> bool:
        conn = self._conn
        return conn is None or conn.closed or conn.broken

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
                await conn.close()

    @staticmethod
    async def _status(conn: Connection, attempt: Attempt) -> str | None:
        """``committed``, ``aborted``, ``in progress`` or None (too old to know) for ``attempt``."""
        row = await (await conn.execute("SELECT pg_xact_status(%s::xid8)", (attempt.xid,))).fetchone()
        return None if row is None else row[0]
