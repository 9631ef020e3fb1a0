"""What a PostgreSQL journal's workers learn of the account's limits, shared between them.

Rows of ``asyncjobs_meta``, one per campaign and key, saved with a ``NOTIFY`` (:mod:`.pg_wake`)
so that the other workers take them up at once rather than at their next periodic read:

- **Paces**: ``pace:<service>:<region>``, the create calls per second that throttles showed;
  a worker that starts later begins at the pace the others found.
- **Caps**: ``cap:<quota key>``, the running-jobs cap a worker lowered when the service said a
  quota was full (or raised when a probe above it was accepted): every worker claims under the
  cap one of them found, instead of each finding it by being refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import anyio

from . import pg_wake
from .pg_session import Connection, Session

T = TypeVar("T", int, float)

PACE = "pace:"
CAP = "cap:"


async def read(session: Session, campaign: str, prefix: str, parse: Callable[[str], T]) -> dict[str, T]:
    """Every worker's values of the kind ``prefix`` (:data:`PACE`, :data:`CAP`), by key."""

    async def body(conn: Connection) -> dict[str, T]:
        cur = await conn.execute(
            "SELECT key, value FROM asyncjobs_meta WHERE campaign = %s AND starts_with(key, %s)",
            (campaign, prefix),
        )
        return {key.removeprefix(prefix): parse(value) for key, value in await cur.fetchall()}

    return await session.read(body)


async def save(
    session: Session, campaign: str, prefix: str, values: Mapping[str, T], *, announce: str
) -> None:
    """Keep this worker's values of the kind ``prefix`` (one commit, shielded: it runs as a run
    ends), and tell the other workers (``announce``: :func:`.pg_wake.announcement`)."""
    if not values:
        return

    async def body(conn: Connection) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO asyncjobs_meta (campaign, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (campaign, key) DO UPDATE SET value = excluded.value",
                [(campaign, f"{prefix}{key}", repr(value)) for key, value in sorted(values.items())],
            )
        await conn.execute(pg_wake.NOTIFY, (announce,))

    with anyio.CancelScope(shield=True):
        await session.write(body)
