"""The first SIGINT or SIGTERM stops ``asyncjobs run``: after it, no create is ever sent.

Whenever the signal comes: while the campaign is being journaled (in the journal's
worker thread, which cannot be cancelled), between the ingest and the run, or while the
run starts up. The command exits 130, the journal is either gone (this invocation made
it, and its ingest was rolled back) or consistent, and the same command run again
finishes the campaign without a duplicate.

The command is real (a subprocess), the signal is real (``kill`` from the test, or the
process signalling itself at an exact moment through :mod:`tests.reliability.killpoint`)
and so is the emulator, in its own process, whose counters say whether anything was sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.emulator.process import EmulatorProcess
from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import audit, read_journal
from tests.support.cli import REPO, Result, cli_env, finish, run_at_point, run_cli, start_cli
from tests.support.specs import distinct_specs, spec, write_campaign

RUN_ARGS = ("--poll-interval", "0.3", "--output", "json")
#: Journaling runs at about 60,000 lines a second on an idle machine: this takes a few seconds.
BIG = 150_000


def creates(stats: Mapping[str, Any]) -> int:
    """Create calls the emulator received (answered or not, replays of a known token included)."""
    return sum(n for operation, n in stats["requests"].items() if operation.startswith("Create"))


def leftovers(journal: Path) -> list[str]:
    return sorted(p.name for p in journal.parent.iterdir() if p.name.startswith(journal.name))


# ----------------------------------------------------------------------------- a signal from outside
@pytest.fixture(scope="module")
def big_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "campaign.jsonl"
    line = json.dumps(spec("@ID@", "bedrock")) + "\n"
    with path.open("w", encoding="utf-8") as out:
        out.writelines(line.replace("@ID@", f"big-{i:06d}") for i in range(BIG))
    return path


def read_offset(pid: int, path: Path) -> int | None:
    """How far process ``pid`` has read ``path`` (its file position, from /proc), or None
    while it does not have the file open."""
    target = str(path.resolve())
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(fd) != target:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        for row in info.splitlines():
            if row.startswith("pos:"):
                return int(row.split()[1])
    return None


def wait_until_read(process: subprocess.Popen[bytes], path: Path, share: float) -> None:
    """Until ``process`` has read ``share`` of ``path``: the ingest is under way, and most of
    it is still to come. Watching the command's own progress, not the clock."""
    size = path.stat().st_size
    seen_open = False
    deadline = time.monotonic() + 120  # a guard against a hung command, not a timing assertion
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the command ended before the signal\n{finish(process)}")
        offset = read_offset(process.pid, path)
        if offset is not None:
            seen_open = True
            if offset >= share * size:
                return
        elif seen_open:
            raise AssertionError("the ingest read the whole campaign between two looks: make it bigger")
        time.sleep(0.005)
    process.kill()
    raise AssertionError(f"the command never read {share:.0%} of the campaign\n{finish(process)}")


def finish_sending_nothing(process: subprocess.Popen[bytes], emulator: EmulatorProcess) -> Result:
    """Wait for ``process`` to exit; fail as soon as the emulator sees a create."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        sent = creates(emulator.stats())
        if sent:
            process.kill()
            raise AssertionError(f"{sent} create call(s) after the signal\n{finish(process)}")
        time.sleep(0.05)
    return finish(process, timeout=10)


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="watches the ingest through /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_long_ingest_stops_before_anything_is_sent(
    start_emulator: StartEmulator, workdir: Path, big_campaign: Path, signum: signal.Signals
) -> None:
    emulator = start_emulator(*QUICK)
    journal = workdir / "big.db"
    process = start_cli(
        "run", str(big_campaign), "--journal", str(journal), "--endpoint-url", emulator.url, *RUN_ARGS,
        cwd=workdir,
    )  # fmt: skip
    wait_until_read(process, big_campaign, 0.2)

    process.send_signal(signum)
    result = finish_sending_nothing(process, emulator)

    assert result.code == 130, result
    assert f"{signum.name}: stopping before anything is submitted" in result.stderr, result
    assert "asyncjobs.campaign.ingested" not in result.stderr, result  # the ingest was abandoned
    assert creates(emulator.stats()) == 0
    # the ingest rolled back, and the journal this invocation created is gone: the same
    # command, typed again, starts the campaign afresh
    assert leftovers(journal) == []
    assert "nothing was journaled" in result.stderr, result
    assert result.stdout == ""


# ----------------------------------------------------------------------------- a signal at an exact moment
def run_signalled(point: str, *args: str, cwd: Path, signum: str = "TERM") -> Result:
    """``asyncjobs ARGS``, which sends itself ``signum`` at ``point``."""
    return run_at_point(point, *args, cwd=cwd, signum=signum)


def status_counts(workdir: Path, journal: str) -> dict[str, int]:
    status = run_cli("status", "--journal", journal, "--output", "json", cwd=workdir)
    assert status.code == 0, status
    return {state: n for state, n in status.json()["counts"].items() if n}


def resume_to_the_end(emulator: EmulatorProcess, workdir: Path, args: tuple[str, ...], specs: int) -> None:
    """The same command again finishes the campaign: every spec once, nothing lost."""
    resumed = run_cli(*args, cwd=workdir)
    assert resumed.code == 0, resumed
    result = audit(read_journal(workdir / "c.db"), emulator.jobs(), emulator.stats())
    assert result.problems == []
    assert (result.specs, result.remote_jobs, result.duplicates, result.lost) == (specs, specs, 0, 0)


# (moment, signal, what the journal holds afterwards: None when it is gone)
MOMENTS = [
    # in the journal's thread, halfway through the load: it is rolled back, the journal removed
    pytest.param("during:ingest:5", "TERM", None, id="during-ingest"),
    pytest.param("during:ingest:5", "INT", None, id="during-ingest-sigint"),
    # the ingest has committed; the signal is seen before the run begins
    pytest.param("after:ingest", "TERM", {"pending": 8}, id="after-ingest"),
    # the run is starting: its clients are open, it is about to read the journal
    pytest.param("before:startup", "TERM", {"pending": 8}, id="run-start-up"),
    pytest.param("after:startup", "INT", {"pending": 8}, id="run-start-up-restored"),
]


@pytest.mark.parametrize(("point", "signum", "kept"), MOMENTS)
def test_a_signal_at_any_moment_before_the_first_create_sends_nothing_and_resumes(
    start_emulator: StartEmulator, workdir: Path, point: str, signum: str, kept: dict[str, int] | None
) -> None:
    emulator = start_emulator(*QUICK)
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(8))
    args = ("run", str(campaign), "--journal", "c.db", "--endpoint-url", emulator.url, *RUN_ARGS)

    stopped = run_signalled(point, *args, cwd=workdir, signum=signum)

    assert stopped.code == 130, stopped
    assert f"SIG{signum}: stopping" in stopped.stderr, stopped
    assert "again: exiting now" not in stopped.stderr, stopped  # one signal, not two
    assert creates(emulator.stats()) == 0, stopped
    if kept is None:
        assert leftovers(workdir / "c.db") == [], stopped
    else:
        assert status_counts(workdir, "c.db") == kept
    resume_to_the_end(emulator, workdir, args, 8)


def test_a_signal_at_start_up_does_not_repeat_an_unsettled_create(
    start_emulator: StartEmulator, workdir: Path
) -> None:
    """A resumed run repeats the create of a job left ``submitting`` (same token, same name);
    a signal as that run starts must stop it before even that create."""
    emulator = start_emulator(*QUICK)
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(8))
    args = ("run", str(campaign), "--journal", "c.db", "--endpoint-url", emulator.url, *RUN_ARGS)
    env = cli_env(workdir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    killed = finish(
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.killpoint", "before:created", "--", *args],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    )
    assert killed.code == -signal.SIGKILL, killed
    assert status_counts(workdir, "c.db").get("submitting"), "the kill left no create unsettled"
    sent = creates(emulator.stats())

    stopped = run_signalled("before:startup", *args, cwd=workdir)

    assert stopped.code == 130, stopped
    assert creates(emulator.stats()) == sent, stopped
    assert stopped.json()["interrupted"] is True
    resume_to_the_end(emulator, workdir, args, 8)
