"""The SQLite journal under stress: contention, changed specs, newer schemas, failing writes.

Each error must be clear (its own class, a message that says what to do) and must
leave the journal as it was. A write that fails mid-campaign must stop the run with
:class:`~asyncjobs.errors.JournalUnwritable`, lose no ARN the service returned, and
the campaign must resume once writes work again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncjobs.errors import JournalLocked, JournalSchemaError, JournalUnwritable, SpecChanged
from asyncjobs.journal import open_journal
from asyncjobs.journal.sqlite import SCHEMA_VERSION, SQLiteJournal
from asyncjobs.model import JobSpec, JobState, Service
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import MakeEmulator
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import alternating_specs

REPO = Path(__file__).resolve().parents[2]
QUICK = Settings(**{**EMULATOR_RUN, "poll_interval": 0.3})


pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment


def holder(path: Path) -> subprocess.Popen[str]:
    """Another process that opens the journal, says "open" and holds it until killed."""
    code = textwrap.dedent(
        f"""
        import anyio, sys
        from asyncjobs.journal import open_journal
        async def main():
            journal = await open_journal({str(path)!r})
            print("open", flush=True)
            await anyio.sleep(3600)
        anyio.run(main)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "open"
    return process


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    path = tmp_path / "c.db"
    process = holder(path)
    try:
        yield path, process
    finally:
        process.kill()
        process.wait()


async def test_second_process_gets_journal_locked(held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, process = held

    with pytest.raises(JournalLocked) as caught:
        await open_journal(path)

    assert str(path) in caught.value.message
    assert f"in use by another asyncjobs process (pid {process.pid})" in caught.value.message


async def test_second_open_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    async with await open_journal(tmp_path / "c.db") as journal:
        await journal.add_specs(alternating_specs(2))
        with pytest.raises(JournalLocked, match="in use by another asyncjobs process"):
            await open_journal(tmp_path / "c.db")
        assert journal.counts().total == 2  # the holder is unaffected


async def test_a_killed_holder_releases_the_journal(held: tuple[Path, subprocess.Popen[str]]) -> None:
    path, process = held
    process.send_signal(signal.SIGKILL)
    process.wait()

    async with await open_journal(path) as journal:
        assert journal.counts().total == 0


async def test_changed_spec_names_the_id_and_changes_nothing(tmp_path: Path) -> None:
    original = alternating_specs(3)
    async with await open_journal(tmp_path / "c.db") as journal:
        await journal.add_specs(original)
        changed = [
            *original[:1],
            JobSpec("s1", Service.BEDROCK, {**original[1].request, "modelId": "x"}),
            *alternating_specs(5)[3:],
        ]

        with pytest.raises(SpecChanged) as caught:
            await journal.add_specs(changed)

        assert caught.value.spec_id == "s1"
        assert "'s1'" in caught.value.message
        assert journal.counts().total == 3
        assert [j.id async for j in journal.jobs()] == ["s0", "s1", "s2"]
        assert (await journal.get("s1")) is not None
        assert (await journal.get("s1")).request == original[1].request  # type: ignore[union-attr]


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 1000])
async def test_newer_schema_is_refused(tmp_path: Path, version: int) -> None:
    path = tmp_path / "c.db"
    async with await open_journal(path) as journal:
        await journal.add_specs(alternating_specs(2))
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    before = path.read_bytes()

    with pytest.raises(JournalSchemaError) as caught:
        await open_journal(path)

    assert f"schema version {version} is newer" in caught.value.message
    assert "upgrade asyncjobs" in caught.value.message
    assert path.read_bytes() == before
    async with await open_journal(path.with_name("other.db")):  # the lock of a refused open was released
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    async with await open_journal(path) as journal:
        assert journal.counts().total == 2


async def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a database, it is a grocery list\n" * 100)

    with pytest.raises(JournalSchemaError, match="not an asyncjobs journal"):
        await open_journal(path)

    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalSchemaError, match="not an asyncjobs journal"):
        await open_journal(tmp_path / "other.db")


def full_disk_after(writes: int) -> type[sqlite3.Connection]:
    """A real SQLite connection on which every journal write of state changes after the first
    ``writes`` fails as SQLite fails on a full disk (SQLITE_FULL)."""
    done = 0

    class FullDisk(sqlite3.Connection):
        def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
            nonlocal done
            if sql.startswith("UPDATE jobs SET state"):
                done += 1
                if done > writes:
                    error = sqlite3.OperationalError("database or disk is full")
                    error.sqlite_errorcode = sqlite3.SQLITE_FULL
                    raise error
            return super().executemany(sql, parameters)

    return FullDisk


async def test_unwritable_mid_campaign_stops_loses_no_arn_and_resumes(
    tmp_path: Path, make_emulator: MakeEmulator
) -> None:
    """An injected SQLITE_FULL once creates are under way; then the disk "frees up" and we resume."""
    emu = await make_emulator(job_seconds=(0.3, 0.6))
    path = tmp_path / "c.db"
    async with await SQLiteJournal.open(path, connection_class=full_disk_after(6)) as journal:
        await journal.add_specs(alternating_specs(12))
        with anyio.fail_after(60), pytest.raises(BaseException) as caught:
            await Campaign(journal, endpoint_url=emu.url, region="us-east-1", settings=QUICK).run()
    unwritable = [e for e in _leaves(caught.value) if isinstance(e, JournalUnwritable)]
    assert unwritable, caught.value
    assert "database or disk is full" in unwritable[0].message
    assert str(path) in unwritable[0].message
    created_before = {j["arn"] for j in emu.jobs()}
    assert created_before, "the fault struck before any create: move it later"

    async with await open_journal(path) as journal:
        with anyio.fail_after(60):
            summary = await Campaign(journal, endpoint_url=emu.url, region="us-east-1", settings=QUICK).run()
        arns = {j.arn async for j in journal.jobs()}

    assert summary.counts[JobState.SUCCEEDED] == 12
    stats = emu.stats()
    assert stats["duplicate_jobs"] == 0
    assert stats["jobs_total"] == 12
    assert created_before <= arns  # every ARN the service had returned before the failure is journaled
    assert {j["arn"] for j in emu.jobs()} == arns


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
