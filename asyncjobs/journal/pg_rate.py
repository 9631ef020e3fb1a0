"""The create rate that a PostgreSQL journal's workers share: the token bucket and the learned paces.

- **Bucket.** One row per campaign and key in ``asyncjobs_buckets``, refilled in SQL by the
  database's clock (:data:`~.pg_schema.NOW`): every worker reserving from one key shares one rate,
  whatever its host's clock says.
- **Paces.** Each worker's learned create paces are ``pace:<service>:<region>`` rows of
  ``asyncjobs_meta``: a worker that starts later begins at the pace the others found.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from . import pg_wake
from .pg_schema import NOW
from .pg_session import Connection, Session


async def take(session: Session, campaign: str, key: str, rate: float, burst: float) -> float:
    """One reservation from the bucket row ``key``: the seconds to wait before the call."""
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
            {"c": campaign, "k": key, "burst": burst, "rate": rate},
        )
        row = await cur.fetchone()
        tokens = float(row[0]) if row else 0.0
        return max(0.0, -tokens / rate)

    return await session.write(body)


async def paces(session: Session, campaign: str) -> dict[str, float]:
    """Every worker's learned paces, calls per second by ``<service>:<region>``."""

    async def body(conn: Connection) -> dict[str, float]:
        cur = await conn.execute(
            "SELECT key, value FROM asyncjobs_meta WHERE campaign = %s AND key LIKE 'pace:%%'", (campaign,)
        )
        return {key.removeprefix("pace:"): float(value) for key, value in await cur.fetchall()}

    return await session.read(body)


async def save_paces(session: Session, campaign: str, paces: Mapping[str, float], *, announce: str) -> None:
    """Keep this worker's learned paces (one commit, shielded: it runs as a run ends), and tell
    the other workers (``announce``: :func:`.pg_wake.announcement`)."""
    if not paces:
        return

    async def body(conn: Connection) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO asyncjobs_meta (campaign, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (campaign, key) DO UPDATE SET value = excluded.value",
                [(campaign, f"pace:{key}", repr(float(pace))) for key, pace in sorted(paces.items())],
            )
        await conn.execute(pg_wake.NOTIFY, (announce,))

    with anyio.CancelScope(shield=True):
        await session.write(body)
