"""What a run knows between journal writes: slots, tracked jobs, jobs due again, caps and paces.

Every in-memory fact the scheduler's parts share lives in :class:`RunState`, and is
changed only through its methods, so a reader can see in one file who may take a
slot, track a job or put one aside. :meth:`RunState.notify` is how a part tells the
others that something changed.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import anyio

from ..inquiry import Inquiries
from ..journal.base import Journal
from ..journal.single import SingleProcessWorker
from ..limits import START, AdaptiveRate, Capacity, backoff, default_limit
from ..model import Job, JobState, Service
from ..polling import Durations
from .reporting import Clock, Settings, Stats

if TYPE_CHECKING:
    from ..records.stage import RecordsStage

#: Seconds another worker's claim counts as waiting for the campaign's create rate. A live worker
#: sends its claims within seconds (it claims only a slot's worth of creates ahead); an older one
#: is likelier a dead worker's, left until its lease expires (``--lease-seconds``), and a sweep
#: that frees the key's other slots lets new claims start meanwhile.
FRESH_CLAIM_SECONDS = 10.0
#: Seconds another worker's slow-start pace is kept up with. A slow start that binds doubles
#: every second; an older pace is a slow start that stopped binding (or a stopped run's), and a
#: worker with creates to send then starts its own from one a second.
SLOW_START_FRESH = 10.0


class Signal:
    """A wake-up call that is consumed by the waiter (no wake-up is lost between waits)."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        """Whether a wake-up waits to be consumed."""
        return self._event.is_set()

    async def wait(self, seconds: float) -> None:
        with anyio.move_on_after(max(0.0, seconds)):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


class Tracked:
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


class RunState:
    """The shared state of one campaign's runs (caps, paces and counters outlive a run)."""

    def __init__(
        self, journal: Journal, settings: Settings, clock: Clock, rng: random.Random, region: str | None
    ) -> None:
        self.journal = journal
        #: Whether other workers share the journal (PostgreSQL): then every worker's active jobs
        #: hold slots here, mirrored from the journal (:mod:`.workers`), and leases decide who
        #: reconciles a job whose create may have landed.
        self.shared = not isinstance(journal, SingleProcessWorker)
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.stats = Stats()
        self.inquiries = Inquiries()
        #: How long jobs of each kind took, for when a sweep would find one ended.
        self.durations: dict[str, Durations] = defaultdict(Durations)
        #: Read it, but change it through :meth:`track` and :meth:`untrack`.
        self.tracked = Tracked()
        #: The region part of a pace's journal key; the clients' region once they are open.
        self.pace_region = region or "default"
        self.wake_dispatch = Signal()
        self.wake_track = Signal()
        self.wake_watch = Signal()
        #: Another worker freed a slot or saved a pace, or this one's pace changed (a shared
        #: journal): the workers part reads the journal again, or saves the pace, at once.
        self.wake_workers = Signal()
        #: Whether the watcher wants to hear of every change (once nothing is pending).
        self.watch_armed = False
        self._capacity: dict[str, Capacity] = {}
        self._slots: dict[str, set[str]] = defaultdict(set)
        self._later: dict[str, tuple[Job, float]] = {}
        self._rates: dict[str, AdaptiveRate] = {}
        self._bucket_turns: dict[str, anyio.Lock] = {}
        #: Create paces learned by this run or an earlier one, by ``<service>:<region>``.
        self._learned: dict[str, float] = {}
        #: The paces last read from a shared journal (another worker's, once they change).
        self._seen_paces: dict[str, float] = {}
        #: The pace of each slow start as the shared journal last had it (read, or saved by this
        #: worker): one that differs from it doubled here and is shared.
        self._shared_rising: dict[str, float] = {}
        #: Each quota key's cap as the shared journal last had it (read, or saved by this worker):
        #: a cap that differs from it was found here and is shared; a journal's that differs from
        #: it was found by another worker and is taken up.
        self._shared_caps: dict[str, int] = {}
        #: Jobs handed to the submit workers whose create call has not yet returned.
        self._unsent: dict[str, str] = {}  # job id -> quota key
        self._unsent_keys: Counter[str] = Counter()
        #: A shared journal: other workers' jobs that hold a slot and wait for their create
        #: (submitting, as of the last mirror), by quota key.
        self._others_unsent: Counter[str] = Counter()
        #: Jobs the service has created whose ARN is being journaled: not yet tracked, but
        #: they hold a slot of the service's quota all the same. Quota key -> job ids.
        self._journaling: defaultdict[str, set[str]] = defaultdict(set)
        #: The run's records shards: uploaded before their create, collected when they end.
        self.records: RecordsStage | None = None
        #: Shard jobs ended whose outputs are being collected: the run does not end meanwhile
        #: (a collection may add the shards of a retry).
        self.collecting = 0

    def notify(self) -> None:
        """Something changed that may free a slot or end the run: wake who waits for that."""
        self.wake_dispatch.set()
        if self.watch_armed:
            self.wake_watch.set()

    # ------------------------------------------------------------ restore
    async def restore(self) -> None:
        """Rebuild the slots, tracked jobs and jobs to reconcile from the journal (start-up, resume)."""
        self._unsent.clear()
        self._unsent_keys.clear()
        self._others_unsent.clear()
        self._slots.clear()
        self.tracked.clear()
        self._later.clear()
        self._learned.update(await self.journal.paces())
        await self.take_up_caps()
        now = self.clock()
        for job in await self.journal.active():
            self._slots[job.quota_key].add(job.id)
            if job.state is JobState.SUBMITTING:
                if not self.shared:  # shared: another worker's, or taken over once its lease expires
                    self._later[job.id] = (job, now)  # reconcile by repeating the same create
            else:
                self.tracked.put(job)

    # ------------------------------------------------------ several workers
    def taken_over(self, job: Job) -> None:
        """``job`` (submitting) was another worker's, whose lease expired: reconcile it now by
        repeating the same create, as a resume does."""
        self._slots[job.quota_key].add(job.id)
        self._later[job.id] = (job, self.clock())
        self.notify()

    def forget(self, job: Job) -> None:
        """Another worker owns ``job`` now (its change to it came first): it is no longer ours."""
        self._slots[job.quota_key].discard(job.id)
        self._later.pop(job.id, None)
        self.tracked.drop(job.id)
        self.notify()

    def mirror(self, active: Iterable[Job], *, wall: float | None = None) -> None:
        """A shared journal: every worker's active jobs hold slots, and every created one is
        tracked (one worker sweeps each kind for all). Jobs this worker is sending keep theirs.

        Other workers' claims count as waiting for their create (:meth:`unsent_in`) while younger
        than :data:`FRESH_CLAIM_SECONDS` by ``wall`` (``time.time()``; claims are stamped with
        their worker's wall clock)."""
        wall = time.time() if wall is None else wall
        slots: dict[str, set[str]] = defaultdict(set)
        created: set[str] = set()
        others_unsent: Counter[str] = Counter()
        for job in active:
            slots[job.quota_key].add(job.id)
            if job.state in (JobState.SUBMITTED, JobState.RUNNING):
                created.add(job.id)
                known = self.tracked.get(job.id)
                if known is None or known.state is not job.state:
                    self.tracked.put(job)
            elif self._fresh_claim_of_another(job, wall):
                others_unsent[job.quota_key] += 1
        self._others_unsent = others_unsent
        for job_id in list(self.tracked.jobs):
            if job_id not in created:
                self.tracked.drop(job_id)
        for job_id, key in self._unsent.items():
            slots[key].add(job_id)
        for job, _ in self._later.values():
            slots[job.quota_key].add(job.id)
        self._slots = slots
        self.notify()

    def adopt_paces(self, paces: Mapping[str, float]) -> None:
        """Paces another worker saved to a shared journal: the workers share one pace. A pace of
        a service this worker has not sent a create to yet is where its pacing will start."""
        rates = {self._pace_key(name): rate for name, rate in self._rates.items()}
        for key, pace in paces.items():
            if pace != self._seen_paces.get(key) and pace != self._learned.get(key):
                self._learned[key] = pace
                if (rate := rates.get(key)) is not None:
                    rate.adopt(pace)
            self._seen_paces[key] = pace

    def changed_slow_starts(self) -> Mapping[str, float]:
        """Paces this worker's slow starts doubled to since they were last saved or read, by
        journal key (a slow start still at its first pace tells the others nothing)."""
        rising = {
            self._pace_key(name): pace
            for name, rate in self._rates.items()
            if (pace := rate.rising) is not None and pace > START
        }
        return {key: pace for key, pace in rising.items() if self._shared_rising.get(key) != pace}

    def slow_starts_saved(self, paces: Mapping[str, float]) -> None:
        self._shared_rising.update(paces)

    def slow_starting(self) -> bool:
        """Whether a create pace of this worker is still in its slow start (only then is another
        worker's worth keeping up with)."""
        return any(rate.slow_start for rate in self._rates.values())

    def keep_up_slow_starts(self, paces: Mapping[str, float]) -> None:
        """Keep up with the slow starts that other workers' doublings took further (``paces``, as
        the shared journal has them): the workers double one shared pace together."""
        for name, rate in self._rates.items():
            key = self._pace_key(name)
            pace = paces.get(key)
            if pace is not None:
                rate.keep_up(pace)
                if rate.rising == pace:
                    self._shared_rising[key] = pace  # taken from the journal: not to be saved back

    def bucket_key(self, service: Service) -> str:
        """The shared create-rate bucket of ``service``'s AWS service and region."""
        return f"create:{self._pace_key(service.aws_service)}"

    def bucket_turn(self, service: Service) -> anyio.Lock:
        """Held while one of this worker's creates of ``service`` takes its turn from the shared
        bucket and waits for it. A reservation is a promise of the bucket's next free token: each
        worker's creates reserving one after another at its own pace would promise tokens far
        ahead of the bucket's rate (3 workers: 3 times as fast), and the jobs holding those
        promises would wait, holding their slots, for tens of seconds. One reservation at a time
        per worker keeps the bucket's queue to one turn per worker."""
        key = self.bucket_key(service)
        if key not in self._bucket_turns:
            self._bucket_turns[key] = anyio.Lock()
        return self._bucket_turns[key]

    # -------------------------------------------------------------- slots
    def in_use(self, key: str) -> int:
        """Slots of ``key`` held by our claimed or created jobs."""
        return len(self._slots[key])

    def take_slots(self, key: str, jobs: Iterable[Job]) -> None:
        self._slots[key].update(job.id for job in jobs)

    def free_slot(self, job: Job, *, released: bool) -> None:
        """``job`` no longer holds a slot; ``released``: the service's quota has a slot free too."""
        self._slots[job.quota_key].discard(job.id)
        if released:
            self.cap(job.quota_key).released()

    # ------------------------------------------------------- tracked jobs
    def track(self, job: Job) -> None:
        self.tracked.put(job)

    def untrack(self, job: Job) -> None:
        self.tracked.drop(job.id)

    def created_in(self, key: str) -> int:
        """Our jobs of ``key`` that the service has created and not yet ended."""
        return self.tracked.count(key) + len(self._journaling[key])

    @contextlib.contextmanager
    def journaling(self, job: Job) -> Iterator[None]:
        """While ``job``'s ARN is being journaled, it counts as created (it is not tracked yet)."""
        self._journaling[job.quota_key].add(job.id)
        try:
            yield
        finally:
            self._journaling[job.quota_key].discard(job.id)

    def _fresh_claim_of_another(self, job: Job, wall: float) -> bool:
        """``job`` (submitting) is another worker's, claimed less than :data:`FRESH_CLAIM_SECONDS` ago."""
        journaling = self._journaling.get(job.quota_key, ())
        mine = job.id in self._unsent or job.id in self._later or job.id in journaling
        return not mine and (job.updated_at is None or wall - job.updated_at < FRESH_CLAIM_SECONDS)

    # ------------------------------------------- jobs whose create is due again
    def later(self, job: Job, at: float) -> None:
        """Send ``job`` (still submitting) again at ``at``: its create may have landed."""
        self._later[job.id] = (job, at)

    def due(self, now: float) -> tuple[list[Job], float]:
        """The jobs due again by ``now`` (taken out), and when the next one is due (at most 1 s on)."""
        due, wake_at = [], now + 1.0
        for job_id, (job, not_before) in list(self._later.items()):
            if not_before <= now:
                del self._later[job_id]
                due.append(job)
            else:
                wake_at = min(wake_at, not_before)
        return due, wake_at

    def any_due_later(self) -> bool:
        return bool(self._later)

    # ----------------------------------------- claimed jobs not yet sent
    def handed_over(self, job: Job) -> None:
        self._unsent[job.id] = job.quota_key
        self._unsent_keys[job.quota_key] += 1

    def sent(self, job: Job) -> None:
        """``job``'s create call returned (or will not be made): it no longer waits to be sent."""
        key = self._unsent.pop(job.id, None)
        if key is not None:
            self._unsent_keys[key] -= 1
            self.notify()

    def unsent(self) -> int:
        return len(self._unsent)

    def unsent_in(self, key: str) -> int:
        """Jobs of ``key`` that hold a slot and wait for their create call: this worker's handed to
        the submit workers, and on a shared journal, the other workers' claimed ones (as of the
        last mirror). While any wait, the create rate, not the quota, holds the key's work up."""
        return self._unsent_keys[key] + self._others_unsent[key]

    # ------------------------------------------------------- caps and paces
    def cap(self, key: str) -> Capacity:
        if key not in self._capacity:
            self._capacity[key] = Capacity(
                key,
                default_limit(key, dict(self.settings.max_running)),
                # workers share the caps they find: a change is saved for the others at once
                on_change=self.wake_workers.set if self.shared else None,
            )
        return self._capacity[key]

    def changed_caps(self) -> Mapping[str, int]:
        """Caps this worker found (lowered by a full quota, raised by a probe) since it last
        saved or read them, by quota key."""
        return {
            key: cap.cap
            for key, cap in self._capacity.items()
            if cap.cap != self._shared_caps.get(key, cap.limit)
        }

    def caps_saved(self, caps: Mapping[str, int]) -> None:
        self._shared_caps.update(caps)

    async def take_up_caps(self) -> None:
        """Adopt the caps other workers saved lately (within two probe intervals: a worker with
        work for a key below its limit saves its cap again at each probe; an older cap is a
        stopped run's, and the quota may have been raised since)."""
        self.adopt_caps(await self.journal.caps(within=2 * self.settings.capacity_probe_after))

    def adopt_caps(self, caps: Mapping[str, int]) -> None:
        """Caps another worker saved to a shared journal: every worker claims under the cap one
        of them found, instead of each being refused by the service to find it."""
        now = self.clock()
        for key, found in caps.items():
            if found == self._shared_caps.get(key):
                continue  # unchanged since this worker last read or saved it
            cap = self.cap(key)
            unsaved = cap.cap != self._shared_caps.get(key, cap.limit)
            self._shared_caps[key] = found
            if unsaved and cap.cap < found:
                continue  # found lower here meanwhile: the lower stands, and is saved next
            if cap.cap != found:
                cap.adopt(found, now)
                self.notify()

    def rate(self, service: Service) -> AdaptiveRate:
        name = service.aws_service
        if name not in self._rates:
            self._rates[name] = AdaptiveRate(
                self.clock,
                ceiling=self.settings.create_rate,
                initial=self._learned.get(self._pace_key(name)),
                # workers share one pace: a change is saved for the others at once
                on_change=self.wake_workers.set if self.shared else None,
            )
        return self._rates[name]

    def create_rates(self) -> dict[str, float | None]:
        return {name: rate.rate for name, rate in self._rates.items()}

    def _pace_key(self, aws_service: str) -> str:
        return f"{aws_service}:{self.pace_region}"

    def changed_paces(self) -> Mapping[str, float]:
        """Paces learned since they were last saved, by journal key."""
        learned = {
            self._pace_key(name): pace
            for name, rate in self._rates.items()
            if (pace := rate.learned) is not None
        }
        return {key: pace for key, pace in learned.items() if self._learned.get(key) != pace}

    def paces_saved(self, paces: Mapping[str, float]) -> None:
        self._learned.update(paces)

    def backoff(self, attempt: int) -> float:
        return backoff(attempt, self.rng, base=self.settings.backoff_base, cap=self.settings.backoff_cap)
