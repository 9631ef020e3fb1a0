"""The journal protocol: the domain operations the scheduler needs from storage.

The scheduler only talks to a :class:`Journal`. SQLite implements it for one process
(:mod:`asyncjobs.journal.sqlite`), PostgreSQL for several workers on several hosts sharing
one campaign (:mod:`asyncjobs.journal.postgres`). ``tests/integration/test_contract_journal.py``
runs the same contract over both.

Several workers: the last group of methods (``worker`` to ``refresh``) is what workers share
through the journal: atomic claims under a quota cap, leases on claimed jobs that a heartbeat
renews and another worker takes over when they expire, a create-rate bucket and a lease on each
job kind's status sweep. With one process (SQLite) they reduce to the obvious: every lease is
held, nothing ever expires, and the bucket lives in memory (:mod:`asyncjobs.journal.single`).

Durability contract: when :meth:`Journal.transition` returns, the change is
committed. Implementations group concurrent changes into one commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..lifecycle import Event
from ..model import Job, JobSpec, JobState, StateCounts

if TYPE_CHECKING:
    from .shards import ShardRow


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`Journal.add_specs` did."""

    added: int
    existing: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the append-only event log."""

    seq: int
    job_id: str
    ts: float
    event: str
    from_state: str
    to_state: str
    attempt: int
    arn: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """One state change to record: ``event`` applied to ``job``, with new field values.

    ``fields`` may set ``arn``, ``remote_status``, ``last_error``, ``submitted_at``,
    ``job_name``, ``token`` and ``attempt``. ``detail`` goes into the event log only.
    """

    job: Job
    event: Event
    fields: Mapping[str, Any]
    detail: str | None = None


class Journal(Protocol):
    """Where a campaign's specs, states and events live."""

    @property
    def campaign(self) -> str:
        """The campaign name: part of every derived job name and token."""
        ...

    @property
    def path(self) -> str:
        """Where the journal is, for messages."""
        ...

    async def add_specs(self, specs: Iterable[JobSpec]) -> AddResult:
        """Record new specs as ``pending``, all or nothing.

        Specs already present with the same content are skipped; a changed one raises
        SpecChanged; a duplicate id or job name within the input raises CampaignError.
        """
        ...

    def counts(self) -> StateCounts:
        """Jobs per state (kept in memory; always current)."""
        ...

    def counts_by_key(self) -> Mapping[str, StateCounts]:
        """Jobs per state for each quota key."""
        ...

    async def pending(self, quota_key: str, limit: int, exclude: Sequence[str] = ()) -> list[Job]:
        """Up to ``limit`` pending jobs of ``quota_key``, oldest first, skipping ids in ``exclude``."""
        ...

    async def active(self) -> list[Job]:
        """Every job in ``submitting``, ``submitted`` or ``running``."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    def jobs(self, states: Iterable[JobState] | None = None) -> AsyncIterator[Job]:
        """Every job (or those in ``states``), in campaign order."""
        ...

    async def events(self, job_id: str | None = None, limit: int | None = None) -> list[EventRecord]:
        """The event log (of one job), oldest first."""
        ...

    async def transition(self, job: Job, event: Event, *, detail: str | None = None, **fields: Any) -> Job:
        """Apply ``event`` to ``job`` (see :mod:`asyncjobs.lifecycle`); committed on return."""
        ...

    async def transition_many(self, changes: Sequence[Change]) -> list[Job]:
        """Several changes in one commit, a job per change.

        Changes to the same job apply in order, each to what the one before left (its
        ``Change.job`` may be the job as it was before them all): one decision that takes two
        steps, such as a failure and its resubmission, is never seen half made.
        """
        ...

    async def update_remote(self, updates: Sequence[tuple[Job, str]]) -> list[Job]:
        """Record new remote statuses that do not change the normalised state (one commit)."""
        ...

    async def paces(self) -> Mapping[str, float]:
        """The create paces learned by earlier runs, calls per second by ``<service>:<region>``."""
        ...

    async def save_paces(self, paces: Mapping[str, float]) -> None:
        """Keep learned create paces for the next run (one commit)."""
        ...

    # ------------------------------------------------------- several workers
    @property
    def worker(self) -> str:
        """This journal object's worker id (``host:pid:random``): the owner of its leases."""
        ...

    async def claim(self, quota_key: str, cap: int, limit: int, *, lease_seconds: float = 60.0) -> list[Job]:
        """Claim pending jobs of ``quota_key`` for this worker, atomically under the key's cap.

        In one commit: count the key's jobs in ``submitting``, ``submitted`` or ``running`` (every
        worker's), and move at most ``min(limit, cap - that)`` of its pending jobs, oldest first,
        to ``submitting`` (a ``claim`` event each) under a lease of this worker expiring in
        ``lease_seconds``. Concurrent claims of one key never exceed ``cap`` together and never
        return one job twice. Replaces ``pending()`` + ``transition(CLAIM)`` in the dispatcher.
        """
        ...

    async def heartbeat(self, *, lease_seconds: float = 60.0) -> int:
        """Renew the leases of this worker's ``submitting`` jobs to ``lease_seconds`` from now;
        how many it holds."""
        ...

    async def take_over_expired(self, limit: int = 1000, *, lease_seconds: float = 60.0) -> list[Job]:
        """Lease to this worker up to ``limit`` ``submitting`` jobs whose lease expired (their
        worker died). The caller reconciles each by token and name, as a resume does; a change
        the dead worker still sends for them raises :class:`~asyncjobs.errors.JournalConflict`."""
        ...

    async def take(self, key: str, rate: float, burst: float = 1.0) -> float:
        """Reserve one call from the shared token bucket ``key`` (``rate`` tokens a second, at
        most ``burst`` held): the seconds to wait before making it (0.0: at once). Every worker
        reserving from one key shares one rate."""
        ...

    async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
        """Take or renew the lease on sweeping ``kind`` for ``seconds``: True if this worker
        now holds it (it sweeps), False if another worker's lease is still good."""
        ...

    async def caps(self, *, within: float | None = None) -> Mapping[str, int]:
        """The running-jobs caps the campaign's workers found, by quota key: what the last
        :meth:`save_caps` of any of them said (one process: its own, kept in memory); with
        ``within``, only caps saved that many seconds ago or less."""
        ...

    async def save_caps(self, caps: Mapping[str, int]) -> None:
        """Share running-jobs caps this worker found with the campaign's other workers (one
        commit; they hear of it through :meth:`changes`)."""
        ...

    async def slow_starts(self, *, within: float | None = None) -> Mapping[str, float]:
        """The paces of create-rate slow starts still going on, calls per second by
        ``<service>:<region>``: what the last :meth:`save_slow_starts` of any of the campaign's
        workers said (one process: its own, kept in memory); with ``within``, only those saved
        that many seconds ago or less. Not kept for a later run, as :meth:`paces` are: nothing
        was learned of the limit yet."""
        ...

    async def save_slow_starts(self, paces: Mapping[str, float]) -> None:
        """Share the pace this worker's slow start doubled to with the campaign's other workers
        (one commit; they hear of it through :meth:`changes`)."""
        ...

    async def refresh(self) -> None:
        """Bring :meth:`counts` up to date with every worker's changes (one process: a no-op)."""
        ...

    def changes(self) -> AsyncIterator[str]:
        """The id of another worker each time it commits a change that frees a quota slot (a job
        final, or back to ``pending``) or saves a pace, a slow start's pace or a cap, as soon as
        it commits: a worker hears of it without waiting for its next periodic read. Ends at
        once where no other worker can share the journal; raises
        :class:`~asyncjobs.errors.JournalError` if it can no longer listen (the changes it
        missed are then only seen by reading the journal)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ShardStore(Protocol):
    """A journal that also keeps records shards (:mod:`asyncjobs.journal.shards`): its
    ``add_specs`` writes a row per shard spec in the same transaction as the job rows."""

    async def shard(self, job_id: str) -> ShardRow | None:
        """The shard of the shard job ``job_id`` (None for any other job)."""
        ...

    async def shards(self, line_id: str | None = None) -> list[ShardRow]:
        """Every shard (of one records line), by line, retry round and shard id."""
        ...

    async def mark_uploaded(self, job_id: str) -> None:
        """The shard's input object is in S3 (committed on return)."""
        ...

    async def record_output(
        self, job_id: str, output_uri: str, manifest_uri: str | None, manifest: Any
    ) -> None:
        """Where the shard job's outputs are, and its manifest (committed on return)."""
        ...


def total_counts(per_key: Mapping[str, Mapping[JobState, int]]) -> StateCounts:
    """Jobs per state over every quota key, from a journal's counts kept per key."""
    total: Counter[JobState] = Counter()
    for counts in per_key.values():
        total.update(counts)
    return StateCounts({s: n for s, n in total.items() if n})


def key_counts(per_key: Mapping[str, Mapping[JobState, int]]) -> dict[str, StateCounts]:
    """Jobs per state for each quota key, from a journal's counts kept per key."""
    return {k: StateCounts({s: n for s, n in c.items() if n}) for k, c in per_key.items()}
