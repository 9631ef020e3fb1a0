"""``asyncjobs run`` end to end: the real command against the emulator, with its exit codes."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import MakeEmulator
from tests.support.cli import SECRET, Cli, finish_async, journal_files
from tests.support.presets import FAST_POLL
from tests.support.specs import mixed_specs, spec, write_campaign


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


async def test_run_to_completion(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator()
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(12))

    result = await cli(
        "run", str(campaign), "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json", *FAST_POLL
    )

    assert result.code == 0, result
    doc = result.json()
    assert doc["total"] == 12
    assert doc["counts"]["succeeded"] == 12
    assert set(doc["counts"]) >= {"pending", "succeeded", "failed", "partial", "rejected", "cancelled"}
    assert doc["interrupted"] is False
    stats = emu.stats()
    assert stats["jobs_total"] == 12
    assert stats["duplicate_jobs"] == 0
    assert SECRET not in result.stdout + result.stderr


async def test_campaign_from_stdin_and_query(cli: Cli, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    lines = "".join(json.dumps(s) + "\n" for s in mixed_specs(5)).encode()

    result = await cli(
        "--output", "json", "--query", "counts.succeeded",
        "run", "-", "--journal", "c.db", "--endpoint-url", emu.url, *FAST_POLL,
        stdin=lines,
    )  # fmt: skip

    assert result.code == 0, result
    assert result.json() == 5


async def test_failed_jobs_exit_1_and_resubmission(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(fail_rate=1.0)
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(4))

    result = await cli(
        "run", str(campaign), "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json",
        "--resubmit-failed", "1", *FAST_POLL,
    )  # fmt: skip

    assert result.code == 1, result
    assert result.json()["counts"]["failed"] == 4
    assert "finished with 4 failed" in result.stderr
    assert emu.stats()["jobs_total"] == 8  # two attempts per spec, each a new remote job
    assert emu.stats()["duplicate_jobs"] == 0

    status = await cli("status", "--journal", "c.db", "--output", "json")
    assert {job["attempts"] for job in status.json()["jobs"]} == {2}
    assert all(job["last_error"] for job in status.json()["jobs"])


@pytest.mark.parametrize("seed", [1, 4])
async def test_a_run_with_resubmissions_ends_only_when_every_job_is_final(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path, seed: int
) -> None:
    """40% of jobs fail, each gets up to 3 more attempts: the run ends with every job final, its
    exit code says whether all succeeded, and every attempt the journal counts reached the service."""
    emu = await make_emulator(fail_rate=0.4, seed=seed, job_seconds=(0.5, 1.5))
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(24))

    result = await cli(
        "run", str(campaign), "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json",
        "--resubmit-failed", "3", *FAST_POLL,
    )  # fmt: skip

    counts = result.json()["counts"]
    assert {state: counts[state] for state in ("pending", "submitting", "submitted", "running")} == {
        "pending": 0, "submitting": 0, "submitted": 0, "running": 0,
    }, result  # fmt: skip
    assert result.code == (0 if counts["failed"] == 0 else 1), result
    status = (await cli("status", "--journal", "c.db", "--output", "json")).json()
    assert sum(job["attempts"] for job in status["jobs"]) == emu.stats()["jobs_total"]
    assert emu.stats()["duplicate_jobs"] == 0


GOOD = "".join(json.dumps(s) + "\n" for s in mixed_specs(3))
BAD_INPUTS = [
    pytest.param(GOOD + "{not json\n", "campaign.jsonl:4", id="malformed-json"),
    pytest.param(
        GOOD + '{"id": "z", "service": "lambda", "request": {}}\n', "campaign.jsonl:4: service", id="service"
    ),
    pytest.param(GOOD + GOOD, "campaign.jsonl:4: id", id="duplicate-id"),
    pytest.param(None, "campaign.jsonl", id="missing-file"),
    pytest.param("", "campaign.jsonl", id="empty-file"),
]


@pytest.mark.parametrize(("content", "where"), BAD_INPUTS)
async def test_bad_input_exits_2_and_leaves_nothing(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path, content: str | None, where: str
) -> None:
    emu = await make_emulator()
    if content is not None:
        (tmp_path / "campaign.jsonl").write_text(content)

    result = await cli("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url)

    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("asyncjobs: error: ")
    assert where in lines[0]
    assert "Traceback" not in result.stderr
    assert journal_files(tmp_path / "c.db") == []
    assert emu.stats()["requests"] == {}


async def test_bad_line_names_file_line_and_field(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    specs = mixed_specs(3)
    specs[1]["request"]["timeoutDurationInHours"] = 500
    write_campaign(tmp_path / "campaign.jsonl", specs)

    result = await cli("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url)

    assert result.code == 2, result
    assert "campaign.jsonl:2: request.timeoutDurationInHours" in result.stderr
    assert journal_files(tmp_path / "c.db") == []
    assert emu.stats()["requests"] == {}


async def test_bad_input_on_existing_journal_keeps_it(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "one.jsonl", mixed_specs(2))
    assert (
        await cli("run", "one.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, *FAST_POLL)
    ).code == 0
    requests = emu.stats()["requests"]
    changed = mixed_specs(2)
    changed[0]["request"]["roleArn"] = "arn:aws:iam::123456789012:role/Other"
    write_campaign(tmp_path / "two.jsonl", changed)

    result = await cli("run", "two.jsonl", "--journal", "c.db", "--endpoint-url", emu.url)

    assert result.code == 2, result
    assert "job-000" in result.stderr
    assert (tmp_path / "c.db").exists()
    assert emu.stats()["requests"] == requests


async def test_usage_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    missing_campaign = await cli("run", "--journal", "none.db")
    assert missing_campaign.code == 2
    assert "give a CAMPAIGN" in missing_campaign.stderr
    bad_cap = await cli("run", "x.jsonl", "--journal", "none.db", "--max-running", "bedrock")
    assert bad_cap.code == 2
    assert "--max-running" in bad_cap.stderr
    bad_query = await cli("--query", "counts[", "status", "--journal", "none.db")
    assert bad_query.code == 2
    assert journal_files(tmp_path / "none.db") == []


async def wait_for_creates(emu: Emulator, n: int, process: asyncio.subprocess.Process) -> None:
    """Until the emulator has ``n`` jobs; fails with the command's output if it ended first."""
    for _ in range(600):
        if process.returncode is not None:
            raise AssertionError(f"the command ended early: {await finish_async(process)}")
        if emu.stats()["jobs_total"] >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the command created no jobs")


async def test_interrupt_then_resume(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(create_rate=8.0, job_seconds=(0.5, 1.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(40))
    args = ("--journal", "c.db", "--endpoint-url", emu.url, "--output", "json", *FAST_POLL)

    process = await cli.start("run", "campaign.jsonl", *args)
    await wait_for_creates(emu, 5, process)
    process.send_signal(signal.SIGINT)
    first = await finish_async(process)

    assert first.code == 130, first
    assert first.json()["interrupted"] is True
    assert f"asyncjobs --endpoint-url {emu.url} run --journal c.db" in first.stderr
    assert emu.stats()["jobs_total"] < 40

    second = await cli("run", *args)

    assert second.code == 0, second
    assert second.json()["counts"]["succeeded"] == 40
    stats = emu.stats()
    assert stats["duplicate_jobs"] == 0
    assert stats["jobs_total"] == 40


async def test_sigterm_also_stops_gracefully(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(create_rate=5.0, job_seconds=(0.5, 1.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(30))

    process = await cli.start(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, *FAST_POLL
    )
    await wait_for_creates(emu, 3, process)
    process.send_signal(signal.SIGTERM)
    result = await finish_async(process)

    assert result.code == 130, result
    assert "SIGTERM" in result.stderr
    status = await cli("status", "--journal", "c.db", "--output", "json")
    assert status.json()["counts"]["submitting"] == 0  # in-flight creates were journaled


async def test_no_wait_then_track(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(job_seconds=(1.5, 2.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(6))
    args = ("--journal", "c.db", "--endpoint-url", emu.url, "--output", "json", *FAST_POLL)

    submitted = await cli("run", "campaign.jsonl", *args, "--no-wait")

    assert submitted.code == 0, submitted
    counts = submitted.json()["counts"]
    assert counts["pending"] == counts["submitting"] == 0
    assert counts["submitted"] + counts["running"] + counts["succeeded"] == 6
    assert f"asyncjobs --endpoint-url {emu.url} run --journal c.db" in submitted.stderr

    tracked = await cli("run", *args)

    assert tracked.code == 0, tracked
    assert tracked.json()["counts"]["succeeded"] == 6
    assert emu.stats()["jobs_total"] == 6


async def test_json_logs_on_stderr(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", [spec("only", "bedrock")])

    result = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url,
        "--log-format", "json", "--debug", *FAST_POLL,
    )  # fmt: skip

    assert result.code == 0, result
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"asyncjobs.job.submitted", "asyncjobs.job.final", "asyncjobs.progress"} <= {
        e["event"] for e in events
    }
    assert [e for e in events if e["event"] == "asyncjobs.progress"][-1]["final"] == 1
    assert all(e["level"] in {"debug", "info", "warning", "error"} for e in events)
    assert SECRET not in result.stdout + result.stderr


async def test_second_signal_exits_at_once_and_resume_creates_nothing_twice(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # creates answered after a second, at a given pace of 8/s: several are in flight whenever the
    # first signal comes, and the graceful stop waits for them, so the second signal meets it
    emu = await make_emulator(create_rate=8.0, latency=(1.0, 1.5), job_seconds=(0.3, 0.6))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(30))
    args = (
        "--journal", "c.db", "--endpoint-url", emu.url, "--output", "json", "--create-rate", "8", *FAST_POLL,
    )  # fmt: skip

    process = await cli.start("run", "campaign.jsonl", *args)
    await wait_for_creates(emu, 4, process)
    process.send_signal(signal.SIGINT)
    await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    first = await finish_async(process)

    assert first.code == 130, first
    assert "exiting now" in first.stderr

    second = await cli("run", *args)

    assert second.code == 0, second
    assert second.json()["counts"]["succeeded"] == 30
    assert emu.stats()["duplicate_jobs"] == 0
    assert emu.stats()["jobs_total"] == 30


async def test_a_journal_in_use_exits_2(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator(job_seconds=(30.0, 30.0))
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))
    args = ("--journal", "c.db", "--endpoint-url", emu.url)
    process = await cli.start("run", "campaign.jsonl", *args)
    await wait_for_creates(emu, 2, process)

    second = await cli("run", "campaign.jsonl", *args)

    process.send_signal(signal.SIGINT)
    assert (await finish_async(process)).code == 130
    assert second.code == 2, second
    assert "in use by another asyncjobs process" in second.stderr
    assert emu.stats()["jobs_total"] == 2


async def test_no_credentials_exit_2(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))
    del cli.env["AWS_ACCESS_KEY_ID"], cli.env["AWS_SECRET_ACCESS_KEY"]

    result = await cli("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url)

    assert result.code == 2, result
    assert result.stderr.startswith("asyncjobs: error: no AWS credentials found")
    assert journal_files(tmp_path / "c.db") == []
    assert emu.stats()["requests"] == {}


async def test_an_error_that_stops_the_run_exits_3_and_says_how_to_resume(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))
    https = emu.url.replace("http://", "https://")  # a TLS handshake with a plain HTTP server fails

    result = await cli("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", https)

    assert result.code == 3, result
    *_, hint, error = result.stderr.strip().splitlines()
    # the hint repeats where to connect: retyped without it, it would go to the real endpoint
    assert hint.endswith(f"resume with: asyncjobs --endpoint-url {https} run --journal c.db")
    assert error.startswith("asyncjobs: error: SSLError")
    assert "Traceback" not in result.stderr
    assert (tmp_path / "c.db").exists()
    assert emu.stats()["jobs_total"] == 0


@pytest.mark.parametrize(
    ("fault", "after", "code", "message"),
    [
        ("access-denied", 0, "AccessDeniedException", "is not authorized to perform"),
        ("expired-token", 3, "ExpiredTokenException", "security token included in the request is expired"),
    ],
)
async def test_access_refused_exits_3_and_the_journal_resumes(
    cli: Cli,
    make_emulator: MakeEmulator,
    tmp_path: Path,
    fault: str,
    after: int,
    code: str,
    message: str,
) -> None:
    emu = await make_emulator(auth_fault=fault, auth_fault_after=after)
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(6))
    args = ("--journal", "c.db", "--endpoint-url", emu.url, "--output", "json", *FAST_POLL)

    result = await cli("run", "campaign.jsonl", *args)

    assert result.code == 3, result
    *_, hint, error = result.stderr.strip().splitlines()
    assert hint.endswith(f"resume with: asyncjobs --endpoint-url {emu.url} run --journal c.db")
    assert error.startswith(f"asyncjobs: error: {code}: ")
    assert message in error
    assert "Traceback" not in result.stderr
    created = emu.stats()["jobs_total"]
    assert created <= after
    # the same summary document as any other exit, with the error that stopped the run
    doc = result.json()
    assert doc["error"]["code"] == code
    assert message in doc["error"]["message"]
    assert doc["total"] == 6
    assert doc["counts"]["pending"] == 6 - created
    assert doc["interrupted"] is False
    assert doc["api"]["creates"] == created
    assert set(doc) >= {"campaign", "journal", "elapsed_seconds", "unstoppable"}
    # nothing was lost or given up: the jobs not created wait in the journal, pending
    status = await cli("status", "--journal", "c.db", "--output", "json")
    assert status.code == 0, status
    counts = status.json()["counts"]
    assert counts["pending"] == 6 - created
    assert counts["submitted"] + counts["running"] + counts["succeeded"] == created
    assert all(job["state"] not in {"failed", "rejected"} for job in status.json()["jobs"])

    emu.configure(auth_fault=None)
    resumed = await cli("run", *args)

    assert resumed.code == 0, resumed
    assert resumed.json()["counts"]["succeeded"] == 6
    stats = emu.stats()
    assert stats["jobs_total"] == 6
    assert stats["duplicate_jobs"] == 0
