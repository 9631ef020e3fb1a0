"""The command on a PostgreSQL journal: ``run``, ``status`` and ``cancel`` against a real server,
with a password in the URI that must never show (output, errors, resume hints, ``ps``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import MakeEmulator
from tests.support.cli import SECRET, Cli
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

    assert unnamed.code == 2, unnamed
    assert "--campaign-name" in unnamed.stderr
    assert named.code == 0, named
    assert named.json()["total"] == 3
    assert_no_secret(unnamed.stdout, unnamed.stderr, named.stdout, named.stderr)


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
