"""The campaign scheduler: submit -> track -> finish, in one anyio task group.

:class:`Campaign` owns every task it starts. Its :meth:`Campaign.run` is one task
group holding a dispatcher (claims pending jobs while their quota key has a free
slot, and submit workers that create them; :mod:`.dispatch`), a tracker (status
sweeps; :mod:`.tracker`), a pace keeper and a watcher that ends the run
(:mod:`.control`). They share :class:`~.state.RunState`; every job outcome is
committed by :mod:`.outcomes`, and everything the outside sees goes through
:mod:`.reporting`.

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
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import AsyncJobsError, InputError, JournalConflict
from ..journal.base import AddResult, Change, Journal, ShardStore
from ..lifecycle import Event
from ..metrics import campaign_metrics
from ..model import Job, JobSpec, JobState, Service
from ..records.expand import RecordsOptions, ShardSpec
from ..records.s3 import open_s3
from ..records.stage import RecordsStage
from ..services.base import ServiceAdapter
from ..services.clients import by_service, open_clients
from .control import Control
from .dispatch import Dispatcher
from .outcomes import Outcomes
from .reporting import CampaignEvent, Clock, KeyProgress, Progress, Reporter, Settings, Summary
from .state import RunState
from .tracker import Tracker
from .workers import Workers

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds between journal writes of a changed create pace.
PACE_SAVE_INTERVAL = 2.0
#: Seconds between refreshes of the metrics' gauges (jobs per state, quota keys, paces).
METRICS_INTERVAL = 1.0


class Campaign:
    """A campaign of batch jobs, journaled in ``journal``, driven against AWS.

    ``session`` is an ``aioboto3.Session`` (one is created if omitted); ``adapters``
    replaces the AWS clients entirely (tests use it at the seam they own). ``metrics``, a
    ``prometheus_client.CollectorRegistry``, receives the campaign's series (see
    :mod:`asyncjobs.metrics`; needs the ``asyncjobs[metrics]`` extra).
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
        metrics: CollectorRegistry | None = None,
        records: RecordsOptions | None = None,
    ) -> None:
        self.journal = journal
        self.settings = settings or Settings()
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._verify = verify
        self._given_adapters = by_service(dict(adapters)) if adapters else None
        self._clock = clock
        self._started = clock()
        self._state = RunState(journal, self.settings, clock, rng or random.Random(), region)
        self._reporter = Reporter(on_event, campaign_metrics(metrics, journal.campaign))
        self._outcomes = Outcomes(self._state, self._reporter)
        #: How records lines and retries of failed records are cut into shards.
        self._records_options = dataclasses.replace(records or RecordsOptions(), campaign=journal.campaign)

    # ------------------------------------------------------------ public API
    @property
    def records_options(self) -> RecordsOptions:
        """How records lines are cut into shards (pass to ``read_campaign(..., records=)``),
        with the journal's campaign name in the shards' keys."""
        return self._records_options

    async def add(self, specs: Iterable[JobSpec]) -> AddResult:
        """Journal ``specs`` (all or nothing) before anything is sent. A records shard's spec
        needs a journal that keeps shards (both of asyncjobs' journals do): another journal
        refuses the whole batch with :class:`InputError` rather than lose the shard's records."""
        if not isinstance(self.journal, ShardStore):
            specs = _refusing_shards(specs, type(self.journal).__name__)
        return await self.journal.add_specs(specs)

    def subscribe(self, buffer: int = 1000) -> AsyncIterator[CampaignEvent]:
        """Events as an async iterator; it ends when the run ends. Slow readers lose events, not the run."""
        return self._reporter.subscribe(buffer)

    def progress(self) -> Progress:
        state = self._state
        counts = self.journal.counts()
        keys = [
            KeyProgress(key, state.in_use(key), state.cap(key).cap, c[JobState.PENDING])
            for key, c in sorted(self.journal.counts_by_key().items())
        ]
        rates = state.create_rates()
        paced = [rate for rate in rates.values() if rate is not None]
        return Progress(
            counts=counts,
            keys=keys,
            create_rate=sum(paced) if rates else None,
            creates=state.stats.creates,
            throttled=state.stats.throttled,
            reads=state.stats.reads,
            elapsed=self._clock() - self._started,
            eta=state.stats.eta(counts),
            create_rates=rates,
            uploads=state.records.counts.as_dict() if state.records and state.records.counts.shards else {},
        )

    async def run(self, *, wait: bool = True, stop: anyio.Event | None = None) -> Summary:
        """Submit every pending job and track them all to a final state.

        With ``wait=False``, return once every job has been submitted. When ``stop`` is
        set, stop submitting, let creates in flight finish, and return (resumable). An
        asyncjobs error that ends the run (``Fatal``: credentials, access, TLS) carries the
        run's :class:`Summary` as its ``summary``.
        """
        self._started = self._clock()
        control = Control(self._state, self._reporter, stop)
        try:
            await self._run(control, wait)
        except BaseException as exc:
            self._tell_summary(exc)
            raise
        finally:
            self._measure()
        self._reporter.close()
        if control.fatal is not None:
            control.fatal.summary = self._summary(interrupted=False)
            raise control.fatal
        interrupted = bool(stop and stop.is_set()) and not self.journal.counts().done
        return self._summary(interrupted=interrupted)

    async def _run(self, control: Control, wait: bool) -> None:
        async with contextlib.AsyncExitStack() as stack:
            adapters = await self._open(stack)
            await self._stage_records(stack)
            await self._state.restore()
            if self.settings.resubmit_failed:
                await self._outcomes.resubmit_earlier_failures()
            tracker = Tracker(self._state, control, self._outcomes, self._reporter, adapters)
            dispatcher = Dispatcher(
                self._state, control, self._outcomes, self._reporter, adapters, look=tracker.look
            )
            workers = Workers(self._state, control, self._outcomes, self._reporter, adapters)
            if self._state.shared:
                await workers.mirror()  # every worker's jobs, before the first claim
            async with anyio.create_task_group() as tg:
                tg.start_soon(workers.run)
                tg.start_soon(dispatcher.run, tg)
                tg.start_soon(tracker.run, wait)
                tg.start_soon(self._keep_paces, control)
                if self._reporter.metrics.active:
                    tg.start_soon(self._keep_measuring, control)
                tg.start_soon(control.watch, wait, tg)

    def _tell_summary(self, exc: BaseException) -> None:
        """Give each asyncjobs error that ends the run (a journal that became unwritable, say)
        the summary as it stands, so the caller need not rebuild one."""
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                self._tell_summary(inner)
        elif isinstance(exc, AsyncJobsError) and exc.summary is None:
            exc.summary = self._summary(interrupted=False)

    async def cancel(self) -> Summary:
        """Cancel the campaign: unsubmitted jobs become ``cancelled``; Bedrock jobs are stopped.

        Personalize jobs cannot be stopped; they keep running and are reported in
        ``Summary.unstoppable``. A fatal error (credentials, access) is raised at once.
        """
        unstoppable = 0
        async with contextlib.AsyncExitStack() as stack:
            adapters = await self._open(stack)
            for job in await self.journal.active():
                adapter = adapters[job.service]
                if job.state is JobState.SUBMITTING:
                    try:
                        job = await self._outcomes.reconcile(job, adapter, if_missing="not created")
                    except JournalConflict:  # a worker of a shared journal holds it: its create is under way
                        self._reporter.emit(
                            "job.unsettled", job, level="warning", hint="a worker is creating it"
                        )
                        continue
                    if job.state is JobState.SUBMITTING:  # could not look it up now
                        self._reporter.emit("job.unsettled", job, level="warning", hint="run cancel again")
                        continue
                    if job.state is JobState.PENDING:
                        continue
                if job.state.is_final:
                    continue
                if not await self._stop_remote(job, adapter):
                    unstoppable += 1
            for key in list(self.journal.counts_by_key()):
                while batch := await self.journal.pending(key, 1000):
                    # jobs a worker claimed meanwhile are its own; the rest of the batch is cancelled
                    with contextlib.suppress(JournalConflict):
                        await self.journal.transition_many([Change(j, Event.CANCEL, {}) for j in batch])
        return self._summary(interrupted=False, unstoppable=unstoppable)

    # --------------------------------------------------------------- internals
    async def _open(self, stack: contextlib.AsyncExitStack) -> Mapping[Service, ServiceAdapter]:
        if self._given_adapters is not None:
            return self._given_adapters
        clients = await open_clients(
            stack,
            self._session,
            region=self._region,
            endpoint_url=self._endpoint_url,
            verify=self._verify,
            max_pool_connections=self.settings.max_inflight_creates + 8,
        )
        self._session = clients.session
        self._state.pace_region = clients.region
        return clients.adapters

    async def _stage_records(self, stack: contextlib.AsyncExitStack) -> None:
        """Records shards, if the journal keeps them: what a killed run left uncollected is
        collected now, and their uploads and collections join this run."""
        if not isinstance(self.journal, ShardStore):
            return
        stage = RecordsStage(
            self.journal,
            lambda s: open_s3(
                s, self._session, region=self._region, endpoint_url=self._endpoint_url, verify=self._verify
            ),
            options=self._records_options,
            retry_failed_records=self.settings.retry_failed_records,
            emit=self._reporter.emit,
        )
        await stage.start(stack)
        self._state.records = stage

    async def _stop_remote(self, job: Job, adapter: ServiceAdapter) -> bool:
        """Ask the service to stop ``job``; False if it cannot be stopped (Personalize)."""
        if await adapter.stop(job):
            self._reporter.emit("job.stop_requested", job)
            return True
        self._reporter.emit("job.unstoppable", job, level="warning")
        return False

    async def _keep_paces(self, control: Control) -> None:
        """Journal each learned create pace when it changes, so a resumed run starts from it."""
        while True:
            changed = self._state.changed_paces()
            if changed:
                await self.journal.save_paces(changed)
                self._state.paces_saved(changed)
            if control.stopping:
                return
            await control.pause(PACE_SAVE_INTERVAL)

    async def _keep_measuring(self, control: Control) -> None:
        """Set the metrics' gauges from :meth:`progress` about once a second (in the loop's
        thread: a scrape reads only the gauges, never the engine's structures)."""
        while not control.stopping:
            self._measure()
            await control.pause(METRICS_INTERVAL)

    def _measure(self) -> None:
        if self._reporter.metrics.active:
            self._reporter.metrics.snapshot(self.progress())

    def _summary(self, *, interrupted: bool, unstoppable: int = 0) -> Summary:
        stats = self._state.stats
        return Summary(
            campaign=self.journal.campaign,
            journal=self.journal.path,
            counts=self.journal.counts(),
            interrupted=interrupted,
            elapsed=self._clock() - self._started,
            creates=stats.creates,
            throttled=stats.throttled,
            reads=stats.reads,
            unstoppable=unstoppable,
            uploads=self._uploads(),
        )

    def _uploads(self) -> dict[str, int]:
        stage = self._state.records
        return stage.counts.as_dict() if stage is not None and stage.counts.shards else {}


def _refusing_shards(specs: Iterable[JobSpec], journal: str) -> Iterator[JobSpec]:
    """``specs``, lazily (an ingest may stream millions), raising at the first records shard."""
    for spec in specs:
        if isinstance(spec, ShardSpec):
            raise InputError(
                f"{spec.source or spec.id}: a records line needs a journal that keeps shards;"
                f" {journal} does not (use open_journal's SQLite or PostgreSQL journal)"
            )
        yield spec
