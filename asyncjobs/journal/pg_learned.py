"""What a PostgreSQL journal's workers learn of the account's limits, shared between them.

Rows of ``asyncjobs_meta``, one per campaign and key, saved with a ``NOTIFY`` (:mod:`.pg_wake`)
so that the other workers take them up at once rather than at their next periodic read:

- **Paces**: ``pace:<service>:<region>``, the create calls per second that throttles showed;
  a worker that starts later begins at the pace the others found.
- **Slow starts**: ``rising:<service>:<region>``, the pace a worker's slow start doubled to
  while nothing is known of the limit: the workers double one pace together. Stamped and read
  only when recent, as caps are, and never a later run's starting pace (a pace is that).
- **Caps**: ``cap:<quota key>``, the running-jobs cap a worker lowered when the service said a
  quota was full (or raised by a probe): every worker claims under the cap one of them found,
  instead of each finding it by being refused. Each is stamped with the database's time, and
  workers read only recent ones (``within``): a worker with work for a key whose cap is below
  its limit probes above the cap and saves it again every ``capacity_probe_after``, so a much
  older cap is a stopped run's, and a quota raised since should not be found again one slot a
  minute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import anyio

from . import pg_wake
from .pg_schema import NOW
from .pg_session import Connection, Session

T = TypeVar("T", int, float)

PACE = "pace:"
RISING = "rising:"
CAP = "cap:"


async def read(
    session: Session, campaign: str, prefix: str, parse: Callable[[str], T], *, within: float | None = None
) -> dict[str, T]:
    """Every worker's values of the kind ``prefix`` (:data:`PACE`, :data:`RISING`,
    :data:`CAP`), by key; with ``within``, only those saved (``stamped``) that many seconds ago
    or less, by the database's clock."""

    async def body(conn: Connection) -> dict[str, T]:
        cur = await conn.execute(
            f"SELECT key, value, {NOW} FROM asyncjobs_meta WHERE campaign = %s AND starts_with(key, %s)",
            (campaign, prefix),
        )
        found: dict[str, T] = {}
        for key, text, now in await cur.fetchall():
            value, _, saved_at = text.partition(" ")
            if within is not None and (not saved_at or now - float(saved_at) > within):
                continue
            found[key.removeprefix(prefix)] = parse(value)
        return found

    return await session.read(body)


async def save(
    session: Session,
    campaign: str,
    prefix: str,
    values: Mapping[str, T],
    *,
    announce: str,
    stamped: bool = False,
) -> None:
    """Keep this worker's values of the kind ``prefix`` (one commit, shielded: it runs as a run
    ends), and tell the other workers (``announce``: :func:`.pg_wake.announcement`).
    ``stamped``: each value is stored with the database's time, for :func:`read`'s ``within``."""
    if not values:
        return
    stored = f"%s || ' ' || ({NOW})::text" if stamped else "%s"

    async def body(conn: Connection) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO asyncjobs_meta (campaign, key, value) VALUES (%s, %s, {stored})"
                " ON CONFLICT (campaign, key) DO UPDATE SET value = excluded.value",
                [(campaign, f"{prefix}{key}", repr(value)) for key, value in sorted(values.items())],
            )
        await conn.execute(pg_wake.NOTIFY, (announce,))

    with anyio.CancelScope(shield=True):
        await session.write(body)
