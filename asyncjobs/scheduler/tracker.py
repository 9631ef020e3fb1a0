"""Status sweeps: one List-based poll per job kind, when the poll policy says it would pay off."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
from aiolimiter import AsyncLimiter

from ..errors import Fatal, JournalConflict, ServiceError
from ..model import Job, JobState, Service
from ..polling import Active, KeyLoad, PollPolicy, bearing, next_sweep, urgent_keys
from .parts import RunPart
from .sweeps import LEASE_SECONDS, SweepLeases


class Tracker(RunPart):
    """Sweeps the tracked jobs of each kind and hands what it saw to :class:`Outcomes`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: One status-read limiter per AWS service, for sweeps and looks alike (made in the
        #: run's event loop: aiolimiter binds to it).
        self._limiters: dict[str, AsyncLimiter] = {}

    async def look(self, jobs: list[Job]) -> None:
        """Poll ``jobs`` (all of one kind) now, outside the sweep schedule, and record what
        changed: a job found ended is untracked and frees its slot, as after a sweep."""
        if jobs:
            await self._sweep(jobs)

    async def run(self, wait: bool) -> None:
        """Sweep each job kind when the poll policy says a sweep would pay off; with a shared
        journal, only the kinds whose sweep lease this worker holds (:mod:`.sweeps`).

        Without ``wait`` the run ends once everything is submitted, so there is no
        final sweep to schedule: only full keys are swept, to free their slots.
        """
        state = self._state
        if not state.shared:
            await self._track(wait, None)
            return
        # a holder that has had nothing due for three poll intervals lets the kind go
        leases = SweepLeases(
            state.journal, state.clock, let_go_after=max(LEASE_SECONDS, 3 * state.settings.poll_interval)
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(leases.keep)
            await self._track(wait, leases)
            tg.cancel_scope.cancel()

    async def _track(self, wait: bool, leases: SweepLeases | None) -> None:
        state, settings = self._state, self._state.settings
        policy = PollPolicy(settings.min_poll_interval, settings.poll_interval)
        start = state.clock()
        last: dict[Service, float] = defaultdict(lambda: start)
        idle: dict[Service, int] = defaultdict(int)
        while not self._control.stopping:
            now = state.clock()
            waiting = self._waiting_keys(now)
            urgent = urgent_keys(self._loads(waiting), state.durations, state.create_rates())
            finishing = wait and self._finishing()
            due: list[Service] = []
            soonest = now + 1.0
            for service, jobs in state.tracked.by_service.items():
                if not jobs:
                    continue
                at = next_sweep(
                    now,
                    last[service],
                    self._bearing(service, jobs, waiting, finishing, now),
                    waiting_keys=waiting,
                    urgent=urgent,
                    finishing=finishing,
                    durations=state.durations,
                    idle=idle[service],
                    policy=policy,
                )
                if at <= now and leases is not None and not leases.holds(str(service)):
                    # another worker sweeps this kind for every worker, while it lives; the kind's
                    # last sweep stays where it was, so this worker sweeps at once if it takes over
                    continue
                if at <= now:
                    due.append(service)
                soonest = min(soonest, at)
            if not due:
                await state.wake_track.wait(min(soonest - now, 0.5))
                continue
            for service in due:
                if self._control.stopping:
                    break
                last[service] = state.clock()
                changed = await self._sweep(list(state.tracked.by_service[service].values()))
                idle[service] = 0 if changed else idle[service] + 1

    def _bearing(
        self, service: Service, jobs: Mapping[str, Job], waiting: frozenset[str], finishing: bool, now: float
    ) -> list[Active]:
        """The tracked jobs of ``service`` that bear on when to sweep it (see :func:`bearing`)."""

        def active(job: Job) -> Active:
            return Active(job.quota_key, str(job.service), job.submitted_at or now)

        tracked = self._state.tracked
        return bearing(
            jobs,
            tracked.by_key,
            [key for key in waiting if tracked.kind.get(key) is service],
            finishing=finishing,
            active=active,
        )

    def _waiting_keys(self, now: float) -> frozenset[str]:
        """Keys whose work waits for a slot: full, with pending jobs, and every slot held by a
        created job. While a claimed job still waits for its create (the create rate is what
        holds it up), a finished job would not start anything sooner: no sweep for that. On a
        shared journal that holds for every worker's claimed jobs: the rate is the campaign's."""
        state = self._state
        return frozenset(
            key
            for key, counts in state.journal.counts_by_key().items()
            if counts[JobState.PENDING]
            and not state.unsent_in(key)
            and state.cap(key).free(state.in_use(key), now) == 0
        )

    def _loads(self, keys: Iterable[str]) -> list[KeyLoad]:
        state = self._state
        counts = state.journal.counts_by_key()
        loads = []
        for key in keys:
            kind = state.tracked.kind.get(key)
            if kind is not None:
                pending = counts[key][JobState.PENDING]
                loads.append(KeyLoad(key, str(kind), kind.aws_service, pending, state.cap(key).cap))
        return loads

    def _finishing(self) -> bool:
        counts = self._state.journal.counts()
        return counts[JobState.PENDING] == 0 and counts[JobState.SUBMITTING] == 0

    async def _sweep(self, jobs: list[Job]) -> bool:
        """Poll ``jobs`` (all of one kind) and record what changed; True if any state changed."""
        state = self._state
        adapter = self._adapters[jobs[0].service]
        name = jobs[0].service.aws_service
        if name not in self._limiters:
            self._limiters[name] = AsyncLimiter(1, 1.0 / state.settings.read_rate)
        limiter = self._limiters[name]
        await limiter.acquire()
        try:
            # a read only: a stop need not wait for it (what it saw is committed shielded)
            with self._control.cut_short_by_stop() as reading:
                result = await adapter.poll(jobs)
            if reading.cancelled_caught:
                return False
        except ServiceError as exc:
            self._reporter.metrics.status_reads(str(jobs[0].service), exc.operation or "unknown")
            if isinstance(exc, Fatal):
                self._control.halt(exc)
                return False
            self._reporter.emit("poll.failed", level="warning", detail=exc.describe(), aws_service=name)
            return False
        finally:
            state.stats.reads += 1
        state.stats.reads += result.calls - 1
        self._reporter.metrics.polled(str(jobs[0].service), result.operations)
        seen = [
            (job, remote)
            for job in jobs
            if (remote := result.found.get(job.arn or "")) is not None and state.tracked.get(job.id) is job
        ]
        try:
            after = await self._outcomes.observe_many(seen)
        except JournalConflict:  # another worker recorded a change first: the next mirror shows it
            return True
        return any(new.state is not old.state for (old, _), new in zip(seen, after, strict=True))
