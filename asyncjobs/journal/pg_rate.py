"""The create rate that a PostgreSQL journal's workers share: a token bucket.

One row per campaign and key in ``asyncjobs_buckets``, refilled in SQL by the database's clock
(:data:`~.pg_schema.NOW`): every worker reserving from one key shares one rate, whatever its
host's clock says. The pace the bucket is refilled at is learned from throttles and shared
through :mod:`.pg_learned`.
"""

from __future__ import annotations

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
