"""What a campaign tells the outside: its settings, its events, progress snapshots and the summary.

Everything here is read-only with respect to the run. The other parts of the scheduler
report every event through :meth:`Reporter.emit`, the one place that logs it and hands it
to embedders, so the log and the ``CampaignEvent`` stream cannot drift apart.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from ..metrics import Meter
from ..model import UNSUCCESSFUL_STATES, Job, JobState, StateCounts

Clock = Callable[[], float]
Level = Literal["info", "warning", "error"]

log = structlog.get_logger("asyncjobs")


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
    #: Rounds of resubmitting a records line's failed records in new shards (``asyncjobs.records.stage``).
    retry_failed_records: int = 0
    #: A shared journal: seconds a worker's claim on a job lasts unless its heartbeat renews it;
    #: a dead worker's claimed jobs are taken over by another once it expires.
    lease_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class CampaignEvent:
    """Something that happened, for embedders (:meth:`Campaign.subscribe` or ``on_event``).

    Each event is also logged, as ``asyncjobs.<name>`` with the same fields (those that are
    set, and ``data`` spread out), by the one call that makes it. One meaning per field:

    - ``name``: what happened, e.g. ``job.submitted``, ``job.running``, ``job.final``,
      ``create.throttled``, ``create.retry``, ``capacity.exceeded``, ``campaign.halted``;
    - ``job_id``, ``service``, ``state``, ``arn``: the job it happened to, as it stands after it
      (``service`` is the job kind: ``bedrock``, ``personalize``, ``personalize-segment``);
    - ``detail``: why, in words: the service's error as ``Code: message``, or a reason;
    - ``attempt``: the job's attempt, 1 for its first submission and one more for each
      resubmission (each under a new job name and token);
    - ``retry``: only on ``create.retry``, which retry of one create call this is after a 5xx
      or a broken connection (counted from 1 each time a submit worker takes the job up);
    - ``data``: the event's other facts (``key``, ``cap``, ``rate``, ``refusals``, ``reason``...);
    - ``ts``: when, as ``time.time()``.
    """

    name: str
    job_id: str | None = None
    state: JobState | None = None
    arn: str | None = None
    detail: str | None = None
    ts: float = field(default_factory=time.time)
    service: str | None = None
    attempt: int | None = None
    retry: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


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
    #: Records shards and their uploads (``UploadCounts.as_dict``); empty without records lines.
    uploads: Mapping[str, int] = field(default_factory=dict)


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
    #: Records shards and their uploads (``UploadCounts.as_dict``); empty without records lines.
    uploads: Mapping[str, int] = field(default_factory=dict)

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
            **({"uploads": dict(self.uploads)} if self.uploads else {}),
        }


@dataclass
class Stats:
    """API calls counted over the campaign's life, and when the latest jobs ended (for the ETA)."""

    creates: int = 0
    throttled: int = 0
    reads: int = 0
    finals: deque[float] = field(default_factory=lambda: deque(maxlen=256))

    def eta(self, counts: StateCounts) -> float | None:
        """Seconds until every job is final, at the pace the latest jobs ended; None: unknown yet."""
        remaining = sum(n for s, n in counts.counts.items() if not s.is_final)
        if remaining == 0:
            return 0.0
        finals = self.finals
        if len(finals) < 2 or finals[-1] <= finals[0]:
            return None
        rate = (len(finals) - 1) / (finals[-1] - finals[0])
        return remaining / rate if rate > 0 else math.inf


class Reporter:
    """Hands events to embedders: ``on_event`` hooks and :meth:`subscribe` streams; and the
    campaign's figures to its :attr:`metrics` (a :class:`~asyncjobs.metrics.Meter`)."""

    def __init__(
        self, on_event: Callable[[CampaignEvent], None] | None, metrics: Meter | None = None
    ) -> None:
        self.metrics = metrics or Meter()
        self._hooks: list[Callable[[CampaignEvent], None]] = [on_event] if on_event else []
        self._streams: list[MemoryObjectSendStream[CampaignEvent]] = []

    def subscribe(self, buffer: int) -> AsyncIterator[CampaignEvent]:
        send, receive = anyio.create_memory_object_stream[CampaignEvent](buffer)
        self._streams.append(send)

        async def iterate() -> AsyncIterator[CampaignEvent]:
            async with receive:
                async for event in receive:
                    yield event

        return iterate()

    def close(self) -> None:
        """The run ended: every subscriber's iterator ends."""
        for send in self._streams:
            send.close()
        self._streams.clear()

    def emit(
        self,
        name: str,
        job: Job | None = None,
        *,
        level: Level = "info",
        job_id: str | None = None,
        service: str | None = None,
        state: JobState | None = None,
        detail: str | None = None,
        retry: int | None = None,
        **data: Any,
    ) -> None:
        """Log ``asyncjobs.<name>`` and tell embedders, with the fields :class:`CampaignEvent` documents.

        ``job`` gives the job's fields (``state`` overrides its state); ``job_id`` and
        ``service`` name a job without them. The event object is built only when someone listens.
        """
        fields: dict[str, Any] = {
            "job_id": job_id,
            "service": service,
            "state": state,
            "detail": detail,
            "retry": retry,
        }
        if job is not None:
            fields.update(
                job_id=job.id,
                service=str(job.service),
                state=state or job.state,
                arn=job.arn,
                attempt=job.attempt,
            )
        shown = {key: value for key, value in fields.items() if value is not None}
        if "state" in shown:
            shown["state"] = str(shown["state"])
        getattr(log, level)(f"asyncjobs.{name}", **shown, **data)
        if not (self._hooks or self._streams):
            return
        event = CampaignEvent(name, **fields, data=data)
        for hook in self._hooks:
            hook(event)
        for send in self._streams:
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(event)
