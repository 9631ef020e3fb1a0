"""A flaky, slow, throttling service: the campaign still completes, exactly once.

The emulator answers 5% of requests with a 500, drops 2% of connections (for a
create, half of the drops happen after the job was made, so the client never hears
of a job that exists), adds up to a second of latency to every request, and
throttles creates above 5 a second. The runner discovers its rate on its own.

Every retried create is a ``retry`` event in the journal whose detail is the error
that caused it: a transient fault (5xx, dropped connection) or a throttle. Both kinds
are counted and bounded against what the emulator injected. A fault that meets the
lookup adopting a job whose create was answered by a dropped connection is retried too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from asyncjobs.scheduler import Settings
from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import audit, read_journal
from tests.support.cli import run_cli
from tests.support.specs import distinct_specs, spec, write_campaign

#: How the journal's retry details begin: ``Code: message``.
TRANSIENT = ("InternalServerException:", "InternalFailure:", "ConnectionError:")
THROTTLES = ("ThrottlingException:", "LimitExceededException:")
CREATES = ("CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob")

FAULTS = (
    "--seed", "42", "--error-rate", "0.05", "--drop-rate", "0.02", "--latency", "0,1",
    "--create-rate", "5", "--job-seconds", "0.2,0.5",
)  # fmt: skip


def test_transient_faults_cost_retries_not_jobs(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(*FAULTS)
    write_campaign(workdir / "campaign.jsonl", distinct_specs(60))

    result = run_cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url,
        "--poll-interval", "0.5", "--output", "json", "--log-format", "json",
        cwd=workdir, timeout=110,
    )  # fmt: skip

    # completed, every job succeeded: none failed or was rejected because of a transient fault
    assert result.code == 0, result
    summary = result.json()
    assert summary["counts"]["succeeded"] == 60, summary
    stats = emulator.stats()
    view = read_journal(workdir / "c.db")
    checked = audit(view, emulator.jobs(), stats)
    assert checked.problems == []
    assert stats["duplicate_jobs"] == 0
    assert stats["jobs_total"] == 60
    # the faults did happen, and throttling too
    faults = stats["faults"]
    assert sum(faults.values()) > 0, stats
    assert stats["throttled_total"] > 0 and summary["api"]["throttled"] > 0, stats

    # retries are in the event log, with the error that caused them: a transient fault or a throttle
    retries = view.events_named("retry")
    transient = [e for e in retries if e.detail and e.detail.startswith(TRANSIENT)]
    throttled = [e for e in retries if e.detail and e.detail.startswith(THROTTLES)]
    assert len(transient) + len(throttled) == len(retries), [
        e for e in retries if e not in transient + throttled
    ]
    assert transient, f"no transient retry although the service failed {faults} times"
    assert throttled, "no throttle retry although the service throttled"
    assert all(e.from_state == e.to_state == "submitting" for e in retries)

    # bounded, transient faults: per job no more than one round of the policy (the create is
    # tried 1 + transient_retries times before it backs off; each failure is one event), and
    # never more than the faults the service injected
    per_job = Counter(e.job_id for e in transient)
    assert max(per_job.values()) <= Settings().transient_retries + 1, per_job
    assert len(transient) <= sum(faults.values()), (len(transient), faults)
    # throttles: no more than the service sent for creates (a throttle answer can itself be
    # dropped, which the runner sees as a fault). Bedrock's are unambiguous: the runner counts
    # every one. Personalize answers a throttle and a full quota with one error, and the runner
    # counts a refusal as a throttle only once its inquiry shows the pace was the cause: here the
    # quota is never full, but a job of ours that ends (in 0.2-0.5 s) before the probe leaves
    # the verdict unclear, and such a refusal is retried without being counted.
    creates_throttled = sum(n for op, n in stats["throttled"].items() if op in CREATES)
    bedrock_throttled = [e for e in throttled if e.detail and e.detail.startswith("ThrottlingException:")]
    counted = summary["api"]["throttled"]
    assert len(bedrock_throttled) <= counted <= len(throttled) <= creates_throttled, (counted, stats)

    # and the same retries are logged as structured events
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert sum(1 for e in logged if e["event"] == "asyncjobs.create.retry") == len(transient)
    assert all(e["job_id"] in per_job for e in logged if e["event"] == "asyncjobs.create.retry")
    # what the runner counted as throttles, each logged (an inquiry's with how many it covers)
    assert sum(e.get("refusals", 1) for e in logged if e["event"] == "asyncjobs.create.throttled") == counted


def test_a_fault_while_adopting_an_existing_job_is_retried(
    start_emulator: StartEmulator, workdir: Path
) -> None:
    """A Personalize create answered by a dropped connection after the job was made is retried;
    the retry says the job exists, and the lookup that adopts it can itself meet a fault. That
    fault is retried later: it must not stop the run (it did, exit 3, before commit f3d5685)."""
    emulator = start_emulator(
        "--seed", "3", "--error-rate", "0.2", "--drop-rate", "0.3", "--job-seconds", "0.2,0.5"
    )
    specs = [
        spec(f"p-{i}", "personalize", jobInput={"s3DataSource": {"path": f"s3://b/p{i}/"}}) for i in range(30)
    ]
    write_campaign(workdir / "campaign.jsonl", specs)
    result = run_cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url,
        "--poll-interval", "0.3", "--output", "json", cwd=workdir, timeout=170,
    )  # fmt: skip
    assert result.code == 0, result
    assert result.json()["counts"]["succeeded"] == 30
    stats = emulator.stats()
    assert stats["already_exists"] > 0, stats  # the scenario happened: a retried create met its own job
    checked = audit(read_journal(workdir / "c.db"), emulator.jobs(), stats)
    assert checked.problems == []
    assert (checked.duplicates, checked.lost) == (0, 0)
