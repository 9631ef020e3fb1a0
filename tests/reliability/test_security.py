"""Security: secrets stay secret, the journal is private, TLS is verified unless turned off.

The runner gets a recognisable fake secret key and session token and runs with
``--debug --log-format json`` (the most it ever prints), through successes, failed
jobs, injected 5xx, a kill, a resume, ``status`` and an error with a traceback. The
secrets must appear in none of stdout, stderr, the journal, its WAL or shm file.

Against a self-signed HTTPS endpoint the run stops at the first create (a certificate
failure is :class:`asyncjobs.errors.Fatal`, never retried) with one error line and exit
3, sends nothing, and resumes on the same journal once ``--no-verify-ssl`` is given.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncjobs.campaign import read_campaign
from asyncjobs.journal import open_journal
from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import audit, read_journal
from tests.reliability.tls import tls_proxy
from tests.support.cli import SECRET, SESSION_TOKEN, Result, cli_argv, cli_env, finish, run_cli, start_cli
from tests.support.presets import FAST_JSON
from tests.support.specs import distinct_specs, write_campaign

DEBUG = ("--debug", "--log-format", "json", "--poll-interval", "0.3", "--output", "json")


def leaks(text: bytes | str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in (("secret", SECRET), ("token", SESSION_TOKEN)) if value.encode() in data]


def test_secrets_never_leak_and_the_journal_is_private(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(
        "--job-seconds", "0.5,1", "--fail-rate", "0.3", "--error-rate", "0.05", "--seed", "9"
    )
    write_campaign(workdir / "campaign.jsonl", distinct_specs(10))
    args = ("run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url, *DEBUG)

    # a run killed mid-campaign leaves its WAL and shm behind: created under umask 0, still private
    first = start_cli(*args, cwd=workdir, umask=0)
    deadline = time.monotonic() + 60
    while emulator.stats()["jobs_total"] < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    killed = finish(first)
    files = sorted(p.name for p in workdir.iterdir() if p.name.startswith("c.db"))
    assert files == ["c.db", "c.db-shm", "c.db-wal", "c.db.lock"]
    for name in files:
        mode = stat.S_IMODE((workdir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {mode:o}"
        assert leaks((workdir / name).read_bytes()) == [], name

    # resume, and meanwhile a second runner fails (with a --debug traceback)
    second = start_cli(*args, cwd=workdir, umask=0)
    lock = workdir / "c.db.lock"
    while lock.read_text().strip() != str(second.pid) and second.poll() is None:  # it holds the journal
        time.sleep(0.05)
    refused = run_cli(*args, cwd=workdir)
    resumed = finish(second)
    status = run_cli("status", "--journal", "c.db", *DEBUG[:3], "--output", "json", cwd=workdir)

    assert resumed.code in (0, 1), resumed
    assert refused.code == 2, refused
    assert status.code == 0, status
    outputs = {"killed": killed, "refused": refused, "resumed": resumed, "status": status}
    for name, result in outputs.items():
        assert leaks(result.stdout) == [], f"{name} stdout"
        assert leaks(result.stderr) == [], f"{name} stderr"
    for path in workdir.iterdir():
        if path.is_file():
            assert leaks(path.read_bytes()) == [], path.name
    # the check is not vacuous: debug logs were written, errors were reported
    debug = [json.loads(line) for line in resumed.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("level") == "debug" for e in debug)
    assert "Traceback" in refused.stderr or "in use" in refused.stderr
    assert resumed.json()["counts"]["failed"] + resumed.json()["counts"]["succeeded"] == 10
    assert stat.S_IMODE((workdir / "c.db").stat().st_mode) == 0o600


def test_tls_is_verified_unless_turned_off(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator("--job-seconds", "0.2,0.5")
    write_campaign(workdir / "campaign.jsonl", distinct_specs(3))
    args = ("run", "campaign.jsonl", "--journal", "c.db", "--poll-interval", "0.3", "--output", "json")
    with tls_proxy(emulator.url, workdir) as https:
        # a self-signed certificate: the run stops at once (no retrying), one clear line, exit 3
        verified = run_cli(*args, "--endpoint-url", https, cwd=workdir, timeout=60)
        assert emulator.stats()["requests"] == {}  # nothing got through an unverified connection
        stopped = read_journal(workdir / "c.db")
        # and the run is resumable: --no-verify-ssl, same journal
        unverified = run_cli(*args, "--endpoint-url", https, "--no-verify-ssl", cwd=workdir)

    assert verified.code == 3, verified
    errors = [line for line in verified.error_lines if line.startswith("asyncjobs: error:")]
    assert errors == [verified.error_lines[-1]], verified
    assert "CERTIFICATE_VERIFY_FAILED" in errors[0] and "\n" not in errors[0], verified
    assert "resume with" in verified.stderr, verified
    assert verified.json()["error"]["code"] == "SSLError", verified  # the summary, with the cause
    assert verified.json()["counts"]["pending"] == 3, verified
    assert stopped.counts() == {"pending": 3}, stopped.counts()  # unsent jobs went back to pending

    assert unverified.code == 0, unverified
    assert unverified.json()["counts"]["succeeded"] == 3
    assert emulator.stats()["jobs_total"] == 3
    assert audit(read_journal(workdir / "c.db"), emulator.jobs(), emulator.stats()).problems == []


# ----------------------------------------------------------------------------- journal files
# A journal may sit in a folder other users can write to. Whatever is found at one of its paths is
# used only if it is a regular file, not a link, ours, and not writable by group or others (as ssh
# treats key files); otherwise the command exits 2 with one line naming the file, before any call.

NOBODY = 65534  # another user: files are given to it with chown, which needs root (CI runs as root)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="giving a file to another user (chown to uid 65534) needs root"
)
OWNED_BY_NOBODY = (
    f"it is owned by uid {NOBODY}, not by you (uid {os.geteuid()});"
    " its owner could have changed what it holds"
)
OPEN_TO_OTHERS = (
    "group or others can write it (mode {mode}); another user could have changed what it holds"
    " (check it, then chmod go-w)"
)
A_LINK = "it is a symbolic link; asyncjobs does not follow links to journal files (give the real path)"


def refused(result: Result, name: str, reason: str, verb: str = "use") -> None:
    assert result.code == 2, result
    assert result.error_lines == [
        f"asyncjobs: error: {name}: refusing to {verb} this journal file: {reason}"
    ], result


def plant(path: Path, *, mode: int, owner: int | None = None, content: bytes = b"") -> Path:
    """A file as another user (``owner``) or a careless one (``mode``) could leave it."""
    path.write_bytes(content)
    os.chmod(path, mode)  # exactly ``mode``, whatever the umask
    if owner is not None:
        os.chown(path, owner, owner)
    return path


async def _make_journal(path: Path, specs: list[dict[str, Any]]) -> None:
    campaign = path.with_name("made.jsonl")
    write_campaign(campaign, specs)
    async with await open_journal(path) as journal:
        await journal.add_specs(read_campaign(campaign))
    campaign.unlink()


@pytest.fixture
def shared(workdir: Path) -> Path:
    """A folder every user can write to, as /tmp (sticky) is; the commands run in it."""
    folder = workdir / "shared"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    write_campaign(folder / "campaign.jsonl", distinct_specs(3))
    return folder


@needs_root
def test_run_refuses_a_journal_another_user_planted(start_emulator: StartEmulator, shared: Path) -> None:
    # another user created an empty, world-writable team.db, meaning to rewrite the requests later
    emulator = start_emulator(*QUICK)
    plant(shared / "team.db", mode=0o666, owner=NOBODY)
    args = ("run", "campaign.jsonl", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared)

    refused(result, "team.db", OWNED_BY_NOBODY)
    assert (shared / "team.db").read_bytes() == b""
    assert sorted(p.name for p in shared.iterdir()) == ["campaign.jsonl", "team.db"]
    assert emulator.stats()["requests"] == {}


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_run_refuses_a_journal_others_can_write(
    start_emulator: StartEmulator, shared: Path, mode: int
) -> None:
    emulator = start_emulator(*QUICK)
    plant(shared / "team.db", mode=mode)
    args = ("run", "campaign.jsonl", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared)

    refused(result, "team.db", OPEN_TO_OTHERS.format(mode=f"{mode:04o}"))
    assert emulator.stats()["requests"] == {}


def test_run_refuses_a_symlinked_journal(start_emulator: StartEmulator, shared: Path) -> None:
    emulator = start_emulator(*QUICK)
    anyio.run(_make_journal, shared / "real.db", distinct_specs(3))
    os.chmod(shared / "real.db", 0o644)
    (shared / "team.db").symlink_to("real.db")  # an existing journal behind a link
    (shared / "new.db").symlink_to("elsewhere/new.db")  # a dangling link: would create its target
    (shared / "elsewhere").mkdir()
    args = ("campaign.jsonl", "--endpoint-url", emulator.url, *FAST_JSON)

    existing = run_cli("run", "--journal", "team.db", *args, cwd=shared)
    dangling = run_cli("run", "--journal", "new.db", *args, cwd=shared)

    refused(existing, "team.db", A_LINK)
    refused(dangling, "new.db", A_LINK)
    assert list((shared / "elsewhere").iterdir()) == []
    assert emulator.stats()["requests"] == {}
    assert stat.S_IMODE((shared / "real.db").stat().st_mode) == 0o644  # left as it was


@needs_root
@pytest.mark.parametrize(
    ("suffix", "mode", "owner", "reason"),
    [
        ("-wal", 0o666, NOBODY, OWNED_BY_NOBODY),  # frames in a planted WAL would be read as the journal
        ("-shm", 0o660, None, OPEN_TO_OTHERS.format(mode="0660")),
        ("-journal", 0o644, NOBODY, OWNED_BY_NOBODY),  # a planted "hot" rollback journal would be replayed
        (".lock", 0o600, NOBODY, OWNED_BY_NOBODY),
    ],
)
def test_run_refuses_journal_side_files_not_its_own(
    start_emulator: StartEmulator, shared: Path, suffix: str, mode: int, owner: int | None, reason: str
) -> None:
    emulator = start_emulator(*QUICK)
    anyio.run(_make_journal, shared / "team.db", distinct_specs(3))
    side = plant(shared / f"team.db{suffix}", mode=mode, owner=owner)
    args = ("run", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared)

    refused(result, side.name, reason)
    assert side.read_bytes() == b""
    assert emulator.stats()["requests"] == {}


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_lock_file_is_never_followed_nor_truncated(
    start_emulator: StartEmulator, shared: Path, link: str
) -> None:
    # <journal>.lock pointing at a file of ours: it used to be opened through the link and truncated
    emulator = start_emulator(*QUICK)
    victim = plant(shared / "victim.txt", mode=0o600, content=b"precious\n")
    lock = shared / "team.db.lock"
    if link == "symlink":
        lock.symlink_to(victim.name)
        reason = A_LINK
    else:
        os.link(victim, lock)
        reason = "it has 2 hard links; writing it would change another file too"
    args = ("run", "campaign.jsonl", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared)

    refused(result, "team.db.lock", reason)
    assert victim.read_bytes() == b"precious\n"
    assert emulator.stats()["requests"] == {}


def test_a_lock_file_we_did_not_write_is_left_as_it_is(start_emulator: StartEmulator, shared: Path) -> None:
    # a private file of ours that only happens to sit at the lock path: locked, never truncated
    emulator = start_emulator(*QUICK)
    lock = plant(shared / "team.db.lock", mode=0o600, content=b"my notes, not a pid\n")
    args = ("run", "campaign.jsonl", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared)

    assert result.code == 0, result
    assert lock.read_bytes() == b"my notes, not a pid\n"


def test_a_journal_file_made_by_touch_becomes_private(start_emulator: StartEmulator, shared: Path) -> None:
    # an empty file of ours is a new journal: asyncjobs makes it, so it is 0600 like one it creates
    emulator = start_emulator(*QUICK)
    plant(shared / "team.db", mode=0o644)
    args = ("run", "campaign.jsonl", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)

    result = run_cli(*args, cwd=shared, umask=0)

    assert result.code == 0, result
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in shared.iterdir() if p.name.startswith("team")}
    assert modes == {"team.db": 0o600, "team.db.lock": 0o600}


@needs_root
def test_status_refuses_a_journal_another_user_could_have_changed(shared: Path) -> None:
    anyio.run(_make_journal, shared / "theirs.db", distinct_specs(3))
    os.chown(shared / "theirs.db", NOBODY, NOBODY)
    anyio.run(_make_journal, shared / "open.db", distinct_specs(3))
    os.chmod(shared / "open.db", 0o666)

    theirs = run_cli("status", "--journal", "theirs.db", "--output", "json", cwd=shared)
    writable = run_cli("status", "--journal", "open.db", "--output", "json", cwd=shared)

    refused(theirs, "theirs.db", OWNED_BY_NOBODY, verb="read")
    refused(writable, "open.db", OPEN_TO_OTHERS.format(mode="0666"), verb="read")
    assert (theirs.stdout, writable.stdout) == ("", "")


@needs_root
def test_status_beside_a_run_refuses_side_files_not_its_own(shared: Path) -> None:
    # while a run holds the journal (its lock is taken here) status reads a snapshot without the
    # lock: it refuses what it would refuse otherwise
    anyio.run(_make_journal, shared / "team.db", distinct_specs(3))
    wal = plant(shared / "team.db-wal", mode=0o666, owner=NOBODY)
    with open(shared / "team.db.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("status", "--journal", "team.db", "--output", "json", cwd=shared)

    refused(result, "team.db-wal", OWNED_BY_NOBODY, verb="read")
    assert wal.read_bytes() == b""


@needs_root
def test_a_wal_planted_while_a_new_campaign_loads_is_refused(
    start_emulator: StartEmulator, shared: Path
) -> None:
    # a new campaign is loaded without a WAL (SQLite deletes it, and writes a rollback journal), so
    # another user can plant one meanwhile: SQLite would read its frames as the journal's pages
    emulator = start_emulator(*QUICK)
    args = ("run", "-", "--journal", "team.db", "--endpoint-url", emulator.url, *FAST_JSON)
    runner = subprocess.Popen(
        cli_argv(*args), cwd=shared, env=cli_env(shared), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert runner.stdin is not None
    runner.stdin.write("".join(json.dumps(s) + "\n" for s in distinct_specs(3)).encode())
    runner.stdin.flush()  # stdin stays open: the load waits for more lines
    lock = shared / "team.db.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and "loading" in lock.read_text()):  # the run's lock record: loading
        assert runner.poll() is None and time.monotonic() < deadline, finish(runner)
        time.sleep(0.05)
    assert (shared / "team.db-journal").exists()  # the load writes a rollback journal, not a WAL
    assert not (shared / "team.db-wal").exists()
    plant(shared / "team.db-wal", mode=0o666, owner=NOBODY, content=b"frames of someone else's choosing")

    result = finish(runner)  # closes stdin: the load ends

    refused(result, "team.db-wal", OWNED_BY_NOBODY)
    assert emulator.stats()["requests"] == {}
    # the journal this run created is removed with what is next to it, as after any input error
    assert sorted(p.name for p in shared.iterdir()) == ["campaign.jsonl"]
