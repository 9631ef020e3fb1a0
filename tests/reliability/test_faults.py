"""A flaky, slow, throttling service: the campaign still completes, exactly once.

The emulator answers 5% of requests with a 500, drops 2% of connections (for a
create, half of the drops happen after the job was made, so the client never hears
of a job that exists), adds up to a second of latency to every request, and
throttles creates above 5 a second. The runner discovers its rate on its own.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from asyncjobs.scheduler import Settings
from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import audit, mixed_specs, read_journal, run_cli, write_campaign

FAULTS = (
    "--seed", "42", "--error-rate", "0.05", "--drop-rate", "0.02", "--latency", "0,1",
    "--create-rate", "5", "--job-seconds", "0.2,0.5",
)  # fmt: skip


def test_transient_faults_cost_retries_not_jobs(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(*FAULTS)
    write_campaign(workdir / "campaign.jsonl", mixed_specs(60))

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

    # retries are in the event log, with the error that caused them
    retries = view.events_named("retry")
    assert retries, f"no retry event although the service failed {faults} times"
    for event in retries:
        assert event.detail and any(
            code in event.detail for code in ("InternalServerException", "InternalFailure", "ConnectionError")
        ), event
        assert event.from_state == event.to_state == "submitting"
    # bounded: never more per job than the policy allows, and never more than the faults sent
    per_job = Counter(e.job_id for e in retries)
    assert max(per_job.values()) <= Settings().transient_retries, per_job
    assert len(retries) <= sum(faults.values())
    # and the same retries are logged as structured events
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert sum(1 for e in logged if e["event"] == "asyncjobs.create.retry") == len(retries)
    assert all(e["job_id"] in per_job for e in logged if e["event"] == "asyncjobs.create.retry")
