"""The several-worker primitives of the :class:`~.base.Journal` protocol, for a journal that one
process holds (SQLite: its ``flock`` makes that process the only worker).

With one worker nothing is shared: a claim counts the in-memory counts, every lease is this
worker's and never expires under it (a crashed process's ``submitting`` jobs are reconciled by
the resume, not taken over), every sweep lease is granted, and the create-rate bucket, the
caps and the slow starts' paces (shared with no one) live in memory. Built only on the
protocol's other methods, so any single-process journal can mix it in.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, TypeVar, cast

from ..lifecycle import Event
from ..model import Job, JobState, StateCounts
from .base import Change

T = TypeVar("T", int, float)

#: The states that hold one of a quota key's running-job slots.
ACTIVE_STATES = (JobState.SUBMITTING, JobState.SUBMITTED, JobState.RUNNING)


def new_worker_id() -> str:
    """``host:pid:random``: unique across hosts, restarts and journals opened in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def reserve(tokens: float, at: float, now: float, rate: float, burst: float) -> tuple[float, float]:
    """One reservation from a token bucket holding ``tokens`` at time ``at``: the tokens left
    (negative while reservations wait) and the seconds the caller waits. No I/O."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    left = min(burst, tokens + max(0.0, now - at) * rate) - 1.0
    return left, max(0.0, -left / rate)


def _keep(saved: dict[str, tuple[T, float]] | None, values: Mapping[str, T]) -> dict[str, tuple[T, float]]:
    """``saved`` (None: nothing yet) with ``values``, each stamped with the time it was saved
    (for :func:`_recent`)."""
    now = time.monotonic()
    return {**(saved or {}), **{key: (value, now) for key, value in values.items()}}


def _recent(saved: Mapping[str, tuple[T, float]] | None, within: float | None) -> dict[str, T]:
    """The values :func:`_keep` kept, only those saved ``within`` seconds ago or less if given."""
    now = time.monotonic()
    return {
        key: value
        for key, (value, saved_at) in (saved or {}).items()
        if within is None or now - saved_at <= within
    }


class _Base(Protocol):
    def counts_by_key(self) -> Mapping[str, StateCounts]: ...

    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]: ...

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]: ...


class SingleProcessWorker:
    """The one worker of a journal that one process holds."""

    _single_worker: str | None = None
    _claiming: asyncio.Lock | None = None
    _buckets: dict[str, tuple[float, float]] | None = None
    _caps: dict[str, tuple[int, float]] | None = None  # key -> (cap, monotonic time saved)
    _slow_starts: dict[str, tuple[float, float]] | None = None  # key -> (pace, monotonic time saved)

    @property
    def worker(self) -> str:
        if self._single_worker is None:
            self._single_worker = new_worker_id()
        return self._single_worker

    async def claim(self, quota_key: str, cap: int, limit: int, *, lease_seconds: float = 60.0) -> list[Job]:
        journal = cast(_Base, self)  # mixed into a Journal
        if self._claiming is None:
            self._claiming = asyncio.Lock()
        async with self._claiming:  # count, read and claim with no other claim in between
            counts = journal.counts_by_key().get(quota_key, StateCounts({}))
            room = min(limit, cap - sum(counts[s] for s in ACTIVE_STATES))
            if room <= 0:
                return []
            batch = await journal.pending(quota_key, room)
            return await journal.transition_many([Change(job, Event.CLAIM, {}) for job in batch])

    async def heartbeat(self, *, lease_seconds: float = 60.0) -> int:
        journal = cast(_Base, self)  # every submitting job is this worker's
        return sum(c[JobState.SUBMITTING] for c in journal.counts_by_key().values())

    async def take_over_expired(self, limit: int = 1000, *, lease_seconds: float = 60.0) -> list[Job]:
        return []

    async def take(self, key: str, rate: float, burst: float = 1.0) -> float:
        if self._buckets is None:
            self._buckets = {}
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (burst, now))
        left, wait = reserve(tokens, at, now, rate, burst)
        self._buckets[key] = (left, now)
        return wait

    async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
        return True

    async def caps(self, *, within: float | None = None) -> Mapping[str, int]:
        return _recent(self._caps, within)

    async def save_caps(self, caps: Mapping[str, int]) -> None:
        self._caps = _keep(self._caps, caps)

    async def slow_starts(self, *, within: float | None = None) -> Mapping[str, float]:
        return _recent(self._slow_starts, within)

    async def save_slow_starts(self, paces: Mapping[str, float]) -> None:
        self._slow_starts = _keep(self._slow_starts, paces)

    async def refresh(self) -> None:
        return None

    async def changes(self) -> AsyncIterator[str]:
        return  # no other worker: nothing to hear of
        yield
