"""The journal under stress, through the real command.

- a second ``asyncjobs run`` on a journal in use exits 2 with a clear message, and the
  first run is not disturbed;
- a changed spec for a journaled id exits 2 naming the id, and nothing is sent;
- a journal from a newer asyncjobs exits 2 (``run`` and ``status``);
- a disk that fills up mid-campaign (a small tmpfs, filled by another file) stops the
  run with exit 3 and one clear line; once space is back, the same command resumes and
  the audit finds every ARN journaled and no duplicate.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from asyncjobs.campaign import read_campaign
from asyncjobs.errors import JournalError, JournalUnsafe
from asyncjobs.journal import open_journal
from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import audit, read_journal
from tests.support.cli import finish, run_cli, start_cli
from tests.support.presets import FAST_JSON
from tests.support.specs import distinct_specs, write_campaign


def test_second_runner_on_a_journal_in_use(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator("--job-seconds", "1,2", "--seed", "3")
    write_campaign(workdir / "campaign.jsonl", distinct_specs(10))
    args = ("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url, *FAST_JSON)
    first = start_cli(*args, cwd=workdir)
    try:
        _wait_for(lambda: emulator.stats()["jobs_total"] > 0, first)

        second = run_cli(*args, cwd=workdir)

        assert second.code == 2, second
        assert second.error_lines == [
            f"asyncjobs: error: journal c.db is in use by another asyncjobs process (pid {first.pid})"
        ]
        status = run_cli("status", "--journal", "c.db", "--output", "json", cwd=workdir)
        assert status.code == 0, status  # a read-only snapshot is still available
        assert status.json()["total"] == 10
    finally:
        result = finish(first)
    assert result.code == 0, result
    assert result.json()["counts"]["succeeded"] == 10
    assert emulator.stats()["duplicate_jobs"] == 0
    assert audit(read_journal(workdir / "c.db"), emulator.jobs(), emulator.stats()).problems == []


def test_changed_spec_names_the_id(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(*QUICK)
    specs = distinct_specs(4)
    write_campaign(workdir / "campaign.jsonl", specs)
    args = ("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url, *FAST_JSON)
    assert run_cli(*args, "--no-wait", cwd=workdir).code == 0
    before = read_journal(workdir / "c.db")
    requests = emulator.stats()["requests"]
    specs[2]["request"]["roleArn"] = "arn:aws:iam::123456789012:role/Changed"
    write_campaign(workdir / "campaign.jsonl", specs)

    result = run_cli(*args, cwd=workdir)

    assert result.code == 2, result
    assert len(result.error_lines) == 1, result
    assert "campaign.jsonl:3" in result.stderr
    assert f"spec {specs[2]['id']!r} differs from the one already in the journal" in result.stderr
    assert emulator.stats()["requests"] == requests
    after = read_journal(workdir / "c.db")
    assert (after.jobs, after.events) == (before.jobs, before.events)


def test_journal_from_a_newer_asyncjobs(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(*QUICK)
    write_campaign(workdir / "campaign.jsonl", distinct_specs(2))
    args = ("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url, *FAST_JSON)
    anyio.run(_new_journal, workdir / "c.db")
    with sqlite3.connect(workdir / "c.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    requests = emulator.stats()["requests"]

    for command in (args, ("status", "--journal", "c.db")):
        result = run_cli(*command, cwd=workdir)
        assert result.code == 2, result
        assert len(result.error_lines) == 1, result
        assert "schema version 99 is newer than this asyncjobs supports" in result.stderr
    assert emulator.stats()["requests"] == requests


# ----------------------------------------------------------------------------- a full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root and mount; skipped where that is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 16, 512):  # big chunks, then the last partial ones
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * size):
                    pass
    probe = directory / "probe"
    try:
        probe.write_bytes(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the disk is not full")
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe.unlink()
    return filler


def test_disk_full_mid_campaign_then_resume(
    start_emulator: StartEmulator, workdir: Path, small_disk: Path
) -> None:
    emulator = start_emulator("--job-seconds", "1,2", "--seed", "5", "--create-rate", "4")
    write_campaign(workdir / "campaign.jsonl", distinct_specs(30))
    journal = small_disk / "c.db"
    args = ("run", "campaign.jsonl", "--journal", str(journal), "--endpoint-url", emulator.url, *FAST_JSON)
    runner = start_cli(*args, cwd=workdir)
    _wait_for(lambda: emulator.stats()["jobs_total"] >= 5, runner)

    filler = fill(small_disk)
    stopped = finish(runner)

    assert stopped.code == 3, stopped
    assert stopped.error_lines[-1] == (
        f"asyncjobs: error: journal {journal} cannot be written: database or disk is full"
    ), stopped
    assert "Traceback" not in stopped.stderr
    created = emulator.stats()["jobs_total"]
    assert created < 30 or emulator.stats()["running"], "the campaign ended before the disk filled"

    filler.unlink()
    resumed = run_cli(*args, cwd=workdir)

    assert resumed.code == 0, resumed
    assert resumed.json()["counts"]["succeeded"] == 30
    checked = audit(read_journal(journal), emulator.jobs(), emulator.stats())
    assert checked.problems == []  # every ARN the service returned is in the journal, none twice
    assert emulator.stats()["jobs_total"] == 30


async def _new_journal(path: Path) -> None:
    async with await open_journal(path) as journal:
        await journal.add_specs(read_campaign(path.with_name("campaign.jsonl")))


def _wait_for(condition: object, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the runner exited ({process.returncode}) before the condition held")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
    os.sched_yield()


def test_the_python_api_refuses_journal_files_it_cannot_trust(tmp_path: Path) -> None:
    # what the command refuses with exit 2 is a JournalError for library users: JournalUnsafe
    loose = tmp_path / "loose.db"
    loose.write_bytes(b"")
    os.chmod(loose, 0o646)
    (tmp_path / "link.db").symlink_to("elsewhere.db")

    with pytest.raises(JournalUnsafe) as writable:
        anyio.run(open_journal, loose)
    with pytest.raises(JournalUnsafe) as linked:
        anyio.run(open_journal, tmp_path / "link.db")

    assert isinstance(writable.value, JournalError)
    assert str(writable.value) == (
        f"{loose}: refusing to use this journal file: group or others can write it (mode 0646);"
        " another user could have changed what it holds (check it, then chmod go-w)"
    )
    assert str(linked.value) == (
        f"{tmp_path / 'link.db'}: refusing to use this journal file: it is a symbolic link;"
        " asyncjobs does not follow links to journal files (give the real path)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "loose.db"]  # nothing created
