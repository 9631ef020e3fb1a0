"""kill -9 at any point: nothing lost, nothing submitted twice.

The emulator runs in its own process, so its record of every job survives the
runner's death. The runner is the real ``asyncjobs run`` command. After the last
restart, :func:`~tests.reliability.harness.audit` holds the journal against the
emulator job by job: no duplicate, exactly one remote job per (spec, attempt), every
spec final, and the journal's counts equal to the service's.

``test_kill_at`` delivers one SIGKILL at an exact moment (during ingest, after a claim,
between the create returning and its ARN being journaled, after it, before a final
status is recorded, between a failure being recorded and its resubmission, after a
resubmission, after a claim whose quota is full on resume), then resumes with the same
command. ``test_random_kills`` kills a whole campaign five times at seeded random
moments; ``make chaos`` (``tests/chaos.py``) does the same with 50 kills and 200 jobs,
paced by the campaign's progress, which ``test_paced_kills_all_land`` holds to its promise.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import (
    KillAt,
    audit,
    crash_campaign,
    read_journal,
    sent_share,
    unresubmitted_failures,
)
from tests.support.cli import Result, run_at_point, run_cli
from tests.support.specs import distinct_specs, spec, write_campaign

RUN_ARGS = ("--poll-interval", "0.3", "--resubmit-failed", "1", "--output", "json")


def run_until_killed(point: str, *args: str, cwd: Path) -> Result:
    """``asyncjobs ARGS`` that SIGKILLs itself at ``point``."""
    return run_at_point(point, *args, cwd=cwd)


#: Three Personalize inference jobs: with one slot, the second claim meets a full quota.
PERSONALIZE_ONLY = [
    spec(f"p-{i}", "personalize", jobInput={"s3DataSource": {"path": f"s3://b/p{i}/"}}) for i in range(3)
]
ALL_FAIL = (*QUICK, "--fail-rate", "1")

# (kill point, emulator options, campaign, exit code after resume)
KILL_POINTS = [
    pytest.param("before:ingest", QUICK, None, 0, id="before-ingest"),
    pytest.param("after:claim:3", QUICK, None, 0, id="after-claim"),
    pytest.param("before:created", QUICK, None, 0, id="arn-returned-not-journaled"),
    pytest.param("after:created:2", QUICK, None, 0, id="after-arn-journaled"),
    pytest.param("before:observe_succeeded", QUICK, None, 0, id="before-observed-final"),
    # the failure is journaled, its resubmission is not: the resumed run must still resubmit it
    pytest.param("after:observe_failed", ALL_FAIL, None, 1, id="failed-not-yet-resubmitted"),
    pytest.param("before:resubmit:2", ALL_FAIL, None, 1, id="before-resubmit"),
    pytest.param("after:resubmit", ALL_FAIL, None, 1, id="after-resubmit"),
    # the resumed run re-creates a job claimed before the kill while the quota is full
    pytest.param(
        "after:claim:2",
        (*QUICK, "--personalize-max-running", "1"),
        PERSONALIZE_ONLY,
        0,
        id="claimed-then-quota-full",
    ),
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
    campaign = write_campaign(workdir / "campaign.jsonl", specs or distinct_specs(8))
    args = ("run", str(campaign), "--journal", "c.db", "--endpoint-url", emulator.url, *RUN_ARGS)

    killed = run_until_killed(point, *args, cwd=workdir)
    assert killed.code == -signal.SIGKILL, f"the kill point {point} was never reached\n{killed}"

    resumed = run_cli(*args, cwd=workdir)

    assert resumed.code == code, resumed
    view = read_journal(workdir / "c.db")
    result = audit(view, emulator.jobs(), emulator.stats())
    assert result.problems == []
    assert unresubmitted_failures(view, resubmit_failed=1) == []
    assert result.specs == len(specs or distinct_specs(8))


# test_random_kills: the campaign must outlast every kill, by construction rather than by luck.
# Personalize jobs of one kind run one at a time here (one slot each) and every job holds its
# slot for at least JOB_SECONDS[0], failed ones included; so the campaign cannot end sooner
# than RANDOM_SPECS // 5 x JOB_SECONDS[0] = 20 s after its first create (mixed_specs puts
# one spec in five on each Personalize kind). The kills land at most KILL_WITHIN seconds into
# their run: 5 x 2.5 = 12.5 s, which leaves 7.5 s for restarts and journal snapshots.
RANDOM_KILLS = 5
RANDOM_SPECS = 25
JOB_SECONDS = (4.0, 5.0)
KILL_WITHIN = 2.5


def early_kill(rng: random.Random) -> float:
    """A third of the kills in start-up and ingest (about a second), the rest once jobs move."""
    if rng.random() < 1 / 3:
        return rng.uniform(0.05, 1.2)
    return rng.uniform(1.0, KILL_WITHIN)


def test_random_kills(start_emulator: StartEmulator, workdir: Path) -> None:
    shortest_campaign, longest_kills = RANDOM_SPECS // 5 * JOB_SECONDS[0], RANDOM_KILLS * KILL_WITHIN
    assert longest_kills + 5 < shortest_campaign  # the margin above
    emulator = start_emulator(
        "--seed", "11", "--fail-rate", "0.2", "--job-seconds", ",".join(map(str, JOB_SECONDS)),
        "--latency", "0.01,0.2", "--bedrock-max-running", "4", "--personalize-max-running", "1",
    )  # fmt: skip
    campaign = write_campaign(workdir / "campaign.jsonl", distinct_specs(RANDOM_SPECS))
    journal = workdir / "c.db"

    run = crash_campaign(
        workdir=workdir,
        campaign=campaign,
        journal=journal,
        endpoint_url=emulator.url,
        kills=RANDOM_KILLS,
        seed=5,
        delays=early_kill,
        extra_args=RUN_ARGS,
    )

    assert run.kills == RANDOM_KILLS, f"the campaign ended after {run.kills} kills\n{run.final}"
    assert run.final is not None and run.final.code in (0, 1), run.final
    view = read_journal(journal)
    result = audit(view, emulator.jobs(), emulator.stats())
    assert result.problems == []
    assert (result.duplicates, result.lost) == (0, 0)
    assert result.specs == RANDOM_SPECS
    assert unresubmitted_failures(view, resubmit_failed=1) == []
    # the last run's summary agrees with the journal
    assert run.final.json()["counts"] == {**run.final.json()["counts"], **result.journal_counts}


def test_paced_kills_all_land_however_short_the_campaign(
    start_emulator: StartEmulator, workdir: Path
) -> None:
    """The pacing ``make chaos`` relies on: every kill of the plan lands, even when the plan
    asks for kills later than the campaign lasts. Here the campaign is short and the plan
    is not: its second kill waits a minute after half the specs are sent, and the last two
    come after the campaign could have ended. Each lands when every spec has been sent, or
    at once if that was so when its run started, instead of the campaign ending first."""
    emulator = start_emulator(*QUICK)
    specs = distinct_specs(6)
    campaign = write_campaign(workdir / "campaign.jsonl", specs)
    journal = workdir / "c.db"
    plan = [KillAt(0.0, 0.3), KillAt(0.5, 60.0), KillAt(0.9, 60.0), KillAt(0.0, 60.0)]

    run = crash_campaign(
        workdir=workdir,
        campaign=campaign,
        journal=journal,
        endpoint_url=emulator.url,
        kills=len(plan),
        seed=1,
        plan=plan,
        progress=sent_share(emulator.jobs, journal.stem, (s["id"] for s in specs)),
        extra_args=RUN_ARGS,
    )

    assert run.kills == len(plan), f"the campaign ended after {run.kills} kills\n{run.final}"
    assert run.forced == 3, run  # the three that the plan put too late
    assert run.final is not None and run.final.code == 0, run.final
    result = audit(read_journal(journal), emulator.jobs(), emulator.stats())
    assert result.problems == []
    assert (result.specs, result.duplicates, result.lost) == (6, 0, 0)
