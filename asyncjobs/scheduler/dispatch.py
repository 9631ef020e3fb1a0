"""Claims and creates: pending jobs are claimed while their quota key has a free slot, and a
pool of submit workers sends each claimed job's create at the pace the service accepts.

Exactly-once rests here on one rule: the claim (state ``submitting``, with the attempt's
deterministic token and name) is committed before the create call. What a failed create
leads to is :func:`~asyncjobs.scheduler.decisions.decide`'s; this module carries it out.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import anyio
from anyio.abc import TaskGroup

from ..errors import Fatal, JournalConflict, LimitExceeded, ServiceError
from ..inquiry import Inquiry, Verdict
from ..lifecycle import Event
from ..limits import AdaptiveRate
from ..model import Job, JobState, Service
from ..services.base import ServiceAdapter
from .control import Control
from .decisions import DECIDED_ERRORS, Action, Attempts, Decision, decide
from .outcomes import Outcomes
from .parts import RunPart
from .reporting import Reporter
from .state import RunState


class Dispatcher(RunPart):
    """The claim loop and the submit workers of one run (its :meth:`run` starts them all).

    ``look`` polls some tracked jobs now and records what it saw (:meth:`Tracker.look`)."""

    def __init__(
        self,
        state: RunState,
        control: Control,
        outcomes: Outcomes,
        reporter: Reporter,
        adapters: Mapping[Service, ServiceAdapter],
        *,
        look: Callable[[list[Job]], Awaitable[None]],
    ) -> None:
        super().__init__(state, control, outcomes, reporter, adapters)
        self._look = look

    #: Create calls in flight at once.
    _inflight: anyio.Semaphore
    #: Claimed jobs waiting for a worker, each with whether an earlier create may have landed.
    _ready: deque[tuple[Job, bool]]
    #: Idle workers, each waiting for its event to be set.
    _idle: deque[anyio.Event]

    # ------------------------------------------------------------- claims
    async def run(self, tg: TaskGroup) -> None:
        """Claim pending jobs while their quota key has a free slot.

        At most ``8 * max_inflight_creates`` claimed jobs wait for their create call's
        response at once (memory and journal reads stay bounded whatever the caps); the
        pipeline is refilled once a quarter of that is free, so that a claim (a journal read
        and a commit, each a hop to the journal's thread) lands before the jobs already
        claimed are all sent.
        """
        state = self._state
        self._inflight = anyio.Semaphore(state.settings.max_inflight_creates, fast_acquire=True)
        self._ready, self._idle = deque(), deque()
        self._control.on_stop(self._end_idle_workers)
        reported: frozenset[str] = frozenset()
        while not self._control.stopping:
            now = state.clock()
            again, wake_at = state.due(now)
            for job in again:
                self._start_submit(tg, job, maybe_created=True)
            batches, full, wake_at = await self._take_slots(now, wake_at)
            if batches:
                await self._claim(tg, batches)
            if full != reported:  # slot demand changed: the tracker may want to sweep sooner
                reported = full
                state.wake_track.set()
            await state.wake_dispatch.wait(wake_at - state.clock())

    async def _take_slots(self, now: float, wake_at: float) -> tuple[list[list[Job]], frozenset[str], float]:
        """Jobs claimed for each key with free slots (the intent to create, committed before any
        create call), the slots taken; the keys that are full; and when a held-back key may
        claim again."""
        state, settings = self._state, self._state.settings
        room = 8 * settings.max_inflight_creates
        full: set[str] = set()
        batches: list[list[Job]] = []
        planned = state.unsent()
        by_key = state.journal.counts_by_key()
        # the most work per slot first: its key is the likeliest to bound the campaign
        for key in sorted(by_key, key=lambda k: (-by_key[k][JobState.PENDING] / max(1, state.cap(k).cap), k)):
            if by_key[key][JobState.PENDING] <= 0 or state.inquiries.is_open(key):
                continue
            cap = state.cap(key)
            if cap.probe(now, settings.capacity_probe_after):
                self._reporter.emit("capacity.probe", key=key, cap=cap.cap)
            free = cap.free(state.in_use(key), now)
            if cap.hold_until > now:
                wake_at = min(wake_at, cap.hold_until)
            if free <= 0:
                full.add(key)
                continue
            # refill the pipeline in chunks, not one journal read per finished create
            take = min(free, room - planned)
            if take <= 0 or (take < free and take < room // 4):
                continue
            # counted and claimed in one commit, under the key's cap across every worker
            batch = await state.journal.claim(key, cap.cap, take, lease_seconds=settings.lease_seconds)
            if batch:
                state.take_slots(key, batch)
                batches.append(batch)
                planned += len(batch)
        return batches, frozenset(full), wake_at

    async def _claim(self, tg: TaskGroup, batches: list[list[Job]]) -> None:
        # keys take turns, so one key's batch does not queue for every create token first
        for turn in itertools.zip_longest(*batches):
            for job in turn:
                if job is not None:
                    self._start_submit(tg, job, maybe_created=False)

    # ---------------------------------------------------------- the workers
    def _start_submit(self, tg: TaskGroup, job: Job, *, maybe_created: bool) -> None:
        """Hand ``job`` to an idle submit worker, or start one: a pool that grows to the number
        of jobs between claim and create, instead of a task per job."""
        self._state.handed_over(job)
        self._ready.append((job, maybe_created))
        if self._idle:
            self._idle.popleft().set()
        else:
            tg.start_soon(self._worker)

    def _end_idle_workers(self) -> None:
        """Idle submit workers end at a stop; busy ones finish their queue first."""
        while self._idle:
            self._idle.popleft().set()

    async def _worker(self) -> None:
        state = self._state
        while True:
            if self._ready:
                job, maybe_created = self._ready.popleft()
                try:
                    await self._submit(job, maybe_created)
                except JournalConflict:  # a shared journal: another worker took the job over
                    self._reporter.emit("job.taken_by_another", job, detail="another worker holds it")
                    state.forget(job)
                except Fatal as exc:  # a reconciliation's look-up could not be made
                    self._control.halt(exc)
                    state.notify()
                finally:
                    state.sent(job)
                    if (left := state.inquiries.abandoned(job.id)) is not None:
                        self._inquiry_closed(job, left)
                continue
            if self._control.stopping:
                return
            wake = anyio.Event()
            self._idle.append(wake)
            await wake.wait()

    # ------------------------------------------------------------ one create
    async def _submit(self, job: Job, maybe_created: bool) -> None:
        """Create one claimed job. ``maybe_created``: an earlier create (before a crash, or one
        that failed ambiguously) may have landed, so the job must not be released unseen."""
        state, control = self._state, self._control
        adapter = self._adapters[job.service]
        rate = state.rate(job.service)
        attempts = Attempts(maybe_created=maybe_created)
        probe = False  # this job's next create decides an inquiry: the only one sent meanwhile
        if state.records is not None and not await self._staged(job):
            return
        while True:
            if control.stop_asked():
                if not attempts.maybe_created:
                    await self._outcomes.release(job, Event.DEFER, "stopped before the create was sent")
                return  # else it stays submitting; reconciled on resume
            if not await control.interruptible(functools.partial(self._turn, job, rate, probe)):
                continue
            probe = False
            inquiry = state.inquiries.get(job.quota_key)
            if inquiry is not None and inquiry.probe != job.id:
                # another job of this key is finding out whether the quota is full: follow its verdict
                await control.interruptible(inquiry.decided.wait)
                continue
            if not attempts.maybe_created and state.created_in(job.quota_key) >= state.cap(job.quota_key).cap:
                # created jobs fill the key's cap (lowered since this job was claimed: by this
                # worker, or by another that shared what it found while this probe waited)
                if (answered := state.inquiries.answered_by_cap(job.id)) is not None:
                    self._inquiry_closed(job, answered)
                await self._outcomes.release(job, Event.DEFER, "waiting for a slot", slot_freed=False)
                return
            if control.stop_asked():
                continue  # asked to stop while this job waited for its turn
            try:
                async with self._inflight:
                    sent = state.inquiries.sending()
                    with self._reporter.metrics.create_timer(str(job.service)):
                        arn = await adapter.create(job)
            except DECIDED_ERRORS as exc:
                step = await self._after_failure(job, adapter, rate, exc, attempts)
                if step is None:
                    return
                job, attempts, probe = step
                continue
            await self._accepted(job, arn, rate, sent)
            return

    async def _staged(self, job: Job) -> bool:
        """A records shard job's input is in S3 (uploaded now if need be); False: the job was
        given back (rejected, or deferred by a stop) and no create is sent."""
        state = self._state
        assert state.records is not None
        refused = await state.records.before_create(
            job, self._control.pause, state.backoff, state.settings.transient_retries
        )
        if refused is None:
            return True
        event = Event.REJECT if refused.rejected else Event.DEFER
        await self._outcomes.release(job, event, refused.reason, slot_freed=refused.fatal is None)
        if refused.rejected:
            self._reporter.emit("job.rejected", job, level="warning", detail=refused.reason)
        if refused.fatal is not None:
            self._control.halt(refused.fatal)
        return False

    async def _turn(self, job: Job, rate: AdaptiveRate, probe: bool) -> None:
        """Wait for this create's turn: at this worker's pace and, when workers share the
        journal, at the campaign's (one bucket in the journal for every worker, at the pace
        learned from throttles)."""
        await rate.acquire(through_hold=probe)
        state = self._state
        if state.shared:
            async with state.bucket_turn(job.service):  # one reservation of this worker at a time
                wait = await state.journal.take(state.bucket_key(job.service), rate.rate)
                if wait > 0:
                    rate.held_back()
                    await anyio.sleep(wait)

    async def _accepted(self, job: Job, arn: str, rate: AdaptiveRate, sent: int) -> None:
        state, key = self._state, job.quota_key
        rate.on_success()
        state.stats.creates += 1
        if state.inquiries.would_acquit_the_quota(key, state.created_in(key), sent=sent):
            # before the quota is found not at fault: one of ours may have ended since the last
            # sweep, and the room this create found be that job's (one List, only after a refusal)
            await self._look(list(state.tracked.by_key.get(key, {}).values()))
        settled = state.inquiries.accepted(key, state.created_in(key), sent=sent)
        if settled is not None:
            self._inquiry_closed(job, settled)
            if settled.verdict is Verdict.THROTTLED:
                self._limit_was_pace(settled, job.service)
        state.sent(job)  # the pipeline refills while the ARN is being journaled
        await self._outcomes.created(job, arn)

    async def _after_failure(
        self, job: Job, adapter: ServiceAdapter, rate: AdaptiveRate, error: ServiceError, attempts: Attempts
    ) -> tuple[Job, Attempts, bool] | None:
        """Carry out what :func:`decide` says of ``error``: the job, its counters and whether it
        is a probe, to send it again; None when the job is done with for now."""
        role, inquiry = None, None
        if isinstance(error, LimitExceeded):
            role, inquiry = self._state.inquiries.refused(
                job.quota_key, job.id, self._state.created_in(job.quota_key)
            )
        decision = decide(
            error, attempts, transient_retries=self._state.settings.transient_retries, role=role
        )
        action, attempts = decision.action, decision.attempts
        self._reporter.metrics.create_refused(str(job.service), decision.outcome)
        if action in (Action.THROTTLED, Action.RETRY, Action.PARK, Action.PROBE, Action.FOLLOW):
            job = await self._retrying(job, rate, error, decision)
            if action is Action.PARK:
                return None
            if action is Action.PROBE and inquiry is not None:
                await self._probe(job, rate, inquiry)
            return job, attempts, action is Action.PROBE
        if decision.closes_inquiry and inquiry is not None:
            self._inquiry_closed(job, inquiry)  # the probe held the service's creates
        if decision.quota_full:
            await self._quota_full(job, adapter, error, maybe_created=action is Action.RECONCILE)
        elif action is Action.ADOPT:
            self._outcomes.submitted(await self._outcomes.reconcile(job, adapter, if_missing=None))
        elif action is Action.HALT and isinstance(error, Fatal):
            if not attempts.maybe_created:
                await self._outcomes.release(job, Event.DEFER, error.describe(), slot_freed=False)
            self._control.halt(error)
        else:
            await self._outcomes.release(job, Event.REJECT, error.describe())
            self._reporter.emit("job.rejected", job, level="warning", detail=error.describe())
        return None

    async def _retrying(self, job: Job, rate: AdaptiveRate, error: ServiceError, decision: Decision) -> Job:
        """Journal that ``job`` will be sent again, and wait for it as the decision says."""
        state, attempts = self._state, decision.attempts
        if decision.action is Action.THROTTLED:
            rate.on_throttle()
            state.stats.throttled += 1
            self._reporter.emit("create.throttled", job, detail=error.describe(), rate=rate.rate)
            job = await state.journal.transition(job, Event.RETRY, detail=error.describe())
            await self._control.pause(state.backoff(attempts.throttles))
            return job
        if decision.action in (Action.PROBE, Action.FOLLOW):
            return await state.journal.transition(job, Event.RETRY, detail=error.describe())
        job = await state.journal.transition(
            job, Event.RETRY, detail=error.describe(), last_error=error.describe()
        )
        self._reporter.emit(
            "create.retry",
            job,
            level="warning" if attempts.transient >= 3 else "info",
            detail=error.describe(),
            retry=attempts.transient,
        )
        if decision.action is Action.PARK:
            state.later(job, state.clock() + state.settings.backoff_cap)
            state.notify()
        else:
            await self._control.pause(state.backoff(attempts.transient))
        return job

    async def _probe(self, job: Job, rate: AdaptiveRate, inquiry: Inquiry) -> None:
        """``job`` opened an inquiry: hold the service's creates, and wait before sending it again.

        While the pace is learned, or is what holds creates back, a throttle is the likelier
        cause: slow down. Either way, send this job again after a silence that refills any token
        bucket of 1/s or more; if even that create is refused, the quota is full.
        """
        inquiry.pace_suspected = rate.slow_start or rate.binding(self._state.clock())
        if inquiry.pace_suspected:
            inquiry.pace_mark = rate.on_throttle()
        rate.hold()
        self._reporter.emit("create.limited", job, key=job.quota_key, rate=rate.rate)
        await self._control.pause(max(1.0, 2.0 / rate.rate))

    async def _quota_full(
        self, job: Job, adapter: ServiceAdapter, error: ServiceError, *, maybe_created: bool
    ) -> None:
        """The service said the running-jobs quota of ``job``'s key is full: lower the believed
        cap to what runs, and give the job back to wait for a slot."""
        state = self._state
        cap = state.cap(job.quota_key)
        cap.exceeded(state.created_in(job.quota_key), state.clock(), state.rng)
        self._reporter.emit("capacity.exceeded", job, detail=error.describe(), key=job.quota_key, cap=cap.cap)
        if maybe_created:  # an earlier attempt may have created it: look before letting go
            found = await self._outcomes.reconcile(job, adapter, if_missing=error.describe())
            self._outcomes.submitted(found)
        else:
            await self._outcomes.release(job, Event.DEFER, error.describe(), slot_freed=False)

    def _inquiry_closed(self, probe: Job, inquiry: Inquiry) -> None:
        """The service's creates, held while ``probe`` found out, go on; the key may claim again.
        A full quota undoes the pace's provisional cut; an unclear verdict softens it to a
        settling just below the pace that drew the refusal (see ``AdaptiveRate.soften_throttle``)."""
        rate = self._state.rate(probe.service)
        rate.release()
        if inquiry.pace_mark is not None:
            if inquiry.verdict is Verdict.QUOTA_FULL:
                rate.undo_throttle(inquiry.pace_mark)
            elif inquiry.verdict is Verdict.UNCLEAR:
                rate.soften_throttle(inquiry.pace_mark)
        self._state.notify()

    def _limit_was_pace(self, inquiry: Inquiry, service: Service) -> None:
        """An inquiry's refusals turned out to be throttles: count them as such."""
        self._state.stats.throttled += inquiry.refusals
        self._reporter.emit(
            "create.throttled",
            job_id=inquiry.probe,
            service=str(service),
            detail=f"{inquiry.refusals} refused by the pace",
            key=inquiry.key,
            refusals=inquiry.refusals,
            rate=self._state.rate(service).rate,
        )
        self._state.notify()
