"""The worker that sweeps a job kind for every worker is SIGKILLed: another takes the kind up within
a sweep lease and a renewal of its death, whatever ``--poll-interval`` (here 30 s: before, the
lease lasted three poll intervals, so the kind went unswept for up to 90 s), and the campaign ends
with nothing lost or created twice.

The times compared are the database's own (``asyncjobs_sweeps.expires``, ``clock_timestamp()``),
counted in sweep leases: the lease is taken at ``expires - LEASE_SECONDS``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg
import pytest

from asyncjobs.scheduler.sweeps import LEASE_SECONDS
from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import audit
from tests.reliability.workers import load_view
from tests.support.cli import cli_env, finish, start_cli
from tests.support.specs import distinct_specs, write_campaign

SPECS = 16
#: Jobs that outlast the time it takes to see who sweeps and kill it.
EMULATOR = ("--job-seconds", "2.0,3.0", "--seed", "17")
RUN_ARGS = (
    "--campaign-name", "c", "--poll-interval", "30", "--lease-seconds", "3",
    "--max-running", "bedrock=2", "--max-running", "personalize=2", "--output", "json",
)  # fmt: skip


def sweeper(uri: str, kind: str) -> tuple[str, float, float] | None:
    """The kind's sweep lease: its owner (``host:pid:random``), when it expires, and the database's now."""
    with psycopg.connect(uri, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('asyncjobs_sweeps')").fetchone() == (None,):
            return None  # no worker has made the tables yet
        row = conn.execute(
            "SELECT owner, expires, extract(epoch from clock_timestamp())::float8 FROM asyncjobs_sweeps"
            " WHERE campaign = 'c' AND kind = %s",
            (kind,),
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def pid_of(owner: str) -> int:
    return int(owner.split(":")[1])


def wait_for(what: Callable[[], object], running: list[subprocess.Popen[bytes]], within: float = 60) -> None:
    """Poll ``what`` until it is true; fail if one of ``running`` ends first, or after ``within`` s."""
    deadline = time.monotonic() + within
    while not what():
        assert all(p.poll() is None for p in running), "a worker ended first"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_sweepers_kind_is_swept_by_another_worker_within_a_lease_of_its_death(
    start_emulator: StartEmulator, workdir: Path, postgres_database: Callable[[str], str]
) -> None:
    uri = postgres_database("sweeps")
    emulator = start_emulator(*EMULATOR)
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(SPECS))
    args = ("run", str(campaign), "--journal", uri, "--endpoint-url", emulator.url, *RUN_ARGS)
    env = cli_env(workdir)
    workers = [start_cli(*args, cwd=workdir, env=env) for _ in range(2)]

    wait_for(lambda: sweeper(uri, "bedrock"), workers)
    lease = sweeper(uri, "bedrock")
    assert lease is not None
    (holder,) = [w for w in workers if w.pid == pid_of(lease[0])]
    (survivor,) = [w for w in workers if w is not holder]
    holder.kill()  # SIGKILL: its lease is not given up
    holder.communicate()
    dead = sweeper(uri, "bedrock")
    assert dead is not None
    dead_owner, dead_expires, killed_at = dead

    # (waiting longer than the bound asserted below, so that a miss shows by how much)
    wait_for(
        lambda: (now := sweeper(uri, "bedrock")) is not None and now[0] != dead_owner, [survivor], within=120
    )
    taken = sweeper(uri, "bedrock")
    assert taken is not None and pid_of(taken[0]) == survivor.pid
    taken_at = taken[1] - LEASE_SECONDS  # (at the latest: it may have been renewed since)
    assert dead_owner == lease[0]
    assert dead_expires - killed_at <= LEASE_SECONDS  # the dead lease ran on at most one lease
    assert taken_at - killed_at <= 2 * LEASE_SECONDS, taken_at - killed_at

    result = finish(survivor, timeout=150)
    assert result.code == 0, result
    assert result.json()["counts"]["succeeded"] == SPECS
    stats = emulator.stats()
    report = audit(anyio.run(load_view, uri, "c"), emulator.jobs(), stats)
    assert report.problems == [], report.problems
    assert report.duplicates == 0 and report.lost == 0
    assert stats["jobs_total"] == SPECS
