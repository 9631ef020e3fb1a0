"""How a PostgreSQL journal's workers divide the work: claims, job leases and sweep leases.

- **Claims.** A claim counts a quota key's active jobs (every worker's) and moves pending ones to
  ``submitting`` in one transaction under the key's advisory lock, so concurrent claims never
  exceed the key's cap together; ``FOR UPDATE SKIP LOCKED`` keeps them from waiting on each
  other's rows.
- **Job leases.** A ``submitting`` job carries its worker and an expiry (the database's clock),
  renewed by :func:`heartbeat`. A job whose lease expired (its worker died) is taken over by
  another worker (:func:`take_over_expired`), which reconciles it as a resume does.
- **Sweep leases.** One worker at a time sweeps each job kind's statuses (:func:`try_lease_sweep`).
- **Leaving.** :func:`release` gives up every lease of a worker that closes its journal, so the
  others take its jobs over at once instead of after the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from ..lifecycle import Event
from ..model import Job, JobState
from .pg_changes import INSERT_EVENTS
from .pg_reads import ACTIVE
from .pg_schema import JOB_COLUMNS, NOW
from .pg_session import Connection, Session
from .schema import row_to_job

log = structlog.get_logger("asyncjobs.journal")

_J_COLUMNS = ", ".join(f"j.{c.strip()}" for c in JOB_COLUMNS.split(","))


class Leases:
    """One worker's claims and leases on its campaign."""

    def __init__(self, session: Session, campaign: str, worker: str) -> None:
        self._session = session
        self._campaign = campaign
        self._worker = worker

    async def claim(
        self,
        quota_key: str,
        cap: int,
        limit: int,
        *,
        lease_seconds: float,
        on_commit: Callable[[list[Job]], None],
    ) -> list[Job]:
        """Count and claim in one transaction under the key's advisory lock (see the protocol);
        ``on_commit`` is told the claimed jobs before any other call of the session runs."""
        if limit <= 0 or cap <= 0:
            return []
        now = time.time()
        campaign = self._campaign

        async def body(conn: Connection) -> list[Job]:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"asyncjobs:claim:{campaign}:{quota_key}",),
            )
            cur = await conn.execute(
                "SELECT count(*) FROM asyncjobs_jobs"
                f" WHERE campaign = %s AND quota_key = %s AND state IN {ACTIVE}",
                (campaign, quota_key),
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
                    "c": campaign,
                    "k": quota_key,
                    "n": room,
                    "now": now,
                    "w": self._worker,
                    "lease": lease_seconds,
                },
            )
            rows = await cur.fetchall()
            claimed = sorted((row_to_job(tuple(r), campaign) for r in rows), key=lambda j: j.seq)
            if claimed:
                await _insert_claim_events(conn, campaign, claimed, now)
            return claimed

        with anyio.CancelScope(shield=True):  # claimed jobs are this worker's: never lose the answer
            claimed = await self._session.write(body, on_commit)
        return claimed

    async def heartbeat(self, *, lease_seconds: float) -> int:
        """Renew this worker's job leases; how many it holds."""

        async def body(conn: Connection) -> int:
            cur = await conn.execute(
                f"UPDATE asyncjobs_jobs SET lease_expires = {NOW} + %s::float8"
                " WHERE campaign = %s AND state = 'submitting' AND lease_owner = %s RETURNING seq",
                (lease_seconds, self._campaign, self._worker),
            )
            return len(await cur.fetchall())  # (a pipelined statement has no row count until read)

        return await self._session.write(body)

    async def take_over_expired(self, limit: int, *, lease_seconds: float) -> list[Job]:
        """Lease to this worker up to ``limit`` ``submitting`` jobs whose lease expired."""
        campaign = self._campaign

        async def body(conn: Connection) -> list[Job]:
            cur = await conn.execute(
                f"""WITH picked AS (
                        SELECT seq, lease_owner FROM asyncjobs_jobs WHERE campaign = %(c)s
                            AND state = 'submitting' AND lease_expires <= {NOW}
                            ORDER BY seq LIMIT %(n)s FOR UPDATE SKIP LOCKED)
                    UPDATE asyncjobs_jobs AS j
                    SET lease_owner = %(w)s, lease_expires = {NOW} + %(lease)s::float8
                    FROM picked WHERE j.seq = picked.seq RETURNING {_J_COLUMNS}, picked.lease_owner""",
                {"c": campaign, "n": limit, "w": self._worker, "lease": lease_seconds},
            )
            rows = await cur.fetchall()
            for row in rows:
                log.info("asyncjobs.journal.taken_over", job_id=row[0], worker=self._worker, previous=row[-1])
            return sorted((row_to_job(tuple(r[:-1]), campaign) for r in rows), key=lambda j: j.seq)

        with anyio.CancelScope(shield=True):
            taken = await self._session.write(body)
        return taken

    async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
        """Take or renew the lease on sweeping ``kind``: whether this worker holds it now."""

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

    async def release(self, conn: Connection) -> None:
        """Give up this worker's job and sweep leases (as its journal closes)."""
        await conn.execute(
            f"UPDATE asyncjobs_jobs SET lease_expires = {NOW} WHERE campaign = %s"
            " AND state = 'submitting' AND lease_owner = %s",
            (self._campaign, self._worker),
        )
        await conn.execute(
            "DELETE FROM asyncjobs_sweeps WHERE campaign = %s AND owner = %s", (self._campaign, self._worker)
        )


async def _insert_claim_events(conn: Connection, campaign: str, claimed: list[Job], now: float) -> None:
    """A ``claim`` event for each claimed job, in the claim's transaction."""
    n = len(claimed)
    await conn.execute(
        INSERT_EVENTS,
        (
            campaign,
            [j.id for j in claimed],
            [now] * n,
            [str(Event.CLAIM)] * n,
            [str(JobState.PENDING)] * n,
            [str(JobState.SUBMITTING)] * n,
            [j.attempt for j in claimed],
            [j.arn for j in claimed],
            [None] * n,
        ),
    )
