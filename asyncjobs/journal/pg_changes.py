"""Recording state changes in the PostgreSQL journal: one group commit's batch, one transaction.

A batch is written with one ``UPDATE ... FROM unnest(...)`` (a row per job: its state after all
of the batch's changes to it) and one ``INSERT ... SELECT unnest(...)`` of its events. A job's
row is updated only if the job is still in the state the batch's first change to it was decided
from, and, while it is ``submitting``, still leased to this worker. A job another worker changed
fails only its own changes, with :class:`~asyncjobs.errors.JournalConflict`: the batch rolls
back and the rest of it is written again without them. The queue and its leader are the SQLite
journal's (:class:`~.commit.GroupCommit`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import anyio

from ..errors import JournalConflict
from ..model import Job, JobState, evolve
from . import pg_wake
from .base import Change
from .commit import apply_changes
from .pg_schema import NOW
from .pg_session import Connection, Session

UPDATE_JOBS = f"""
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

#: Event rows: the campaign, then one array per column (job_id, ts, event, from_state, to_state,
#: attempt, arn, detail).
INSERT_EVENTS = """
INSERT INTO asyncjobs_events (campaign, job_id, ts, event, from_state, to_state, attempt, arn, detail)
SELECT %s::text, * FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::text[], %s::int[],
                               %s::text[], %s::text[])
"""

#: Told each committed batch's jobs before and after it (under the session's lock).
OnCommit = Callable[[list[Job], list[Job]], None]


class _Conflict(Exception):
    """Some changes of a batch found their job changed by another worker (the batch rolls back)."""

    def __init__(self, seqs: set[int]) -> None:
        self.seqs = seqs


class ChangeWriter:
    """Writes one worker's batches of changes to its campaign (the ``commit`` of its group commit)."""

    def __init__(
        self, session: Session, campaign: str, worker: str, lease_seconds: float, on_commit: OnCommit
    ) -> None:
        self._session = session
        self._campaign = campaign
        self._worker = worker
        self._lease_seconds = lease_seconds
        self._on_commit = on_commit

    async def commit(self, changes: list[Change]) -> list[Job | Exception]:
        """Write ``changes``; per change, the job it leaves or the error that kept it out."""
        outcomes: dict[int, Job | Exception] = {}
        todo = list(range(len(changes)))
        while todo:
            batch = [changes[i] for i in todo]
            now = time.time()
            before, after = apply_changes(batch, now)

            def count(_: None, before: list[Job] = before, after: list[Job] = after) -> None:
                self._on_commit(before, after)

            try:
                await self._session.write(
                    functools.partial(self._write, changes=batch, before=before, after=after, now=now), count
                )
            except _Conflict as conflict:
                for i in todo:
                    if changes[i].job.seq in conflict.seqs:
                        outcomes[i] = JournalConflict(changes[i].job.id)
                todo = [i for i in todo if i not in outcomes]
                continue
            except Exception as exc:  # the rest of the batch fails with it
                outcomes.update(dict.fromkeys(todo, exc))
                break
            outcomes.update(zip(todo, after, strict=True))
            break
        return [outcomes[i] for i in range(len(changes))]

    async def _write(
        self, conn: Connection, *, changes: list[Change], before: list[Job], after: list[Job], now: float
    ) -> None:
        # one row per job: its state after every change of the batch, checked against its state before
        latest = {j.seq: j for j in after}
        first_state: dict[int, JobState] = {}
        for old in before:
            first_state.setdefault(old.seq, old.state)
        final = list(latest.values())
        cur = await conn.execute(
            UPDATE_JOBS,
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
        await conn.execute(  # sent at once (pipelined); rolled back with the batch on a conflict
            INSERT_EVENTS,
            (
                self._campaign,
                [j.id for j in after],
                [now] * len(after),
                [str(c.event) for c in changes],
                [str(o.state) for o in before],
                [str(j.state) for j in after],
                [j.attempt for j in after],
                [j.arn for j in after],
                [c.detail for c in changes],
            ),
        )
        if any(j.state.is_final or j.state is JobState.PENDING for j in final):
            # a slot is free: the other workers hear of it at the COMMIT (dropped on a rollback)
            await conn.execute(pg_wake.NOTIFY, (pg_wake.announcement(self._worker, self._campaign),))
        done = {r[0] for r in await cur.fetchall()}
        if len(done) < len(final):
            raise _Conflict({j.seq for j in final} - done)

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        """New remote statuses within the same state: one commit, no event rows."""
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
