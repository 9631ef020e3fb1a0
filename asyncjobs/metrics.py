"""A campaign's figures as Prometheus metrics, in a registry the application gives.

Nothing here touches prometheus-client's global registry or starts a server: an
application that wants metrics makes a ``CollectorRegistry`` (or passes its own), hands
it to ``Campaign(..., metrics=registry)``, and exposes it however it already exposes
metrics. The ``asyncjobs`` command serves it on ``--metrics-port``. Without a registry a
campaign measures through :class:`Meter`, whose every method does nothing, and
prometheus-client (the ``asyncjobs[metrics]`` extra) need not be installed.

Why prometheus-client rather than the OpenTelemetry metrics API: the series this project
promises are Prometheus series (names, labels, the text exposition an operator scrapes).
prometheus-client produces exactly those, with one small pure-Python dependency and a
registry per application, so the library holds no global state. The OpenTelemetry API
alone records nothing: an application needs the SDK, a meter provider and a Prometheus
exporter (or a collector) to get the same text, and names and units pass through
OpenTelemetry's translation on the way. An application on OpenTelemetry can still scrape
this registry, or bridge it with the collector's Prometheus receiver.

Counters and histograms move as things happen, in the event loop's thread; each
prometheus-client metric takes its own lock, so a scrape from the server's thread is
safe. The gauges are a snapshot of :meth:`Campaign.progress`, set by the campaign about
once a second and when the run ends, so a scrape never reads the engine's structures from
another thread.

Several campaigns may share one registry: the series are made once per registry and the
campaigns differ by their ``campaign`` label. Two :class:`CampaignMetrics` of the *same*
campaign in one registry share its series (a campaign resumed in the same process goes on
counting where it was).
"""

from __future__ import annotations

import enum
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import AsyncJobsError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from .scheduler.reporting import Progress

__all__ = ["CampaignMetrics", "CreateOutcome", "Meter", "MissingExtra", "campaign_metrics"]

#: Create latencies: from a fast local emulator (milliseconds) to a slow region (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Batch jobs run for minutes to days (Bedrock allows up to a week before a job expires).
DURATION_BUCKETS = (
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    48 * 3600.0,
    7 * 24 * 3600.0,
)
EXTRA_HINT = "pip install 'asyncjobs[metrics]'"


class MissingExtra(AsyncJobsError):
    """An optional part of asyncjobs was asked for without the extra that provides it."""


class CreateOutcome(enum.StrEnum):
    """How one create call ended, as the ``outcome`` label of ``asyncjobs_create_calls_total``."""

    ACCEPTED = "accepted"  # the service returned the job's ARN
    THROTTLED = "throttled"  # refused for the request rate (the engine slows down and sends again)
    QUOTA = "quota"  # refused because the running-jobs quota is full
    TRANSIENT = "transient"  # 5xx, a timeout or a broken connection: the job may exist
    REJECTED = "rejected"  # the service refused the request itself (validation, access)
    EXISTS = "exists"  # the job was already there (a repeated create of the same job)


class Meter:
    """What the engine measures, at the places it happens; this base measures nothing.

    :class:`CampaignMetrics` records the same calls as Prometheus series.
    """

    def create_timer(self, service: str) -> CreateTimer:
        """Times one create call (``with meter.create_timer(kind): await adapter.create(job)``);
        a call that returns counts as ``accepted``."""
        return _NO_TIMER

    def create_refused(self, service: str, outcome: CreateOutcome) -> None:
        """A create call failed, and the engine's decision made it ``outcome``."""

    def status_reads(self, service: str, operation: str, calls: int = 1) -> None:
        """``calls`` status reads of API ``operation`` were made for jobs of kind ``service``."""

    def polled(self, service: str, operations: Mapping[str, int]) -> None:
        """A status poll of jobs of kind ``service`` made these calls, by API operation."""
        for operation, calls in operations.items():
            self.status_reads(service, operation, calls)

    def job_duration(self, service: str, seconds: float) -> None:
        """A job was seen final after ``seconds`` by the service's own timestamps."""

    def snapshot(self, progress: Progress) -> None:
        """Set the gauges from a progress snapshot."""

    @property
    def active(self) -> bool:
        """Whether anything is recorded (the campaign refreshes gauges only then)."""
        return False


class CreateTimer:
    """A context manager around one create call; this base times nothing."""

    __slots__ = ()

    def __enter__(self) -> CreateTimer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NO_TIMER = CreateTimer()


@dataclass(frozen=True, slots=True)
class _Series:
    """The metric families of one registry, shared by every campaign measured into it."""

    jobs: Gauge
    creates: Counter
    reads: Counter
    rate: Gauge
    running: Gauge
    cap: Gauge
    latency: Histogram
    duration: Histogram


_SERIES: weakref.WeakKeyDictionary[CollectorRegistry, _Series] = weakref.WeakKeyDictionary()


def _series(registry: CollectorRegistry) -> _Series:
    try:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    except ImportError:
        raise MissingExtra(f"metrics need prometheus-client: {EXTRA_HINT}") from None
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"metrics= takes a prometheus_client.CollectorRegistry, not {type(registry).__name__}"
        )
    found = _SERIES.get(registry)
    if found is not None:
        return found
    try:
        series = _Series(
            jobs=Gauge(
                "asyncjobs_jobs", "Jobs in each normalised state.", ["campaign", "state"], registry=registry
            ),
            creates=Counter(
                "asyncjobs_create_calls",
                "Create calls made, by how each ended.",
                ["campaign", "service", "outcome"],
                registry=registry,
            ),
            reads=Counter(
                "asyncjobs_status_reads",
                "Status reads made by the status sweeps, by API operation (List, Get or Describe).",
                ["campaign", "service", "operation"],
                registry=registry,
            ),
            rate=Gauge(
                "asyncjobs_create_rate",
                "The create pace in force per AWS service, calls per second (0: not yet paced).",
                ["campaign", "service"],
                registry=registry,
            ),
            running=Gauge(
                "asyncjobs_quota_running",
                "Slots of each quota key held by the campaign's jobs (submitting, submitted or running).",
                ["campaign", "key"],
                registry=registry,
            ),
            cap=Gauge(
                "asyncjobs_quota_cap",
                "The running-jobs cap in force for each quota key.",
                ["campaign", "key"],
                registry=registry,
            ),
            latency=Histogram(
                "asyncjobs_create_latency_seconds",
                "Seconds from sending a create call to its answer.",
                ["campaign", "service"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            duration=Histogram(
                "asyncjobs_job_duration_seconds",
                "Seconds from a job's submission to its final status, by the service's own timestamps.",
                ["campaign", "service"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
        )
    except ValueError as exc:  # prometheus-client: "Duplicated timeseries in CollectorRegistry"
        raise AsyncJobsError(
            f"the metrics registry already has asyncjobs series that asyncjobs did not make there ({exc})"
        ) from None
    _SERIES[registry] = series
    return series


class CampaignMetrics(Meter):
    """The metrics of one campaign, registered in ``registry`` (series shared per registry)."""

    def __init__(self, registry: CollectorRegistry, campaign: str) -> None:
        self.registry = registry
        self.campaign = campaign
        self._series = _series(registry)
        # label children are looked up once: a create is counted without a dict walk per label
        self._timed: dict[str, tuple[Any, Any]] = {}

    @property
    def active(self) -> bool:
        return True

    def create_timer(self, service: str) -> CreateTimer:
        children = self._timed.get(service)
        if children is None:
            series = self._series
            children = (
                series.latency.labels(self.campaign, service),
                series.creates.labels(self.campaign, service, CreateOutcome.ACCEPTED.value),
            )
            self._timed[service] = children
        return _Span(*children)

    def create_refused(self, service: str, outcome: CreateOutcome) -> None:
        self._series.creates.labels(self.campaign, service, outcome.value).inc()

    def status_reads(self, service: str, operation: str, calls: int = 1) -> None:
        if calls:
            self._series.reads.labels(self.campaign, service, operation).inc(calls)

    def job_duration(self, service: str, seconds: float) -> None:
        self._series.duration.labels(self.campaign, service).observe(max(seconds, 0.0))

    def snapshot(self, progress: Progress) -> None:
        series, campaign = self._series, self.campaign
        for state, count in progress.counts.as_dict().items():
            series.jobs.labels(campaign, state).set(count)
        for key in progress.keys:
            series.running.labels(campaign, key.key).set(key.running)
            series.cap.labels(campaign, key.key).set(key.cap)
        for service, rate in progress.create_rates.items():
            series.rate.labels(campaign, service).set(rate or 0.0)


class _Span(CreateTimer):
    """One create call: its latency is observed however it ends; one that returns is accepted."""

    __slots__ = ("_accepted", "_latency", "_started")

    def __init__(self, latency: Any, accepted: Any) -> None:
        self._latency = latency
        self._accepted = accepted
        self._started = 0.0

    def __enter__(self) -> _Span:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._latency.observe(time.perf_counter() - self._started)
        if kind is None:
            self._accepted.inc()


def campaign_metrics(registry: CollectorRegistry | None, campaign: str) -> Meter:
    """The meter a campaign records into: :class:`CampaignMetrics` for a registry, else nothing."""
    if registry is None:
        return Meter()
    return CampaignMetrics(registry, campaign)
