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

import json
import stat
import time
from pathlib import Path

from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import (
    SECRET,
    SESSION_TOKEN,
    audit,
    finish,
    mixed_specs,
    read_journal,
    run_cli,
    start_cli,
    write_campaign,
)
from tests.reliability.tls import tls_proxy

DEBUG = ("--debug", "--log-format", "json", "--poll-interval", "0.3", "--output", "json")


def leaks(text: bytes | str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in (("secret", SECRET), ("token", SESSION_TOKEN)) if value.encode() in data]


def test_secrets_never_leak_and_the_journal_is_private(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator(
        "--job-seconds", "0.5,1", "--fail-rate", "0.3", "--error-rate", "0.05", "--seed", "9"
    )
    write_campaign(workdir / "campaign.jsonl", mixed_specs(10))
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
    write_campaign(workdir / "campaign.jsonl", mixed_specs(3))
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
