"""kill -9 at any point: nothing lost, nothing submitted twice.

The emulator runs in its own process, so its record of every job survives the
runner's death. The runner is the real ``asyncjobs run`` command. After the last
restart, :func:`~tests.reliability.harness.audit` holds the journal against the
emulator job by job: no duplicate, exactly one remote job per (spec, attempt), every
spec final, and the journal's counts equal to the service's.

``test_kill_at`` delivers one SIGKILL at an exact moment (during ingest, after a claim,
between the create returning and its ARN being journaled, after it, before a final
status is recorded, after a resubmission), then resumes with the same command.
Random kills over a whole campaign are ``make chaos`` (``tests/chaos.py``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import (
    Result,
    audit,
    cli_env,
    finish,
    mixed_specs,
    read_journal,
    run_cli,
    unresubmitted_failures,
    write_campaign,
)

REPO = Path(__file__).resolve().parents[2]
RUN_ARGS = ("--poll-interval", "0.3", "--resubmit-failed", "1", "--output", "json")


def run_until_killed(point: str, *args: str, cwd: Path) -> Result:
    """``asyncjobs ARGS`` that SIGKILLs itself at ``point`` (see :mod:`tests.reliability.killpoint`)."""
    import subprocess

    env = cli_env(cwd)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.killpoint", point, "--", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return finish(process, 90)


# (kill point, emulator options, campaign, exit code after resume)
KILL_POINTS = [
    pytest.param("before:ingest", QUICK, None, 0, id="before-ingest"),
    pytest.param("after:claim:3", QUICK, None, 0, id="after-claim"),
    pytest.param("before:created", QUICK, None, 0, id="arn-returned-not-journaled"),
    pytest.param("after:created:2", QUICK, None, 0, id="after-arn-journaled"),
    pytest.param("before:observe_succeeded", QUICK, None, 0, id="before-observed-final"),
    pytest.param("after:resubmit", (*QUICK, "--fail-rate", "1"), None, 1, id="after-resubmit"),
]


@pytest.mark.parametrize(("point", "emulator_args", "specs", "code"), KILL_POINTS)
def test_kill_at(
    start_emulator: StartEmulator,
    workdir: Path,
    point: str,
    emulator_args: tuple[str, ...],
    specs: list[dict[str, object]] | None,
    code: int,
) -> None:
    emulator = start_emulator(*emulator_args)
    campaign = write_campaign(workdir / "campaign.jsonl", specs or mixed_specs(8))
    args = ("run", str(campaign), "--journal", "c.db", "--endpoint-url", emulator.url, *RUN_ARGS)

    killed = run_until_killed(point, *args, cwd=workdir)
    assert killed.code == -signal.SIGKILL, f"the kill point {point} was never reached\n{killed}"

    resumed = run_cli(*args, cwd=workdir)

    assert resumed.code == code, resumed
    view = read_journal(workdir / "c.db")
    result = audit(view, emulator.jobs(), emulator.stats())
    assert result.problems == []
    assert unresubmitted_failures(view, resubmit_failed=1) == []
    assert result.specs == len(specs or mixed_specs(8))
