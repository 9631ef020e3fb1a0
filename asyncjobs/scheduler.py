"""The campaign scheduler: submit -> track -> finish, in one anyio task group.

:class:`Campaign` owns every task it starts. Its :meth:`Campaign.run` is one task
group holding a dispatcher (claims pending jobs while their quota key has a free
slot), one submit task per job being created, and a tracker (status sweeps).

Exactly-once rests on three rules:

1. The intent to create (state ``submitting``, with the attempt's deterministic
   token and name) is committed before the create call.
2. The ARN the service returns is committed before anything else happens to the
   job, shielded from cancellation.
3. A ``submitting`` job found at start-up is reconciled by repeating the *same*
   create: Bedrock answers a known ``clientRequestToken`` with the original ARN;
   Personalize answers a known name with ``ResourceAlreadyExistsException``, and the
   job is adopted if it is the one the spec asks for.

A graceful stop (the ``stop`` event) ends claiming and retry loops; creates already
sent finish and are journaled. Cancellation of the caller's scope is a hard stop
that still never loses a journaled ARN.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import structlog
from aiolimiter import AsyncLimiter
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from .errors import (
    AlreadyExists,
    CapacityExceeded,
    Fatal,
    LimitExceeded,
    NotFound,
    Rejected,
    ServiceError,
    Throttled,
    Transient,
)
from .inquiry import Inquiries, Inquiry, Role, Verdict
from .journal.base import AddResult, Change, Journal
from .lifecycle import OBSERVE, Event
from .limits import AdaptiveRate, Capacity, backoff, default_limit
from .model import UNSUCCESSFUL_STATES, Job, JobSpec, JobState, Service, StateCounts
from .naming import idempotency_token, job_name
from .polling import Active, Durations, KeyLoad, PollPolicy, bearing, next_sweep, urgent_keys
from .services.base import Remote, ServiceAdapter

log = structlog.get_logger("asyncjobs")

Clock = Callable[[], float]
#: Seconds between journal writes of a changed create pace.
PACE_SAVE_INTERVAL = 2.0


@dataclass(frozen=True)
class Settings:
    """How a campaign paces itself. Every field has a safe default."""

    #: Ceiling on create calls per second, per service and region (None: discover it).
    create_rate: float | None = None
    #: Caps on submitted-plus-running jobs: by quota key (``bedrock:<modelId>``,
    #: ``personalize:<region>:batch-inference``), by model id, or by service name.
    max_running: Mapping[str, int] = field(default_factory=dict)
    #: Longest gap between status sweeps, seconds.
    poll_interval: float = 30.0
    #: Shortest gap between status sweeps of one job kind, seconds.
    min_poll_interval: float = 0.5
    #: Status reads per second, per service.
    read_rate: float = 5.0
    #: Extra attempts for a job that failed or expired (each with a new name and token).
    resubmit_failed: int = 0
    #: Create calls in flight at once.
    max_inflight_creates: int = 32
    #: Retries of a create after 5xx or a broken connection, before the job waits its turn again.
    transient_retries: int = 8
    #: Full-jitter backoff: base and cap, seconds.
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    #: Seconds a lowered running-jobs cap waits before it probes one slot higher.
    capacity_probe_after: float = 60.0


@dataclass(frozen=True, slots=True)
class CampaignEvent:
    """Something that happened, for embedders (:meth:`Campaign.subscribe` or ``on_event``)."""

    name: str  # e.g. "job.submitted", "job.final", "create.throttled"
    job_id: str | None = None
    state: JobState | None = None
    arn: str | None = None
    detail: str | None = None
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class KeyProgress:
    key: str
    running: int
    cap: int
    pending: int


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for progress displays."""

    counts: StateCounts
    keys: list[KeyProgress]
    #: The summed create-rate limit in force, None before any create.
    create_rate: float | None
    creates: int
    throttled: int
    reads: int
    elapsed: float
    eta: float | None
    #: The create-rate limit per service (``bedrock``, ``personalize``); None: unpaced.
    create_rates: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """How a run ended."""

    campaign: str
    journal: str
    counts: StateCounts
    interrupted: bool
    elapsed: float
    creates: int
    throttled: int
    reads: int
    unstoppable: int = 0

    @property
    def ok(self) -> bool:
        return all(self.counts[s] == 0 for s in UNSUCCESSFUL_STATES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "journal": self.journal,
            "total": self.counts.total,
            "counts": self.counts.as_dict(),
            "interrupted": self.interrupted,
            "elapsed_seconds": round(self.elapsed, 3),
            "api": {"creates": self.creates, "throttled": self.throttled, "reads": self.reads},
            "unstoppable": self.unstoppable,
        }


@dataclass
class _Stats:
    creates: int = 0
    throttled: int = 0
    reads: int = 0
    finals: deque[float] = field(default_factory=lambda: deque(maxlen=256))


class _Signal:
    """A wake-up call that is consumed by the waiter (no wake-up is lost between waits)."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with anyio.move_on_after(max(0.0, seconds)):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


class _Tracked:
    """Jobs with an ARN whose final state is not yet seen, indexed by job kind and quota key."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.by_service: dict[Service, dict[str, Job]] = defaultdict(dict)
        self.by_key: dict[str, dict[str, Job]] = defaultdict(dict)
        self.kind: dict[str, Service] = {}

    def put(self, job: Job) -> None:
        self.jobs[job.id] = job
        self.by_service[job.service][job.id] = job
        self.by_key[job.quota_key][job.id] = job
        self.kind[job.quota_key] = job.service

    def drop(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None:
            del self.by_service[job.service][job_id]
            del self.by_key[job.quota_key][job_id]

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def count(self, key: str) -> int:
        return len(self.by_key.get(key, ()))

    def clear(self) -> None:
        self.jobs.clear()
        self.by_service.clear()
        self.by_key.clear()


class Campaign:
    """A campaign of batch jobs, journaled in ``journal``, driven against AWS.

    ``session`` is an ``aioboto3.Session`` (one is created if omitted); ``adapters``
    replaces the AWS clients entirely (tests use it at the seam they own).
    """

    def __init__(
        self,
        journal: Journal,
        *,
        session: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        verify: bool | str | None = None,
        settings: Settings | None = None,
        adapters: Mapping[Service, ServiceAdapter] | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        on_event: Callable[[CampaignEvent], None] | None = None,
    ) -> None:
        self.journal = journal
        self.settings = settings or Settings()
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._verify = verify
        self._given_adapters = dict(adapters) if adapters else None
        self._clock = clock
        self._rng = rng or random.Random()
        self._hooks: list[Callable[[CampaignEvent], None]] = [on_event] if on_event else []
        self._streams: list[MemoryObjectSendStream[CampaignEvent]] = []
        self._stats = _Stats()
        self._started = clock()
        self._capacity: dict[str, Capacity] = {}
        self._slots: dict[str, set[str]] = defaultdict(set)
        self._tracked = _Tracked()
        self._later: dict[str, tuple[Job, float]] = {}
        self._durations: dict[str, Durations] = defaultdict(Durations)
        self._rates: dict[str, AdaptiveRate] = {}
        #: Create paces learned by this run or an earlier one, by ``<service>:<region>``.
        self._learned: dict[str, float] = {}
        self._pace_region = region or "default"
        self._adapters: dict[Service, ServiceAdapter] = {}
        self._wake_dispatch = _Signal()
        self._wake_track = _Signal()
        self._wake_watch = _Signal()
        self._watch_armed = False
        self._stop = anyio.Event()
        self._stopping = False
        self._fatal: Fatal | None = None
        self._waiting: set[anyio.CancelScope] = set()
        #: Jobs handed to the submit workers whose create call has not yet returned.
        self._unsent: dict[str, str] = {}  # job id -> quota key
        self._unsent_keys: Counter[str] = Counter()
        self._ready: deque[tuple[Job, bool]] = deque()
        self._idle: deque[anyio.Event] = deque()
        self._inquiries = Inquiries()
        self._caller_stop: anyio.Event | None = None

    # ------------------------------------------------------------ public API
    async def add(self, specs: Iterable[JobSpec]) -> AddResult:
        """Journal ``specs`` (all or nothing) before anything is sent."""
        return await self.journal.add_specs(specs)

    def subscribe(self, buffer: int = 1000) -> AsyncIterator[CampaignEvent]:
        """Events as an async iterator; it ends when the run ends. Slow readers lose events, not the run."""
        send, receive = anyio.create_memory_object_stream[CampaignEvent](buffer)
        self._streams.append(send)

        async def iterate() -> AsyncIterator[CampaignEvent]:
            async with receive:
                async for event in receive:
                    yield event

        return iterate()

    def progress(self) -> Progress:
        counts = self.journal.counts()
        keys = [
            KeyProgress(key, len(self._slots[key]), self._cap(key).cap, c[JobState.PENDING])
            for key, c in sorted(self.journal.counts_by_key().items())
        ]
        rates = [r.rate for r in self._rates.values()]
        elapsed = self._clock() - self._started
        return Progress(
            counts=counts,
            keys=keys,
            create_rate=sum(rates) if rates else None,
            creates=self._stats.creates,
            throttled=self._stats.throttled,
            reads=self._stats.reads,
            elapsed=elapsed,
            eta=self._eta(counts),
            create_rates=self._create_rates(),
        )

    async def run(self, *, wait: bool = True, stop: anyio.Event | None = None) -> Summary:
        """Submit every pending job and track them all to a final state.

        With ``wait=False``, return once every job has been submitted. When ``stop`` is
        set, stop submitting, let creates in flight finish, and return (resumable).
        """
        self._started = self._clock()
        self._stopping = False
        self._fatal = None
        self._ready.clear()
        self._idle.clear()
        self._unsent.clear()
        self._unsent_keys.clear()
        self._stop = anyio.Event()
        self._caller_stop = stop
        async with contextlib.AsyncExitStack() as stack:
            await self._open_adapters(stack)
            await self._restore()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._dispatch, tg)
                tg.start_soon(self._track, wait)
                tg.start_soon(self._keep_paces)
                tg.start_soon(self._watch, wait, stop, tg)
        for send in self._streams:
            send.close()
        self._streams.clear()
        if self._fatal is not None:
            raise self._fatal
        interrupted = bool(stop and stop.is_set()) and not self.journal.counts().done
        return self._summary(interrupted=interrupted)

    async def cancel(self) -> Summary:
        """Cancel the campaign: unsubmitted jobs become ``cancelled``; Bedrock jobs are stopped.

        Personalize jobs cannot be stopped; they keep running and are reported in
        ``Summary.unstoppable``.
        """
        unstoppable = 0
        async with contextlib.AsyncExitStack() as stack:
            await self._open_adapters(stack)
            for job in await self.journal.active():
                adapter = self._adapter(job.service)
                if job.state is JobState.SUBMITTING:
                    job = await self._reconcile(job, adapter, if_missing="not created")
                    if self._fatal is not None:
                        raise self._fatal
                    if job.state is JobState.SUBMITTING:  # could not look it up now
                        log.warning("asyncjobs.job.unsettled", job_id=job.id, hint="run cancel again")
                        continue
                    if job.state is JobState.PENDING:
                        continue
                if job.state.is_final:
                    continue
                if await adapter.stop(job):
                    log.info("asyncjobs.job.stop_requested", job_id=job.id, arn=job.arn)
                else:
                    unstoppable += 1
                    log.warning(
                        "asyncjobs.job.unstoppable", job_id=job.id, arn=job.arn, service=str(job.service)
                    )
            for key in list(self.journal.counts_by_key()):
                while batch := await self.journal.pending(key, 1000):
                    await self.journal.transition_many([Change(j, Event.CANCEL, {}) for j in batch])
        return self._summary(interrupted=False, unstoppable=unstoppable)

    # --------------------------------------------------------------- set-up
    async def _open_adapters(self, stack: contextlib.AsyncExitStack) -> None:
        if self._given_adapters is not None:
            for adapter in self._given_adapters.values():
                for service in adapter.services:
                    self._adapters[service] = adapter
            return
        from botocore.config import Config

        from .services.bedrock import BedrockAdapter
        from .services.personalize import PersonalizeAdapter

        if self._session is None:
            import aioboto3

            self._session = aioboto3.Session()
        region = self._region or self._session.region_name or "us-east-1"
        self._pace_region = region
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=self.settings.max_inflight_creates + 8,
            user_agent_extra="asyncjobs",
        )
        kwargs: dict[str, Any] = {"region_name": region, "config": config}
        if self._endpoint_url:
            kwargs["endpoint_url"] = self._endpoint_url
        if self._verify is not None:
            kwargs["verify"] = self._verify
        bedrock = await stack.enter_async_context(self._session.client("bedrock", **kwargs))
        personalize = await stack.enter_async_context(self._session.client("personalize", **kwargs))
        self._adapters[Service.BEDROCK] = BedrockAdapter(bedrock)
        pz = PersonalizeAdapter(personalize)
        self._adapters[Service.PERSONALIZE] = pz
        self._adapters[Service.PERSONALIZE_SEGMENT] = pz

    async def _restore(self) -> None:
        """Rebuild in-memory state from the journal (start-up and resume)."""
        self._slots.clear()
        self._tracked.clear()
        self._later.clear()
        self._learned.update(await self.journal.paces())
        now = self._clock()
        for job in await self.journal.active():
            self._slots[job.quota_key].add(job.id)
            if job.state is JobState.SUBMITTING:
                self._later[job.id] = (job, now)  # reconcile by repeating the same create
            else:
                self._tracked.put(job)
        if self.settings.resubmit_failed:
            # failed in a journal of an earlier version, or a rerun that allows more attempts
            again = [
                self._resubmission(job, job.state)
                async for job in self.journal.jobs([JobState.FAILED, JobState.EXPIRED])
                if self._earns_resubmission(job.state, job.attempt)
            ]
            for job in await self.journal.transition_many(again):
                self._resubmitted(job)

    def _adapter(self, service: Service) -> ServiceAdapter:
        return self._adapters[service]

    def _rate(self, service: Service) -> AdaptiveRate:
        name = service.aws_service
        if name not in self._rates:
            self._rates[name] = AdaptiveRate(
                self._clock,
                ceiling=self.settings.create_rate,
                initial=self._learned.get(self._pace_key(name)),
            )
        return self._rates[name]

    def _pace_key(self, aws_service: str) -> str:
        return f"{aws_service}:{self._pace_region}"

    async def _keep_paces(self) -> None:
        """Journal each learned create pace when it changes, so a resumed run starts from it."""
        while True:
            learned = {
                self._pace_key(name): pace
                for name, rate in self._rates.items()
                if (pace := rate.learned) is not None
            }
            changed = {key: pace for key, pace in learned.items() if self._learned.get(key) != pace}
            if changed:
                await self.journal.save_paces(changed)
                self._learned.update(changed)
            if self._stopping:
                return
            await self._pause(PACE_SAVE_INTERVAL)

    def _cap(self, key: str) -> Capacity:
        if key not in self._capacity:
            self._capacity[key] = Capacity(key, default_limit(key, dict(self.settings.max_running)))
        return self._capacity[key]

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self._rng, base=self.settings.backoff_base, cap=self.settings.backoff_cap)

    # ---------------------------------------------------------------- loops
    def _notify(self) -> None:
        self._wake_dispatch.set()
        if self._watch_armed:
            self._wake_watch.set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep, unless the run is stopping; True if the sleep was cut short by a stop."""
        with anyio.move_on_after(max(0.0, seconds)):
            await self._stop.wait()
        return self._stopping

    async def _watch(self, wait: bool, stop: anyio.Event | None, tg: TaskGroup) -> None:
        """End the run when everything is final (or submitted, without ``wait``), or on ``stop``.

        While work is still pending it looks every 0.2 s; once everything is claimed, on
        every change, so a run ends as soon as its last job allows.
        """
        if stop is not None:
            tg.start_soon(self._relay, stop)
        while not self._stopping:
            counts = self.journal.counts()
            if stop is not None and stop.is_set():
                log.info("asyncjobs.campaign.stopping", reason="stop requested")
                break
            if counts.done and not self._later:
                break
            if not wait and counts[JobState.PENDING] == 0 and counts[JobState.SUBMITTING] == 0:
                break
            self._watch_armed = counts[JobState.PENDING] == 0
            await self._wake_watch.wait(0.2)
        self._watch_armed = False
        self._begin_stop()

    async def _relay(self, stop: anyio.Event) -> None:
        """Wake the watcher as soon as the caller's ``stop`` is set (until the run ends)."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                if not self._stopping:
                    await stop.wait()
                    self._wake_watch.set()
            finally:
                self._waiting.discard(scope)

    def _begin_stop(self) -> None:
        """Stop claiming and retrying; creates already sent finish and are journaled."""
        self._stopping = True
        self._stop.set()
        for scope in list(self._waiting):
            scope.cancel()
        while self._idle:  # idle submit workers end; busy ones finish their queue first
            self._idle.popleft().set()
        self._notify()
        self._wake_track.set()

    def _halt(self, error: Fatal) -> None:
        """The service cannot be used as configured: stop gracefully, then raise ``error``."""
        if self._fatal is None:
            self._fatal = error
            log.error("asyncjobs.campaign.halted", error=error.describe())
        self._begin_stop()

    async def _dispatch(self, tg: TaskGroup) -> None:
        """Claim pending jobs while their quota key has a free slot.

        At most ``8 * max_inflight_creates`` claimed jobs wait for their create call's
        response at once (memory and journal reads stay bounded whatever the caps); the
        pipeline is refilled once a quarter of that is free, so that a claim (a journal read
        and a commit, each a hop to the journal's thread) lands before the jobs already
        claimed are all sent.
        """
        inflight = anyio.Semaphore(self.settings.max_inflight_creates, fast_acquire=True)
        room = 8 * self.settings.max_inflight_creates
        reported: frozenset[str] = frozenset()
        while not self._stopping:
            now = self._clock()
            wake_at = now + 1.0
            for job_id, (job, not_before) in list(self._later.items()):
                if not_before <= now:
                    del self._later[job_id]
                    self._start_submit(tg, job, inflight, maybe_created=True)
                else:
                    wake_at = min(wake_at, not_before)
            full: set[str] = set()
            batches: list[list[Job]] = []
            planned = len(self._unsent)
            by_key = self.journal.counts_by_key()
            # the most work per slot first: its key is the likeliest to bound the campaign
            for key in sorted(
                by_key, key=lambda k: (-by_key[k][JobState.PENDING] / max(1, self._cap(k).cap), k)
            ):
                if by_key[key][JobState.PENDING] <= 0 or self._inquiries.is_open(key):
                    continue
                cap = self._cap(key)
                if cap.probe(now, self.settings.capacity_probe_after):
                    log.info("asyncjobs.capacity.probe", key=key, cap=cap.cap)
                free = cap.free(len(self._slots[key]), now)
                if cap.hold_until > now:
                    wake_at = min(wake_at, cap.hold_until)
                if free <= 0:
                    full.add(key)
                    continue
                # refill the pipeline in chunks, not one journal read per finished create
                take = min(free, room - planned)
                if take <= 0 or (take < free and take < room // 4):
                    continue
                batch = await self.journal.pending(key, take)
                if batch:
                    self._slots[key].update(job.id for job in batch)
                    batches.append(batch)
                    planned += len(batch)
            if batches:
                # the intent to create, durable before any create call: one commit for all keys
                claimed = iter(
                    await self.journal.transition_many(
                        [Change(j, Event.CLAIM, {}) for b in batches for j in b]
                    )
                )
                # keys take turns, so one key's batch does not queue for every create token first
                per_key = [[next(claimed) for _ in batch] for batch in batches]
                for turn in itertools.zip_longest(*per_key):
                    for job in turn:
                        if job is not None:
                            self._start_submit(tg, job, inflight, maybe_created=False)
            if full != reported:  # slot demand changed: the tracker may want to sweep sooner
                reported = frozenset(full)
                self._wake_track.set()
            await self._wake_dispatch.wait(wake_at - self._clock())

    def _start_submit(
        self, tg: TaskGroup, job: Job, inflight: anyio.Semaphore, *, maybe_created: bool
    ) -> None:
        """Hand ``job`` to an idle submit worker, or start one: a pool that grows to the number
        of jobs between claim and create, instead of a task per job."""
        self._unsent[job.id] = job.quota_key
        self._unsent_keys[job.quota_key] += 1
        self._ready.append((job, maybe_created))
        if self._idle:
            self._idle.popleft().set()
        else:
            tg.start_soon(self._submit_worker, inflight)

    async def _submit_worker(self, inflight: anyio.Semaphore) -> None:
        while True:
            if self._ready:
                job, maybe_created = self._ready.popleft()
                try:
                    await self._submit(job, inflight, maybe_created)
                finally:
                    self._sent(job)
                    if (left := self._inquiries.abandoned(job.id)) is not None:
                        self._inquiry_closed(job, left)
                continue
            if self._stopping:
                return
            wake = anyio.Event()
            self._idle.append(wake)
            await wake.wait()

    def _sent(self, job: Job) -> None:
        key = self._unsent.pop(job.id, None)
        if key is not None:
            self._unsent_keys[key] -= 1
            self._notify()

    async def _submit(self, job: Job, inflight: anyio.Semaphore, maybe_created: bool) -> None:
        """Create one claimed job. ``maybe_created``: an earlier create (before a crash, or one
        that failed ambiguously) may have landed, so the job must not be released unseen."""
        adapter = self._adapter(job.service)
        rate = self._rate(job.service)
        transient = throttles = 0
        probe = False  # this job's next create decides an inquiry: the only one sent meanwhile
        while True:
            stopping = self._stop_asked()
            if stopping and not maybe_created:
                await self._release(job, Event.DEFER, "stopped before the create was sent")
                return
            if stopping:
                return  # stays submitting; reconciled on resume
            if not await self._interruptible(functools.partial(rate.acquire, through_hold=probe)):
                continue
            probe = False
            inquiry = self._inquiries.get(job.quota_key)
            if inquiry is not None and inquiry.probe != job.id:
                # another job of this key is finding out whether the quota is full: follow its verdict
                await self._interruptible(inquiry.decided.wait)
                continue
            if not maybe_created and self._tracked.count(job.quota_key) >= self._cap(job.quota_key).cap:
                # our own created jobs fill the key's cap (lowered since this job was claimed)
                await self._release(job, Event.DEFER, "waiting for a slot", slot_freed=False)
                return
            if self._stop_asked():
                continue  # asked to stop while this job waited for its turn
            try:
                async with inflight:
                    arn = await adapter.create(job)
            except Throttled as exc:
                rate.on_throttle()
                self._stats.throttled += 1
                throttles += 1
                log.info(
                    "asyncjobs.create.throttled", job_id=job.id, service=str(job.service), rate=rate.rate
                )
                self._emit("create.throttled", job.id, job.state, detail=exc.describe())
                job = await self.journal.transition(job, Event.RETRY, detail=exc.describe())
                await self._pause(self._backoff(throttles))
                continue
            except CapacityExceeded as exc:
                await self._quota_full(job, adapter, exc, maybe_created)
                return
            except LimitExceeded as exc:
                role, inquiry = self._inquiries.refused(
                    job.quota_key, job.id, self._tracked.count(job.quota_key)
                )
                if role in (Role.DECIDED, Role.FULL):
                    if role is Role.DECIDED:
                        self._inquiry_closed(job, inquiry)  # the probe held the service's creates
                    await self._quota_full(job, adapter, exc, maybe_created)
                    return
                job = await self.journal.transition(job, Event.RETRY, detail=exc.describe())
                if role is Role.PROBE:
                    # while the pace is learned, or is what holds creates back, a throttle is the
                    # likelier cause: slow down. Either way, send this job again after a silence
                    # that refills any token bucket of 1/s or more; if even that create is
                    # refused, the quota is full
                    inquiry.pace_suspected = rate.slow_start or rate.binding(self._clock())
                    if inquiry.pace_suspected:
                        inquiry.pace_mark = rate.on_throttle()
                    rate.hold()
                    log.info("asyncjobs.create.limited", job_id=job.id, key=job.quota_key, rate=rate.rate)
                    await self._pause(max(1.0, 2.0 / rate.rate))
                    probe = True
                continue  # WAIT: sent before the inquiry opened; the loop follows its verdict
            except Transient as exc:
                maybe_created = True
                transient += 1
                job = await self.journal.transition(
                    job, Event.RETRY, detail=exc.describe(), last_error=exc.describe()
                )
                (log.warning if transient >= 3 else log.info)(
                    "asyncjobs.create.retry", job_id=job.id, attempt=transient, error=exc.describe()
                )
                if transient > self.settings.transient_retries:
                    self._later[job.id] = (job, self._clock() + self.settings.backoff_cap)
                    self._notify()
                    return
                await self._pause(self._backoff(transient))
                continue
            except AlreadyExists:
                job = await self._reconcile(job, adapter, if_missing=None)
                self._after_create(job)
                return
            except Fatal as exc:
                if not maybe_created:
                    await self._release(job, Event.DEFER, exc.describe(), slot_freed=False)
                self._halt(exc)
                return
            except Rejected as exc:
                await self._release(job, Event.REJECT, exc.describe())
                log.warning("asyncjobs.job.rejected", job_id=job.id, error=exc.describe())
                return
            rate.on_success()
            self._stats.creates += 1
            settled = self._inquiries.accepted(job.quota_key, self._tracked.count(job.quota_key))
            if settled is not None:
                self._inquiry_closed(job, settled)
                if settled.verdict is Verdict.THROTTLED:
                    self._limit_was_pace(settled, job.service)
            self._sent(job)  # the pipeline refills while the ARN is being journaled
            with anyio.CancelScope(shield=True):
                job = await self.journal.transition(
                    job, Event.CREATED, arn=arn, submitted_at=self._clock(), last_error=None
                )
            self._after_create(job)
            return

    async def _quota_full(
        self, job: Job, adapter: ServiceAdapter, error: ServiceError, maybe_created: bool
    ) -> None:
        """The service said the running-jobs quota of ``job``'s key is full: lower the believed
        cap to what runs, and give the job back to wait for a slot."""
        cap = self._cap(job.quota_key)
        cap.exceeded(self._tracked.count(job.quota_key), self._clock(), self._rng)
        log.info("asyncjobs.capacity.exceeded", job_id=job.id, key=job.quota_key, cap=cap.cap)
        self._emit("capacity.exceeded", job.id, detail=error.describe())
        if maybe_created:  # an earlier attempt may have created it: look before letting go
            self._after_create(await self._reconcile(job, adapter, if_missing=error.describe()))
        else:
            await self._release(job, Event.DEFER, error.describe(), slot_freed=False)

    def _inquiry_closed(self, probe: Job, inquiry: Inquiry) -> None:
        """The service's creates, held while ``probe`` found out, go on; the key may claim again.
        Unless the pace was found to be the cause, its provisional cut is undone."""
        rate = self._rate(probe.service)
        rate.release()
        if inquiry.verdict is not Verdict.THROTTLED and inquiry.pace_mark is not None:
            rate.undo_throttle(inquiry.pace_mark)
        self._notify()

    def _stop_asked(self) -> bool:
        """Whether the run stops; the caller's stop counts at once, before the watcher has
        turned it into a stop, so no create goes out in between."""
        return self._stopping or (self._caller_stop is not None and self._caller_stop.is_set())

    async def _interruptible(self, wait: Callable[[], Awaitable[object]]) -> bool:
        """Await ``wait()`` unless the run stops first; True if it completed."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await wait()
            finally:
                self._waiting.discard(scope)
        return not scope.cancelled_caught

    def _limit_was_pace(self, inquiry: Inquiry, service: Service) -> None:
        """An inquiry's refusals turned out to be throttles: count them as such."""
        self._stats.throttled += inquiry.refusals
        log.info(
            "asyncjobs.create.throttled",
            key=inquiry.key,
            service=str(service),
            refusals=inquiry.refusals,
            rate=self._rate(service).rate,
        )
        self._emit("create.throttled", inquiry.probe, detail=f"{inquiry.refusals} refused by the pace")
        self._notify()

    async def _reconcile(self, job: Job, adapter: ServiceAdapter, *, if_missing: str | None) -> Job:
        """Find the remote job this attempt created (by token, name or ARN) and record it.

        A job of that name that asks for something else rejects the spec as a conflict. When
        nothing is found, the job is released with ``if_missing`` as the reason, or, when that
        is None (the service just said the job exists), tried again shortly.
        """
        try:
            remote = await adapter.find(job)
        except AlreadyExists as exc:
            return await self._release(job, Event.REJECT, f"conflict: {exc.message}")
        except Fatal as exc:
            self._halt(exc)
            return job
        except (Throttled, Transient, NotFound) as exc:
            # the look-up itself failed: the job stays submitting and is reconciled again later
            log.info("asyncjobs.job.reconcile_retry", job_id=job.id, error=exc.describe())
            self._later[job.id] = (job, self._clock() + self._backoff(3))
            self._notify()
            return job
        if remote is None:
            if if_missing is not None:
                return await self._release(job, Event.DEFER, if_missing, slot_freed=False)
            self._later[job.id] = (job, self._clock() + self.settings.backoff_base)
            return job
        log.info("asyncjobs.job.reconciled", job_id=job.id, arn=remote.arn)
        with anyio.CancelScope(shield=True):
            job = await self.journal.transition(
                job,
                Event.CREATED,
                arn=remote.arn,
                submitted_at=remote.submitted or self._clock(),
                detail="adopted" if if_missing is None else "found",
            )
        return await self._observe(job, remote)

    def _after_create(self, job: Job) -> None:
        if job.state in (JobState.SUBMITTED, JobState.RUNNING):
            self._tracked.put(job)
            self._cap(job.quota_key).accepted(self._tracked.count(job.quota_key))
            log.info(
                "asyncjobs.job.submitted",
                job_id=job.id,
                service=str(job.service),
                arn=job.arn,
                attempt=job.attempt,
            )
            self._emit("job.submitted", job.id, job.state, job.arn)
        self._notify()

    async def _release(self, job: Job, event: Event, error: str, *, slot_freed: bool = True) -> Job:
        """A job leaves its slot without a remote job: deferred, rejected or cancelled."""
        with anyio.CancelScope(shield=True):
            job = await self.journal.transition(job, event, last_error=error, detail=error)
        self._slots[job.quota_key].discard(job.id)
        if slot_freed:
            self._cap(job.quota_key).released()
        if job.state.is_final:
            self._finished(job)
        self._notify()
        return job

    # --------------------------------------------------------------- tracking
    async def _track(self, wait: bool) -> None:
        """Sweep each job kind when the poll policy says a sweep would pay off.

        Without ``wait`` the run ends once everything is submitted, so there is no
        final sweep to schedule: only full keys are swept, to free their slots.
        """
        limiters: dict[str, AsyncLimiter] = {}
        policy = PollPolicy(self.settings.min_poll_interval, self.settings.poll_interval)
        start = self._clock()
        last: dict[Service, float] = defaultdict(lambda: start)
        idle: dict[Service, int] = defaultdict(int)
        while not self._stopping:
            now = self._clock()
            waiting = self._waiting_keys(now)
            urgent = urgent_keys(self._loads(waiting), self._durations, self._create_rates())
            finishing = wait and self._finishing()
            due: list[Service] = []
            soonest = now + 1.0
            for service, jobs in self._tracked.by_service.items():
                if not jobs:
                    continue
                at = next_sweep(
                    now,
                    last[service],
                    self._bearing(service, jobs, waiting, finishing, now),
                    waiting_keys=waiting,
                    urgent=urgent,
                    finishing=finishing,
                    durations=self._durations,
                    idle=idle[service],
                    policy=policy,
                )
                if at <= now:
                    due.append(service)
                soonest = min(soonest, at)
            if not due:
                await self._wake_track.wait(min(soonest - now, 0.5))
                continue
            for service in due:
                if self._stopping:
                    break
                last[service] = self._clock()
                changed = await self._sweep(list(self._tracked.by_service[service].values()), limiters)
                idle[service] = 0 if changed else idle[service] + 1

    def _bearing(
        self, service: Service, jobs: Mapping[str, Job], waiting: frozenset[str], finishing: bool, now: float
    ) -> list[Active]:
        """The tracked jobs of ``service`` that bear on when to sweep it (see :func:`bearing`)."""

        def active(job: Job) -> Active:
            return Active(job.quota_key, str(job.service), job.submitted_at or now)

        return bearing(
            jobs,
            self._tracked.by_key,
            [key for key in waiting if self._tracked.kind.get(key) is service],
            finishing=finishing,
            active=active,
        )

    def _waiting_keys(self, now: float) -> frozenset[str]:
        """Keys whose work waits for a slot: full, with pending jobs, and every slot held by a
        created job. While a claimed job still waits for its create (the create rate is what
        holds it up), a finished job would not start anything sooner: no sweep for that."""
        return frozenset(
            key
            for key, counts in self.journal.counts_by_key().items()
            if counts[JobState.PENDING]
            and not self._unsent_keys[key]
            and self._cap(key).free(len(self._slots[key]), now) == 0
        )

    def _loads(self, keys: Iterable[str]) -> list[KeyLoad]:
        counts = self.journal.counts_by_key()
        loads = []
        for key in keys:
            kind = self._tracked.kind.get(key)
            if kind is not None:
                loads.append(
                    KeyLoad(
                        key, str(kind), kind.aws_service, counts[key][JobState.PENDING], self._cap(key).cap
                    )
                )
        return loads

    def _create_rates(self) -> dict[str, float | None]:
        return {name: rate.rate for name, rate in self._rates.items()}

    def _finishing(self) -> bool:
        counts = self.journal.counts()
        return counts[JobState.PENDING] == 0 and counts[JobState.SUBMITTING] == 0

    async def _sweep(self, jobs: list[Job], limiters: dict[str, AsyncLimiter]) -> bool:
        """Poll ``jobs`` (all of one kind) and record what changed; True if any state changed."""
        adapter = self._adapter(jobs[0].service)
        name = jobs[0].service.aws_service
        limiter = limiters.setdefault(name, AsyncLimiter(1, 1.0 / self.settings.read_rate))
        await limiter.acquire()
        try:
            # a read only: a stop need not wait for it (what it saw is committed shielded, below)
            with anyio.CancelScope() as reading:
                self._waiting.add(reading)
                try:
                    result = await adapter.poll(jobs)
                finally:
                    self._waiting.discard(reading)
            if reading.cancelled_caught:
                return False
        except Fatal as exc:
            self._halt(exc)
            return False
        except ServiceError as exc:
            log.warning("asyncjobs.poll.failed", service=name, error=exc.describe())
            return False
        finally:
            self._stats.reads += 1
        self._stats.reads += result.calls - 1
        seen = [
            (job, remote)
            for job in jobs
            if (remote := result.found.get(job.arn or "")) is not None and self._tracked.get(job.id) is job
        ]
        after = await self._observe_many(seen)
        return any(new.state is not old.state for (old, _), new in zip(seen, after, strict=True))

    async def _observe(self, job: Job, remote: Remote) -> Job:
        """Record what the service says of ``job``."""
        (job,) = await self._observe_many([(job, remote)])
        return job

    async def _observe_many(self, seen: Sequence[tuple[Job, Remote]]) -> list[Job]:
        """Record what a sweep saw: every state change in one commit, then act on each.

        A failure that earns another attempt is recorded with its resubmission in the same
        commit, so no one ever sees the job final in between (a run would end on it).
        """
        changes: list[Change] = []
        renamed: list[tuple[Job, str]] = []
        for job, remote in seen:
            if remote.state is JobState.SUBMITTED and job.state is JobState.RUNNING:
                continue  # a list that lags behind what is known: nothing to record
            if remote.state is job.state:
                if remote.status != job.remote_status:
                    renamed.append((job, remote.status))
                continue
            failed = remote.state in (JobState.FAILED, JobState.EXPIRED, JobState.STOPPED)
            fields = {"remote_status": remote.status, "last_error": remote.message if failed else None}
            changes.append(Change(job, OBSERVE[remote.state], fields, remote.status))
            if self._earns_resubmission(remote.state, job.attempt):
                changes.append(self._resubmission(job, remote.state))
        with anyio.CancelScope(shield=True):
            recorded = await self.journal.transition_many(changes)
            renamed_jobs = await self.journal.update_remote(renamed)
        # the job each change left, by id: the first (what was observed) and the last (now)
        observed: dict[str, Job] = {}
        changed: dict[str, Job] = {}
        for new in recorded:
            observed.setdefault(new.id, new)
            changed[new.id] = new
        changed.update((j.id, j) for j in renamed_jobs)
        result = []
        for job, remote in seen:
            new = changed.get(job.id, job)
            result.append(new)
            if new is job:
                continue
            ended = observed.get(job.id, new)
            if not ended.state.is_final:
                self._tracked.put(new)
                if new.state is JobState.RUNNING and job.state is not JobState.RUNNING:
                    self._emit("job.running", new.id, new.state, new.arn)
                continue
            if remote.submitted is not None and remote.ended is not None:
                self._durations[str(new.service)].add(remote.ended - remote.submitted)
            self._tracked.drop(new.id)
            self._slots[new.quota_key].discard(new.id)
            self._cap(new.quota_key).released()
            self._finished(ended)
            if new.state is JobState.PENDING:
                self._resubmitted(new)
            self._notify()
        return result

    def _earns_resubmission(self, state: JobState, attempt: int) -> bool:
        return state in (JobState.FAILED, JobState.EXPIRED) and attempt <= self.settings.resubmit_failed

    def _resubmission(self, job: Job, ended: JobState) -> Change:
        """The change that gives ``job`` (which ended ``ended``) its next attempt: a new name and token."""
        attempt = job.attempt + 1
        given = job.request.get("jobName")
        return Change(
            job,
            Event.RESUBMIT,
            {
                "attempt": attempt,
                "job_name": job_name(
                    self.journal.campaign, job.id, attempt, given if isinstance(given, str) else None
                ),
                "token": idempotency_token(self.journal.campaign, job.id, attempt, job.digest),
                "arn": None,
                "remote_status": None,
                "submitted_at": None,
            },
            f"attempt {attempt} after {ended}",
        )

    def _resubmitted(self, job: Job) -> None:
        log.info("asyncjobs.job.resubmitted", job_id=job.id, attempt=job.attempt)
        self._emit("job.resubmitted", job.id, JobState.PENDING, detail=f"attempt {job.attempt}")

    # ------------------------------------------------------------- reporting
    def _finished(self, job: Job) -> None:
        self._stats.finals.append(self._clock())
        log.info(
            "asyncjobs.job.final",
            job_id=job.id,
            service=str(job.service),
            state=str(job.state),
            arn=job.arn,
            error=job.last_error,
        )
        self._emit("job.final", job.id, job.state, job.arn, job.last_error)

    def _emit(
        self,
        name: str,
        job_id: str | None = None,
        state: JobState | None = None,
        arn: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Tell embedders; the event is built only when someone listens."""
        if not (self._hooks or self._streams):
            return
        event = CampaignEvent(name, job_id, state, arn, detail)
        for hook in self._hooks:
            hook(event)
        for send in self._streams:
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(event)

    def _eta(self, counts: StateCounts) -> float | None:
        remaining = sum(n for s, n in counts.counts.items() if not s.is_final)
        finals = self._stats.finals
        if remaining == 0:
            return 0.0
        if len(finals) < 2 or finals[-1] <= finals[0]:
            return None
        rate = (len(finals) - 1) / (finals[-1] - finals[0])
        return remaining / rate if rate > 0 else math.inf

    def _summary(self, *, interrupted: bool, unstoppable: int = 0) -> Summary:
        return Summary(
            campaign=self.journal.campaign,
            journal=self.journal.path,
            counts=self.journal.counts(),
            interrupted=interrupted,
            elapsed=self._clock() - self._started,
            creates=self._stats.creates,
            throttled=self._stats.throttled,
            reads=self._stats.reads,
            unstoppable=unstoppable,
        )
