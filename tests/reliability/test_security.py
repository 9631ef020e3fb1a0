"""Security: secrets stay secret, the journal is private, TLS is verified unless turned off.

The runner gets a recognisable fake secret key and session token and runs with
``--debug --log-format json`` (the most it ever prints), through successes, failed
jobs, injected 5xx, a kill, a resume, ``status`` and an error with a traceback. The
secrets must appear in none of stdout, stderr, the journal, its WAL or shm file.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import threading
import time
from pathlib import Path

from tests.reliability.conftest import StartEmulator
from tests.reliability.harness import (
    SECRET,
    SESSION_TOKEN,
    finish,
    mixed_specs,
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


def _lines(process: subprocess.Popen[bytes]) -> queue.Queue[str | None]:
    """stderr lines of ``process`` as they come (None at the end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_tls_is_verified_unless_turned_off(start_emulator: StartEmulator, workdir: Path) -> None:
    emulator = start_emulator("--job-seconds", "0.2,0.5")
    write_campaign(workdir / "campaign.jsonl", mixed_specs(3))
    with tls_proxy(emulator.url, workdir) as https:
        verified = start_cli(
            "run", "campaign.jsonl", "--journal", "v.db", "--endpoint-url", https, "--log-format", "json",
            cwd=workdir,
        )  # fmt: skip
        lines = _lines(verified)
        seen = []
        try:
            while (line := lines.get(timeout=60)) is not None:
                seen.append(line)
                if "CERTIFICATE_VERIFY_FAILED" in line:
                    break
        finally:
            if verified.poll() is None:
                verified.kill()
            verified.wait()
        assert any("CERTIFICATE_VERIFY_FAILED" in line for line in seen), "".join(seen)
        assert emulator.stats()["requests"] == {}  # nothing got through an unverified connection

        unverified = run_cli(
            "run", "campaign.jsonl", "--journal", "u.db", "--endpoint-url", https, "--no-verify-ssl",
            "--poll-interval", "0.3", "--output", "json", cwd=workdir,
        )  # fmt: skip

    assert unverified.code == 0, unverified
    assert unverified.json()["counts"]["succeeded"] == 3
    assert emulator.stats()["jobs_total"] == 3
    assert os.path.exists(workdir / "u.db")
