"""A fake service adapter: the seam the scheduler owns (ServiceAdapter), with no HTTP.

It models what matters to the scheduler: idempotent creates, a running-jobs quota,
throttling, failures, and jobs that finish after a set time. Tests of the real
adapters run against the emulator instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncjobs.errors import (
    AlreadyExists,
    CapacityExceeded,
    LimitExceeded,
    Rejected,
    ServiceError,
    Throttled,
    Transient,
)
from asyncjobs.model import Job, JobState, Service
from asyncjobs.services.base import PollResult, Remote


@dataclass
class _RemoteJob:
    arn: str
    name: str
    token: str
    key: str
    created: float
    duration: float
    outcome: JobState
    stopped: bool = False


@dataclass
class FakeService:
    """One fake control plane for the given job kinds."""

    services: frozenset[Service] = frozenset({Service.BEDROCK})
    max_running: int = 1000
    duration: float = 0.05
    #: job ids (spec ids, from the name suffix) that end in FAILED on their first attempt
    fail_first: set[str] = field(default_factory=set)
    #: the next N creates are throttled
    throttle_next: int = 0
    #: a create less than this many seconds after the last accepted one is throttled
    min_gap: float = 0.0
    #: the next N creates fail with a 5xx *after* creating the job
    error_after_create_next: int = 0
    reject_names: set[str] = field(default_factory=set)
    by_token: bool = True
    #: both the throttle and the full quota are LimitExceeded with one text, as Personalize may answer
    ambiguous: bool = False
    jobs: dict[str, _RemoteJob] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    peak_running: int = 0
    _last_accepted: float = float("-inf")

    def _running(self, now: float) -> int:
        return sum(1 for j in self.jobs.values() if not self._state(j, now).is_final)

    def _state(self, job: _RemoteJob, now: float) -> JobState:
        if job.stopped:
            return JobState.STOPPED
        if now < job.created + job.duration / 2:
            return JobState.SUBMITTED
        if now < job.created + job.duration:
            return JobState.RUNNING
        return job.outcome

    def _remote(self, job: _RemoteJob) -> Remote:
        now = time.time()
        state = self._state(job, now)
        return Remote(
            arn=job.arn,
            status=str(state),
            state=state,
            name=job.name,
            submitted=job.created,
            ended=job.created + job.duration if state.is_final else None,
        )

    async def create(self, job: Job) -> str:
        self.calls["create"] += 1
        now = time.time()
        if self.throttle_next > 0:
            self.throttle_next -= 1
            raise self._limit(Throttled)
        if now - self._last_accepted < self.min_gap:
            raise self._limit(Throttled)
        if job.job_name in self.reject_names:
            raise Rejected("bad request", code="ValidationException")
        for existing in self.jobs.values():
            if self.by_token and existing.token == job.token:
                return existing.arn
            if not self.by_token and existing.name == job.job_name:
                raise AlreadyExists("exists", code="ResourceAlreadyExistsException")
        if self._running(now) >= self.max_running:
            raise self._limit(CapacityExceeded)
        fail = job.attempt == 1 and job.id in self.fail_first
        arn = f"arn:aws:fake:us-east-1:123456789012:job/{len(self.jobs):012d}"
        self.jobs[arn] = _RemoteJob(
            arn,
            job.job_name,
            job.token,
            job.quota_key,
            now,
            self.duration,
            JobState.FAILED if fail else JobState.SUCCEEDED,
        )
        self._last_accepted = now
        self.peak_running = max(self.peak_running, self._running(now))
        if self.error_after_create_next > 0:
            self.error_after_create_next -= 1
            raise Transient("connection reset after create", code="ConnectionError")
        return arn

    def _limit(self, kind: type[ServiceError]) -> ServiceError:
        self.calls[f"refused:{kind.__name__}"] += 1
        if self.ambiguous:
            return LimitExceeded("Limit exceeded", code="LimitExceededException")
        if kind is Throttled:
            return Throttled("Rate exceeded", code="ThrottlingException")
        return CapacityExceeded("quota full", code="ServiceQuotaExceededException")

    async def find(self, job: Job) -> Remote | None:
        self.calls["find"] += 1
        for existing in self.jobs.values():
            if existing.name == job.job_name:
                return self._remote(existing)
        return None

    async def poll(self, jobs: Sequence[Job]) -> PollResult:
        self.calls["poll"] += 1
        found = {j.arn: self._remote(self.jobs[j.arn]) for j in jobs if j.arn in self.jobs}
        return PollResult(found=found, calls=1, operations={"ListFakeJobs": 1})

    async def stop(self, job: Job) -> bool:
        self.calls["stop"] += 1
        if job.arn in self.jobs:
            self.jobs[job.arn].stopped = True
        return True

    def names(self) -> Counter[str]:
        return Counter(j.name for j in self.jobs.values())
