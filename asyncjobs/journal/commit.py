"""Group commit: concurrent changes to a journal share one transaction.

Each caller queues its changes and waits for them. The first caller to find no flush under way
becomes the leader: it commits everything queued, batch after batch, until the queue is empty,
shielded from cancellation, so a change once queued is committed even if its caller is cancelled
(the caller loses only the result). A failed commit fails every change of its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import anyio

from ..model import Job
from .base import Change

#: Commits a batch of changes in one transaction: the jobs they leave, one per change.
Commit = Callable[[list[Change]], Awaitable[list[Job]]]


class GroupCommit:
    """The queue of one journal's changes, and its leader's flushes."""

    def __init__(self, commit: Commit) -> None:
        self._commit = commit
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
        try:
            jobs = await self._commit([change for change, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), job in zip(batch, jobs, strict=True):
            if not fut.done():
                fut.set_result(job)
