"""The one place where what became of a job is committed: created, released, observed, resubmitted.

Every write here that records what the service did (an ARN it returned, a state it
reported) runs shielded from cancellation, so a hard stop never loses a job the
service has. Each write also updates the run's slots and tracked jobs to match.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from ..errors import AlreadyExists, JournalConflict, NotFound, Throttled, Transient
from ..journal.base import Change
from ..lifecycle import OBSERVE, Event
from ..model import Job, JobState
from ..naming import idempotency_token, job_name
from ..records.stage import COLLECTED_STATES
from ..services.base import Remote, ServiceAdapter
from .reporting import Reporter
from .state import RunState


class Outcomes:
    """Commits each job's outcome to the journal, then to the run's state, then tells the reporter."""

    def __init__(self, state: RunState, reporter: Reporter) -> None:
        self._state = state
        self._reporter = reporter

    # ----------------------------------------------------------- creates
    async def created(self, job: Job, arn: str) -> Job:
        """The service returned ``arn`` for ``job``: journal it before anything else happens."""
        # created though not yet tracked: it holds a slot of the service's quota meanwhile
        with anyio.CancelScope(shield=True), self._state.journaling(job):
            job = await self._state.journal.transition(
                job, Event.CREATED, arn=arn, submitted_at=self._state.clock(), last_error=None
            )
        self.submitted(job)
        return job

    def submitted(self, job: Job) -> None:
        """``job``'s create is settled: track it if the service has it."""
        state = self._state
        if job.state in (JobState.SUBMITTED, JobState.RUNNING):
            state.track(job)
            state.cap(job.quota_key).accepted(state.created_in(job.quota_key))
            self._reporter.emit("job.submitted", job)
        state.notify()

    async def reconcile(self, job: Job, adapter: ServiceAdapter, *, if_missing: str | None) -> Job:
        """Find the remote job this attempt created (by token, name or ARN) and record it.

        A job of that name that asks for something else rejects the spec as a conflict. When
        nothing is found, the job is released with ``if_missing`` as the reason, or, when that
        is None (the service just said the job exists), tried again shortly. A ``Fatal`` error
        of the look-up is raised: whether it halts a run or ends a cancel is the caller's.
        """
        state = self._state
        try:
            remote = await adapter.find(job)
        except AlreadyExists as exc:
            return await self.release(job, Event.REJECT, f"conflict: {exc.message}")
        except (Throttled, Transient, NotFound) as exc:
            # the look-up itself failed: the job stays submitting and is reconciled again later
            self._reporter.emit("job.reconcile_retry", job, detail=exc.describe())
            state.later(job, state.clock() + state.backoff(3))
            state.notify()
            return job
        if remote is None:
            if if_missing is not None:
                return await self.release(job, Event.DEFER, if_missing, slot_freed=False)
            state.later(job, state.clock() + state.settings.backoff_base)
            return job
        with anyio.CancelScope(shield=True):
            job = await state.journal.transition(
                job,
                Event.CREATED,
                arn=remote.arn,
                submitted_at=remote.submitted or state.clock(),
                detail="adopted" if if_missing is None else "found",
            )
        self._reporter.emit("job.reconciled", job, detail="adopted" if if_missing is None else "found")
        return await self.observe(job, remote)

    async def release(self, job: Job, event: Event, error: str, *, slot_freed: bool = True) -> Job:
        """A job leaves its slot without a remote job: deferred, rejected or cancelled."""
        with anyio.CancelScope(shield=True):
            job = await self._state.journal.transition(job, event, last_error=error, detail=error)
        self._state.free_slot(job, released=slot_freed)
        if job.state.is_final:
            self._finished(job)
        self._state.notify()
        return job

    # ---------------------------------------------------------- observed
    async def observe(self, job: Job, remote: Remote) -> Job:
        """Record what the service says of ``job``."""
        (job,) = await self.observe_many([(job, remote)])
        return job

    async def observe_many(self, seen: Sequence[tuple[Job, Remote]]) -> list[Job]:
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
        records = self._state.records
        # shard jobs ending well: the run must not end before their outputs are collected
        ending = [
            job.id
            for job, remote in seen
            if records is not None
            and records.is_shard(job.id)
            and remote.state in COLLECTED_STATES
            and remote.state is not job.state
        ]
        self._state.collecting += len(ending)
        try:
            with anyio.CancelScope(shield=True):
                recorded = await self._state.journal.transition_many(changes)
                renamed_jobs = await self._state.journal.update_remote(renamed)
        except BaseException:
            self._state.collecting -= len(ending)
            raise
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
            if new is not job:
                self._settle_observed(job, remote, observed.get(job.id, new), new)
        if ending:
            await self._collect([observed[i] for i in ending if i in observed], len(ending))
        return result

    async def _collect(self, ended: list[Job], held: int) -> None:
        """Collect the outputs of shard jobs that ended well (the run waits for it), and
        journal any retry shards that brings."""
        records = self._state.records
        assert records is not None
        try:
            for job in ended:
                if await records.collect(job):
                    self._state.notify()
        finally:
            self._state.collecting -= held
            self._state.notify()

    def _settle_observed(self, old: Job, remote: Remote, ended: Job, new: Job) -> None:
        """Bring the run's state in line with a recorded observation: ``ended`` is the job as
        observed, ``new`` as it is now (pending again, when it earned a resubmission)."""
        state = self._state
        if not ended.state.is_final:
            state.track(new)
            if new.state is JobState.RUNNING and old.state is not JobState.RUNNING:
                self._reporter.emit("job.running", new)
            return
        if remote.submitted is not None and remote.ended is not None:
            state.durations[str(new.service)].add(remote.ended - remote.submitted)
            self._reporter.metrics.job_duration(str(new.service), remote.ended - remote.submitted)
        state.untrack(new)
        state.free_slot(new, released=True)
        self._finished(ended)
        if new.state is JobState.PENDING:
            self._resubmitted(new)
        state.notify()

    # ------------------------------------------------------- resubmission
    async def resubmit_earlier_failures(self) -> None:
        """Failed in a journal of an earlier version, or a rerun that allows more attempts."""
        journal = self._state.journal
        again = [
            self._resubmission(job, job.state)
            async for job in journal.jobs([JobState.FAILED, JobState.EXPIRED])
            if self._earns_resubmission(job.state, job.attempt)
        ]
        try:
            resubmitted = await journal.transition_many(again)
        except JournalConflict:  # a shared journal: another worker starting too resubmitted them
            return
        for job in resubmitted:
            self._resubmitted(job)

    def _earns_resubmission(self, state: JobState, attempt: int) -> bool:
        return (
            state in (JobState.FAILED, JobState.EXPIRED) and attempt <= self._state.settings.resubmit_failed
        )

    def _resubmission(self, job: Job, ended: JobState) -> Change:
        """The change that gives ``job`` (which ended ``ended``) its next attempt: a new name and token."""
        attempt = job.attempt + 1
        given = job.request.get("jobName")
        campaign = self._state.journal.campaign
        return Change(
            job,
            Event.RESUBMIT,
            {
                "attempt": attempt,
                "job_name": job_name(campaign, job.id, attempt, given if isinstance(given, str) else None),
                "token": idempotency_token(campaign, job.id, attempt, job.digest),
                "arn": None,
                "remote_status": None,
                "submitted_at": None,
            },
            f"attempt {attempt} after {ended}",
        )

    def _resubmitted(self, job: Job) -> None:
        self._reporter.emit("job.resubmitted", job, detail=f"attempt {job.attempt}")

    def _finished(self, job: Job) -> None:
        self._state.stats.finals.append(self._state.clock())
        self._reporter.emit("job.final", job, detail=job.last_error)
