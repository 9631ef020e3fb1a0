"""Group commit: concurrent changes to a journal share one transaction.

Each caller queues its changes and waits for them. The first caller to find no flush under way
becomes the leader: it commits everything queued, batch after batch, until the queue is empty,
shielded from cancellation, so a change once queued is committed even if its caller is cancelled
(the caller loses only the result). A failed commit fails every change of its batch; a commit
may also fail single changes (PostgreSQL: a job another worker changed) and record the rest.

Both journals share what a batch means before it is written: every change checked before any
is queued (:func:`check_changes`), the job each change leaves (:func:`apply_changes`) and the
counts it moves (:func:`count_changes`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence

import anyio

from .. import lifecycle
from ..model import Job, JobState, evolve
from .base import Change

#: The fields a change may set. ``token`` may be set on the caller's Job, but it is derived on
#: read, never stored.
FIELDS = frozenset({"arn", "remote_status", "last_error", "submitted_at", "job_name", "token", "attempt"})

#: Commits a batch of changes in one transaction: per change, the job it leaves, or the error
#: that kept that change (alone) from being recorded.
Commit = Callable[[list[Change]], Awaitable[Sequence[Job | Exception]]]


def check_changes(changes: Sequence[Change]) -> None:
    """Raise now, before anything is queued, on an illegal transition or an unknown field."""
    state_of: dict[int, JobState] = {}  # a job changed twice in this call: its state in between
    for change in changes:
        seq = change.job.seq
        state_of[seq] = lifecycle.apply(state_of.get(seq, change.job.state), change.event)
        unknown = set(change.fields) - FIELDS
        if unknown:
            raise TypeError(f"unknown job fields {sorted(unknown)}")


def apply_changes(changes: Sequence[Change], now: float) -> tuple[list[Job], list[Job]]:
    """Each change's job before and after it. Changes to one job apply in order, each to what
    the one before left."""
    latest: dict[int, Job] = {}
    before: list[Job] = []
    after: list[Job] = []
    for change in changes:
        old = latest.get(change.job.seq, change.job)
        new = evolve(old, lifecycle.apply(old.state, change.event), now, change.fields)
        latest[new.seq] = new
        before.append(old)
        after.append(new)
    return before, after


def count_changes(
    counts: MutableMapping[str, Counter[JobState]], before: Sequence[Job], after: Sequence[Job]
) -> None:
    """Move the per-key counts of a journal as a committed batch moved its jobs."""
    for old, new in zip(before, after, strict=True):
        per_key = counts[new.quota_key]
        per_key[old.state] -= 1
        per_key[new.state] += 1


class GroupCommit:
    """The queue of one journal's changes, and its leader's flushes.

    ``settle``, if given, runs after the leader has emptied the queue, still as the leader (the
    PostgreSQL journal recounts there); changes queued meanwhile are flushed after it.
    """

    def __init__(self, commit: Commit, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self._commit = commit
        self._settle = settle
        self._queue: list[tuple[Change, asyncio.Future[Job]]] = []
        self._flushing = False

    async def submit(self, changes: Sequence[Change]) -> list[Job]:
        """Commit ``changes`` (together with any queued meanwhile); the job each one leaves."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Job]] = []
        for change in changes:
            fut: asyncio.Future[Job] = loop.create_future()
            self._queue.append((change, fut))
            futures.append(fut)
        if not self._flushing:
            self._flushing = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        while self._queue:
                            batch, self._queue = self._queue, []
                            await self._flush(batch)
                        if self._settle is not None:
                            await self._settle()
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
        try:
            outcomes = await self._commit([change for change, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if fut.done():
                continue
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
