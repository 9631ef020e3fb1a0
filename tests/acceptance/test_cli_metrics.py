"""``run --metrics-port``, ``status --watch`` and ``status --job ID --events``: the real command
as a subprocess against the emulator, scraped with a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MakeEmulator
from tests.support.cli import Cli, finish_async
from tests.support.specs import MODEL, spec, write_campaign

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
UNFINISHED = ("pending", "submitting", "submitted", "running")


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, have), value in samples.items() if n == name and wanted <= have)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(have)[label] for (n, have) in samples if n == name and label in dict(have)}


async def scrape(url: str) -> Samples:
    # a blocking client in a thread: the emulator runs in this test's event loop
    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    return parse(await asyncio.to_thread(get))


class Stderr:
    """A subprocess's stderr, read as it comes (so the pipe never fills), lines kept."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while line := await self._stream.readline():
            self.lines.append(line.decode(errors="replace"))

    async def wait_for(self, pattern: str, within: float = 60) -> re.Match[str]:
        for _ in range(int(within / 0.05)):
            for line in self.lines:
                if found := re.search(pattern, line):
                    return found
            if self.task.done():
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} on stderr:\n{''.join(self.lines)}")


def bedrock_specs(n: int) -> Iterable[dict[str, object]]:
    return [spec(f"job-{i:03d}", "bedrock") for i in range(n)]


async def test_metrics_follow_the_run_and_match_the_emulator(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    jobs = 24
    # a create rate that the engine must discover (throttles), and jobs long enough to be watched
    emu = await make_emulator(create_rate=4.0, job_seconds=(1.0, 2.0))
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(jobs))
    cli = Cli(tmp_path)
    run = await cli.start(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url,
        "--poll-interval", "0.5", "--output", "json", "--metrics-port", "0", "--metrics-linger", "60",
    )  # fmt: skip
    assert run.stderr is not None
    stderr = Stderr(run.stderr)
    final: Samples | None = None
    try:
        found = await stderr.wait_for(r"metrics: (http://127\.0\.0\.1:\d+/metrics)")
        url = found.group(1)
        accepted_seen: list[float] = []
        for _ in range(1200):
            samples = await scrape(url)
            accepted = total(samples, "asyncjobs_create_calls_total", outcome="accepted")
            assert accepted >= (accepted_seen[-1] if accepted_seen else 0)  # a counter only goes up
            accepted_seen.append(accepted)
            states = total(samples, "asyncjobs_jobs", campaign="c")
            if states:  # the gauges are set from the first refresh on: the states add up to the total
                assert states == jobs
                if not any(total(samples, "asyncjobs_jobs", state=s) for s in UNFINISHED):
                    final = samples
                    break
            await asyncio.sleep(0.1)
        assert final is not None, "the jobs never all showed final"
        await stderr.wait_for("serving the final figures")
        run.send_signal(signal.SIGINT)  # ends the linger: the run's exit code stands
    finally:
        if final is None and run.returncode is None:
            run.kill()  # failed before the end: do not wait out the linger
        assert run.stdout is not None
        out = await asyncio.wait_for(run.stdout.read(), 90)
        code = await asyncio.wait_for(run.wait(), 90)
        await stderr.task
    assert code == 0, f"exit {code}\n{out.decode()}\n{''.join(stderr.lines)}"
    assert json.loads(out)["counts"]["succeeded"] == jobs

    assert len(set(accepted_seen)) >= 3, accepted_seen  # the creates were seen going up
    stats = emu.stats()
    requests = stats["requests"]
    creates = "CreateModelInvocationJob"
    assert total(final, "asyncjobs_create_calls_total") == requests[creates]
    assert (
        total(final, "asyncjobs_create_calls_total", outcome="accepted") == stats["jobs_created"]["bedrock"]
    )
    assert total(final, "asyncjobs_create_calls_total", outcome="throttled") == stats["throttled"].get(
        creates, 0
    )
    assert stats["throttled"].get(creates, 0) > 0  # the pace was discovered the hard way
    assert total(final, "asyncjobs_create_latency_seconds_count") == requests[creates]
    for operation in ("ListModelInvocationJobs", "GetModelInvocationJob"):
        seen = total(final, "asyncjobs_status_reads_total", service="bedrock", operation=operation)
        assert seen == requests.get(operation, 0), operation
    assert total(final, "asyncjobs_status_reads_total") > 0
    assert total(final, "asyncjobs_jobs", state="succeeded") == jobs
    assert total(final, "asyncjobs_job_duration_seconds_count", service="bedrock") == jobs
    assert label_values(final, "asyncjobs_quota_cap", "key") == {f"bedrock:{MODEL}"}
    assert total(final, "asyncjobs_create_rate", service="bedrock") > 0
    assert label_values(final, "asyncjobs_create_calls_total", "campaign") == {"c"}


async def test_a_metrics_port_in_use_is_a_usage_error(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(2))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await Cli(tmp_path)(
            "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url,
            "--metrics-port", str(port),
        )  # fmt: skip

    assert result.code == 2, result
    assert result.error_lines == [
        f"asyncjobs: error: --metrics-port {port}: cannot listen on 127.0.0.1: Address already in use"
    ]
    assert emu.stats()["requests"] == {}
    assert not (tmp_path / "c.db").exists()


async def test_metrics_beyond_loopback_are_warned_of(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(2))

    result = await Cli(tmp_path)(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.3",
        "--metrics-port", "0", "--metrics-host", "0.0.0.0",
    )  # fmt: skip

    assert result.code == 0, result
    assert re.search(r"asyncjobs: metrics: http://0\.0\.0\.0:\d+/metrics", result.stderr), result
    assert "beyond the loopback interface" in result.stderr


async def test_status_watch_follows_a_run_that_holds_the_journal(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    jobs = 12  # created over a few seconds while the pace is found, each running 2-3 s: time to watch
    emu = await make_emulator(job_seconds=(2.0, 3.0))
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(jobs))
    cli = Cli(tmp_path)
    run = await cli.start(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.3"
    )
    for _ in range(400):
        if emu.stats()["jobs_total"] or run.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert run.returncode is None, await finish_async(run)

    watched = await cli("status", "--journal", "c.db", "--watch", "0.2", "--output", "json", within=90)
    ran = await finish_async(run)

    assert ran.code == 0, ran
    assert watched.code == 0, watched
    docs = [json.loads(line) for line in watched.stdout.splitlines()]
    assert len(docs) >= 2  # it redrew while the run worked
    assert all(doc["total"] == jobs for doc in docs)
    assert all(sum(doc["counts"].values()) == jobs for doc in docs)
    assert [doc["complete"] for doc in docs] == [False] * (len(docs) - 1) + [True]
    assert docs[-1]["counts"]["succeeded"] == jobs
    assert docs[-1]["keys"] == [{"key": docs[-1]["keys"][0]["key"], "pending": 0, "active": 0, "final": jobs}]
    assert any(doc["counts"]["running"] + doc["counts"]["submitted"] for doc in docs[:-1])


async def test_status_watch_ends_on_sigint_with_130(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(job_seconds=(30.0, 30.0))
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(2))
    cli = Cli(tmp_path)
    submitted = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--no-wait"
    )
    assert submitted.code == 0, submitted

    watch = await cli.start("status", "--journal", "c.db", "--watch", "--output", "json")
    assert watch.stdout is not None
    first = json.loads(await asyncio.wait_for(watch.stdout.readline(), 60))
    watch.send_signal(signal.SIGINT)
    result = await finish_async(watch)

    assert first["complete"] is False
    assert first["counts"]["submitted"] + first["counts"]["running"] == 2
    assert result.code == 130, result
    assert "Traceback" not in result.stderr


async def test_status_job_events_show_a_jobs_history(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(fail_rate=1.0)
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(1))
    cli = Cli(tmp_path)
    ran = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.3",
        "--resubmit-failed", "1",
    )  # fmt: skip
    assert ran.code == 1, ran

    result = await cli("status", "--journal", "c.db", "--job", "job-000", "--events", "--output", "json")
    table = await cli("status", "--journal", "c.db", "--job", "job-000", "--events", "--output", "table")

    assert result.code == 0, result
    doc = result.json()
    assert doc["job"]["id"] == "job-000"
    assert doc["job"]["state"] == "failed"
    events = doc["events"]
    # two attempts: each claimed, created, and seen failed; the first one resubmitted in between
    path = [(e["from"], e["to"]) for e in events]
    assert path[0] == ("pending", "submitting")
    assert path[-1][1] == "failed"
    assert [e["attempt"] for e in events][-1] == 2
    assert sum(1 for e in events if e["to"] == "submitting") == 2
    assert any(e["from"] != "pending" and e["to"] == "pending" for e in events)  # the resubmission
    assert all(e["time"].endswith("+00:00") for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert table.code == 0, table
    assert "job-000" in table.stdout
    assert "submitting" in table.stdout


async def test_status_of_an_unknown_job_is_a_usage_error(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(1))
    cli = Cli(tmp_path)
    ran = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.3"
    )
    assert ran.code == 0, ran

    events = await cli("status", "--journal", "c.db", "--job", "nope", "--events")
    row = await cli("status", "--journal", "c.db", "--job", "nope")
    alone = await cli("status", "--journal", "c.db", "--events")

    for result in (events, row):
        assert result.code == 2, result
        assert result.error_lines == ["asyncjobs: error: c.db: no job with id 'nope'"]
    assert alone.code == 2
    assert "--events needs --job ID" in alone.stderr


@pytest.mark.parametrize("output", ["json", "table"])
async def test_status_watch_of_a_complete_campaign_shows_it_once(
    tmp_path: Path, make_emulator: MakeEmulator, output: str
) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", bedrock_specs(3))
    cli = Cli(tmp_path)
    ran = await cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emu.url, "--poll-interval", "0.3"
    )
    assert ran.code == 0, ran

    result = await cli("status", "--journal", "c.db", "--watch", "--output", output)

    assert result.code == 0, result
    if output == "json":
        (line,) = result.stdout.splitlines()
        assert json.loads(line)["complete"] is True
    else:
        assert "3 jobs, complete" in result.stdout
