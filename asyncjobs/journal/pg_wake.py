"""Telling the other workers of a campaign at once that a slot is free or a limit was learned.

A commit that frees a quota slot (a job final, or given back to ``pending``) or saves a pace or
a cap (:mod:`.pg_learned`) sends ``NOTIFY asyncjobs`` in its own transaction (so only if it
commits); the payload is ``<worker> <campaign>``. :func:`listen` LISTENs on a connection of its
own and yields the id of each other worker of the campaign that sent one, so a worker reads the
journal again at the commit instead of at its next periodic refresh.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import anyio
import psycopg

from ..errors import JournalError
from .pg_session import Connection

CHANNEL = "asyncjobs"
#: Sent in a transaction with ``(announcement(worker, campaign),)``.
NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"


def announcement(worker: str, campaign: str) -> str:
    return f"{worker} {campaign}"


async def listen(
    connect: Callable[[], Awaitable[Connection]],
    error: Callable[[psycopg.Error], JournalError],
    *,
    campaign: str,
    worker: str,
) -> AsyncGenerator[str, None]:
    """The id of another worker each time it announces a change to ``campaign``; a lost
    connection raises ``error(exc)`` (nothing is retried: a listener that missed notifications
    must read the journal again anyway)."""
    try:
        conn = await connect()
    except psycopg.Error as exc:
        raise error(exc) from None
    try:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            sender, _, about = note.payload.partition(" ")
            if about == campaign and sender != worker:
                yield sender
    except psycopg.Error as exc:
        raise error(exc) from None
    finally:
        with anyio.CancelScope(shield=True):
            await conn.close()
