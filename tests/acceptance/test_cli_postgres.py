"""The command on a PostgreSQL journal: ``run``, ``status`` (with ``--watch`` and ``--events``) and
``cancel`` against a real server, with a password in the URI that must never show (output, errors,
resume hints, ``ps``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import MakeEmulator
from tests.support.cli import SECRET, Cli, finish_async
from tests.support.presets import FAST_POLL
from tests.support.specs import mixed_specs, spec, write_campaign

#: The server trusts local connections: the password is carried, never checked, and must not leak.
PASSWORD = "pg-PASSWORD-7c1e9a2b-never-show-me"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def with_password(uri: str) -> str:
    """pgserver's ``postgresql://postgres:@/db?host=/dir`` with :data:`PASSWORD` as the password."""
    assert uri.startswith("postgresql://postgres:@"), uri
    return uri.replace("postgres:@", f"postgres:{PASSWORD}@", 1)


async def first_job(emu: Emulator, process: asyncio.subprocess.Process) -> None:
    """Return once the emulator has a job of the run (it is past parsing its options), or it ended."""
    while emu.stats()["jobs_total"] == 0 and process.returncode is None:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.05)


async def process_title(pid: int) -> str:
    """What ``ps`` shows of process ``pid``: its command line as the kernel has it."""
    raw = await anyio.Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.replace(b"\0", b" ").decode()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert SECRET not in text


async def test_run_status_and_a_changed_spec(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator()
    uri = with_password(postgres_database("cli"))
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(6))

    ran = await cli(
        "run", str(campaign), "--journal", uri, "--campaign-name", "c1",
        "--endpoint-url", emu.url, "--output", "json", *FAST_POLL,
    )  # fmt: skip

    assert ran.code == 0, ran
    doc = ran.json()
    assert doc["counts"]["succeeded"] == 6
    assert doc["campaign"] == "c1"
    assert "postgres:***@" in doc["journal"]
    assert emu.stats()["jobs_total"] == 6
    assert emu.stats()["duplicate_jobs"] == 0

    # status from the environment variable, the campaign found as the database's only one
    cli.env["ASYNCJOBS_JOURNAL"] = uri
    status = await cli("status", "--output", "json")
    assert status.code == 0, status
    assert status.json()["counts"]["succeeded"] == 6
    assert [row["state"] for row in status.json()["jobs"]] == ["succeeded"] * 6

    # a second worker whose campaign file differs: refused before anything is sent
    changed = mixed_specs(6)
    changed[0] = spec(changed[0]["id"], "bedrock", modelId="another-model")
    write_campaign(tmp_path / "changed.jsonl", changed)
    refused = await cli("run", "changed.jsonl", "--campaign-name", "c1", "--endpoint-url", emu.url)
    assert refused.code == 2, refused
    assert emu.stats()["jobs_total"] == 6

    assert_no_secret(ran.stdout, ran.stderr, status.stdout, status.stderr, refused.stdout, refused.stderr)


async def test_status_names_the_campaign_when_the_database_holds_several(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator()
    uri = with_password(postgres_database("several"))
    for name, count in (("a", 2), ("b", 3)):
        campaign = write_campaign(tmp_path / f"{name}.jsonl", mixed_specs(count))
        ran = await cli(
            "run", str(campaign), "--journal", uri, "--campaign-name", name, "--endpoint-url", emu.url,
            *FAST_POLL,
        )  # fmt: skip
        assert ran.code == 0, ran

    unnamed = await cli("status", "--journal", uri, "--output", "json")
    named = await cli("status", "--journal", uri, "--campaign-name", "b", "--output", "json")

    watch_unnamed = await cli("status", "--journal", uri, "--watch", "--output", "json")
    watch_named = await cli("status", "--journal", uri, "--campaign-name", "b", "--watch", "--output", "json")
    events_named = await cli(
        "status", "--journal", uri, "--campaign-name", "a", "--job", "job-001", "--events", "--output", "json"
    )

    for refused in (unnamed, watch_unnamed):
        assert refused.code == 2, refused
        assert "--campaign-name" in refused.stderr
    assert named.code == 0, named
    assert named.json()["total"] == 3
    assert watch_named.code == 0, watch_named
    (line,) = watch_named.stdout.splitlines()  # complete at once: one refresh
    assert (json.loads(line)["campaign"], json.loads(line)["total"], json.loads(line)["complete"]) == (
        "b",
        3,
        True,
    )
    assert events_named.code == 0, events_named
    assert events_named.json()["campaign"] == "a"
    assert events_named.json()["events"][-1]["to"] == "succeeded"
    results = (unnamed, named, watch_unnamed, watch_named, events_named)
    assert_no_secret(*(text for r in results for text in (r.stdout, r.stderr)))


async def test_status_watch_and_events_follow_workers_on_postgres(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    jobs = 8  # created over a few seconds while the pace is found, each running 2-3 s: time to watch
    emu = await make_emulator(job_seconds=(2.0, 3.0))
    uri = with_password(postgres_database("watch"))
    campaign = write_campaign(
        tmp_path / "campaign.jsonl", [spec(f"job-{i:03d}", "bedrock") for i in range(jobs)]
    )
    run = await cli.start(
        "run", str(campaign), "--journal", uri, "--campaign-name", "w", "--endpoint-url", emu.url,
        "--poll-interval", "0.3",
    )  # fmt: skip
    await first_job(emu, run)
    assert run.returncode is None, await finish_async(run)

    # the campaign found as the database's only one; the job's history read while the run works on it
    watching = await cli.start("status", "--journal", uri, "--watch", "0.2", "--output", "json")
    midway = await cli("status", "--journal", uri, "--campaign-name", "w", "--job", "job-000", "--events")
    watched = await finish_async(watching)
    ran = await finish_async(run)
    after = await cli(
        "status", "--journal", uri, "--job", "job-000", "--events", "--output", "json",
        "--query", "events[].to",
    )  # fmt: skip

    assert ran.code == 0, ran
    assert watched.code == 0, watched
    docs = [json.loads(line) for line in watched.stdout.splitlines()]
    assert len(docs) >= 2  # it redrew while the run worked
    assert all((doc["campaign"], doc["total"]) == ("w", jobs) for doc in docs)
    assert all(sum(doc["counts"].values()) == jobs for doc in docs)
    assert all(doc["journal"] == uri.replace(PASSWORD, "***") for doc in docs)
    assert [doc["complete"] for doc in docs] == [False] * (len(docs) - 1) + [True]
    assert docs[-1]["counts"]["succeeded"] == jobs
    assert docs[-1]["keys"] == [{"key": docs[-1]["keys"][0]["key"], "pending": 0, "active": 0, "final": jobs}]
    assert midway.code == 0, midway
    events = midway.json()["events"]
    assert (events[0]["from"], events[0]["to"]) == ("pending", "submitting")
    assert after.code == 0, after
    assert (after.json()[0], after.json()[-1]) == ("submitting", "succeeded")
    assert emu.stats()["duplicate_jobs"] == 0
    assert_no_secret(*(text for r in (ran, watched, midway, after) for text in (r.stdout, r.stderr)))


async def test_the_password_is_not_in_the_process_title(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator(job_seconds=(2.0, 2.0))
    uri = with_password(postgres_database("title"))
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))

    process = await cli.start(
        "run", str(campaign), "--journal", uri, "--campaign-name", "t", "--endpoint-url", emu.url, *FAST_POLL
    )
    try:
        await first_job(emu, process)
        title = await process_title(process.pid)
    finally:
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "--journal" in title
    assert PASSWORD not in title
    assert_no_secret(out.decode(), err.decode())


async def test_cancel_on_postgres(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator()
    uri = with_password(postgres_database("cancel"))
    campaign = write_campaign(tmp_path / "campaign.jsonl", mixed_specs(4))
    # --no-wait: the jobs are left running at the service, for cancel to stop
    ran = await cli(
        "run", str(campaign), "--journal", uri, "--campaign-name", "x", "--endpoint-url", emu.url,
        "--no-wait", *FAST_POLL,
    )  # fmt: skip
    assert ran.code == 0, ran

    cancelled = await cli(
        "cancel", "--journal", uri, "--campaign-name", "x", "--endpoint-url", emu.url, "--output", "json"
    )

    assert cancelled.code == 0, cancelled
    assert cancelled.json()["counts"].get("pending", 0) == 0
    assert_no_secret(cancelled.stdout, cancelled.stderr)
