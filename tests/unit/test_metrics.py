"""asyncjobs.metrics: the campaign's series in a real prometheus-client registry, read back
through the text exposition an operator scrapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from asyncjobs.errors import (
    AlreadyExists,
    AsyncJobsError,
    CapacityExceeded,
    Fatal,
    LimitExceeded,
    Rejected,
    ServiceError,
    Throttled,
    Transient,
)
from asyncjobs.inquiry import Role
from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.metrics import CampaignMetrics, CreateOutcome, Meter, MissingExtra, campaign_metrics
from asyncjobs.model import JobState, Service, StateCounts
from asyncjobs.scheduler import Campaign, Settings
from asyncjobs.scheduler.decisions import Attempts, decide
from asyncjobs.scheduler.reporting import KeyProgress, Progress
from tests.fakes import FakeService
from tests.support.presets import FAKE_SERVICE_RUN
from tests.support.specs import minimal_specs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def progress(
    counts: dict[JobState, int], keys: list[KeyProgress], rates: dict[str, float | None]
) -> Progress:
    return Progress(
        counts=StateCounts(counts),
        keys=keys,
        create_rate=None,
        creates=0,
        throttled=0,
        reads=0,
        elapsed=0.0,
        eta=None,
        create_rates=rates,
    )


def test_every_series_has_the_name_and_labels_the_issue_gives() -> None:
    registry = CollectorRegistry()
    metrics = CampaignMetrics(registry, "spring")
    with metrics.create_timer("bedrock"):
        pass
    metrics.create_refused("bedrock", CreateOutcome.THROTTLED)
    metrics.status_reads("bedrock", "ListModelInvocationJobs", 3)
    metrics.job_duration("bedrock", 90.0)
    metrics.snapshot(
        progress(
            {JobState.PENDING: 7, JobState.RUNNING: 2, JobState.SUCCEEDED: 1},
            [KeyProgress("bedrock:m1", running=2, cap=10, pending=7)],
            {"bedrock": 2.5, "personalize": None},
        )
    )

    samples = scrape(registry)

    assert (
        value(
            samples, "asyncjobs_create_calls_total", campaign="spring", service="bedrock", outcome="accepted"
        )
        == 1
    )
    assert (
        value(
            samples, "asyncjobs_create_calls_total", campaign="spring", service="bedrock", outcome="throttled"
        )
        == 1
    )
    assert (
        value(
            samples,
            "asyncjobs_status_reads_total",
            campaign="spring",
            service="bedrock",
            operation="ListModelInvocationJobs",
        )
        == 3
    )
    assert value(samples, "asyncjobs_jobs", campaign="spring", state="pending") == 7
    assert value(samples, "asyncjobs_jobs", campaign="spring", state="running") == 2
    assert value(samples, "asyncjobs_jobs", campaign="spring", state="failed") == 0  # every state, zero too
    assert value(samples, "asyncjobs_quota_running", campaign="spring", key="bedrock:m1") == 2
    assert value(samples, "asyncjobs_quota_cap", campaign="spring", key="bedrock:m1") == 10
    assert value(samples, "asyncjobs_create_rate", campaign="spring", service="bedrock") == 2.5
    assert value(samples, "asyncjobs_create_rate", campaign="spring", service="personalize") == 0
    assert value(samples, "asyncjobs_create_latency_seconds_count", campaign="spring", service="bedrock") == 1
    assert value(samples, "asyncjobs_job_duration_seconds_count", campaign="spring", service="bedrock") == 1
    assert value(samples, "asyncjobs_job_duration_seconds_sum", campaign="spring", service="bedrock") == 90.0
    # 90 s falls in the 300 s bucket, not the 60 s one
    assert (
        value(
            samples, "asyncjobs_job_duration_seconds_bucket", campaign="spring", service="bedrock", le="60.0"
        )
        == 0
    )
    assert (
        value(
            samples, "asyncjobs_job_duration_seconds_bucket", campaign="spring", service="bedrock", le="300.0"
        )
        == 1
    )


def test_a_create_that_raises_is_timed_but_not_accepted() -> None:
    registry = CollectorRegistry()
    metrics = CampaignMetrics(registry, "c")

    with pytest.raises(Throttled), metrics.create_timer("personalize"):
        raise Throttled("Rate exceeded", code="ThrottlingException")

    samples = scrape(registry)
    assert value(samples, "asyncjobs_create_latency_seconds_count", campaign="c", service="personalize") == 1
    assert (
        value(
            samples, "asyncjobs_create_calls_total", campaign="c", service="personalize", outcome="accepted"
        )
        == 0
    )


def test_nothing_is_registered_globally() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    CampaignMetrics(CollectorRegistry(), "c").create_refused("bedrock", CreateOutcome.QUOTA)
    assert set(REGISTRY._names_to_collectors) == before


def test_two_registries_do_not_collide() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    CampaignMetrics(first, "same").create_refused("bedrock", CreateOutcome.QUOTA)
    CampaignMetrics(second, "same").create_refused("bedrock", CreateOutcome.REJECTED)

    labels = {"campaign": "same", "service": "bedrock"}
    assert value(scrape(first), "asyncjobs_create_calls_total", **labels, outcome="quota") == 1
    assert value(scrape(first), "asyncjobs_create_calls_total", **labels, outcome="rejected") is None
    assert value(scrape(second), "asyncjobs_create_calls_total", **labels, outcome="rejected") == 1


def test_campaigns_share_a_registry_by_their_label() -> None:
    registry = CollectorRegistry()
    spring, autumn = CampaignMetrics(registry, "spring"), CampaignMetrics(registry, "autumn")
    spring.create_refused("bedrock", CreateOutcome.TRANSIENT)
    autumn.create_refused("bedrock", CreateOutcome.TRANSIENT)
    autumn.create_refused("bedrock", CreateOutcome.TRANSIENT)
    # the same campaign again (resumed in the same process) goes on counting its own series
    CampaignMetrics(registry, "spring").create_refused("bedrock", CreateOutcome.TRANSIENT)

    samples = scrape(registry)
    name = "asyncjobs_create_calls_total"
    assert value(samples, name, campaign="spring", service="bedrock", outcome="transient") == 2
    assert value(samples, name, campaign="autumn", service="bedrock", outcome="transient") == 2


def test_a_registry_with_foreign_series_of_the_same_name_is_a_clear_error() -> None:
    registry = CollectorRegistry()
    Gauge("asyncjobs_jobs", "someone else's", registry=registry)

    with pytest.raises(Exception, match="already has asyncjobs series that asyncjobs did not make"):
        CampaignMetrics(registry, "c")


def test_without_a_registry_nothing_is_measured() -> None:
    meter = campaign_metrics(None, "c")
    assert type(meter) is Meter
    assert not meter.active
    with meter.create_timer("bedrock"):
        meter.create_refused("bedrock", CreateOutcome.QUOTA)


@pytest.mark.parametrize(
    ("error", "attempts", "role", "outcome"),
    [
        (Throttled("x"), Attempts(), None, "throttled"),
        (CapacityExceeded("x"), Attempts(), None, "quota"),
        (CapacityExceeded("x"), Attempts(maybe_created=True), None, "quota"),
        (LimitExceeded("x"), Attempts(), Role.DECIDED, "quota"),
        (LimitExceeded("x"), Attempts(), Role.FULL, "quota"),
        (LimitExceeded("x"), Attempts(), Role.PROBE, "throttled"),
        (LimitExceeded("x"), Attempts(), Role.WAIT, "throttled"),
        (Transient("x"), Attempts(), None, "transient"),
        (Transient("x"), Attempts(transient=8), None, "transient"),
        (AlreadyExists("x"), Attempts(), None, "exists"),
        (Fatal("x"), Attempts(), None, "rejected"),
        (Rejected("x"), Attempts(), None, "rejected"),
    ],
)
def test_each_create_decision_has_an_outcome(
    error: ServiceError, attempts: Attempts, role: Role | None, outcome: str
) -> None:
    assert decide(error, attempts, transient_retries=8, role=role).outcome == outcome


async def test_a_campaign_counts_its_creates_reads_and_jobs(tmp_path: Path) -> None:
    journal: SQLiteJournal = await open_journal(tmp_path / "c.db", campaign="camp")
    registry = CollectorRegistry()
    fake = FakeService(throttle_next=3, max_running=4, duration=0.05)
    try:
        await journal.add_specs(minimal_specs(12))
        campaign = Campaign(
            journal,
            adapters={Service.BEDROCK: fake},
            settings=Settings(**FAKE_SERVICE_RUN),
            metrics=registry,
        )
        with anyio.fail_after(30):
            await campaign.run()
    finally:
        await journal.aclose()

    samples = scrape(registry)
    creates = "asyncjobs_create_calls_total"
    labels = {"campaign": "camp", "service": "bedrock"}
    assert value(samples, creates, **labels, outcome="accepted") == 12
    assert value(samples, creates, **labels, outcome="throttled") == fake.calls["refused:Throttled"] == 3
    assert value(samples, creates, **labels, outcome="quota") == fake.calls["refused:CapacityExceeded"]
    assert value(samples, "asyncjobs_create_latency_seconds_count", **labels) == fake.calls["create"]
    assert (
        value(samples, "asyncjobs_status_reads_total", **labels, operation="ListFakeJobs")
        == fake.calls["poll"]
    )
    assert value(samples, "asyncjobs_job_duration_seconds_count", **labels) == 12
    # the gauges were set when the run ended
    assert value(samples, "asyncjobs_jobs", campaign="camp", state="succeeded") == 12
    assert value(samples, "asyncjobs_jobs", campaign="camp", state="pending") == 0
    assert value(samples, "asyncjobs_quota_running", campaign="camp", key="bedrock:m1") == 0


def test_without_prometheus_client_a_campaign_runs_and_metrics_name_the_extra(tmp_path: Path) -> None:
    # a fresh interpreter in which prometheus_client cannot be imported
    script = f"""
import sys
sys.modules["prometheus_client"] = None
import anyio
from asyncjobs.journal import open_journal
from asyncjobs.scheduler import Campaign
from asyncjobs.metrics import MissingExtra

async def main():
    journal = await open_journal({str(tmp_path / "c.db")!r}, campaign="c")
    try:
        Campaign(journal)  # no metrics: nothing needs prometheus-client
        try:
            Campaign(journal, metrics=object())
        except MissingExtra as exc:
            print(exc)
    finally:
        await journal.aclose()

anyio.run(main)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "metrics need prometheus-client: pip install 'asyncjobs[metrics]'"


def test_metrics_must_be_a_registry() -> None:
    with pytest.raises(TypeError, match=r"metrics= takes a prometheus_client\.CollectorRegistry, not dict"):
        CampaignMetrics({}, "c")  # type: ignore[arg-type]


def test_missing_extra_is_an_asyncjobs_error() -> None:
    assert issubclass(MissingExtra, AsyncJobsError)
