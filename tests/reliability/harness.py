"""Blocking helpers for the reliability tests and ``make chaos``.

Everything here is synchronous on purpose: the emulator runs as its own process
(:func:`asyncjobs.emulator.process.emulator_process_sync`), so its counters outlive any
runner we kill, and ``asyncjobs run`` runs as a subprocess that can be SIGKILLed.

The command itself is run by :mod:`tests.support.cli`, and campaigns are built by
:mod:`tests.support.specs`.

- :func:`read_journal`: the journal's jobs and event log, through the journal API.
- :func:`audit`: the journal checked against the emulator's own record of every job.
- :func:`crash_campaign`: run a campaign to the end while SIGKILLing the runner, at
  seeded random delays, or paced by the campaign's own progress (:func:`paced_kills`,
  :func:`sent_share`) so that every promised kill lands whatever the machine's speed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from asyncjobs.journal import EventRecord, open_journal
from asyncjobs.model import JobState
from asyncjobs.naming import job_name
from tests.support.cli import Result, cli_env, finish, start_cli

#: The emulator's final statuses, normalised as the journal normalises them.
REMOTE_FINAL = {
    "Completed": JobState.SUCCEEDED,
    "ACTIVE": JobState.SUCCEEDED,
    "PartiallyCompleted": JobState.PARTIAL,
    "Failed": JobState.FAILED,
    "CREATE FAILED": JobState.FAILED,
    "Stopped": JobState.STOPPED,
    "Expired": JobState.EXPIRED,
}


# ----------------------------------------------------------------------------- the journal
@dataclass
class JournalView:
    """What a journal holds: its campaign name, every job (as a dict) and the event log."""

    campaign: str
    jobs: dict[str, dict[str, Any]]
    events: list[EventRecord]

    def counts(self) -> Counter[str]:
        return Counter(job["state"] for job in self.jobs.values())

    def events_named(self, name: str) -> list[EventRecord]:
        return [e for e in self.events if e.event == name]


async def load_journal(path: Path | str, campaign: str | None = None) -> JournalView:
    """Every job and event of the journal at ``path`` (a SQLite file or a PostgreSQL URI)."""
    journal = await open_journal(path, campaign=campaign, create=False)
    try:
        jobs = {
            job.id: {
                "id": job.id,
                "service": str(job.service),
                "state": str(job.state),
                "attempt": job.attempt,
                "arn": job.arn,
                "job_name": job.job_name,
                "request": dict(job.request),
                "last_error": job.last_error,
            }
            async for job in journal.jobs()
        }
        return JournalView(journal.campaign, jobs, await journal.events())
    finally:
        await journal.aclose()


def read_journal(path: Path) -> JournalView:
    """The journal at ``path`` (no process may hold it)."""
    return anyio.run(load_journal, path)


# ----------------------------------------------------------------------------- the audit
@dataclass
class Audit:
    """The journal against the emulator. ``problems`` is empty when the promise was kept."""

    specs: int
    remote_jobs: int
    duplicates: int  # the emulator's duplicate_jobs, plus (spec, attempt)s with more than one job
    lost: int  # remote jobs the journal does not know, specs not final, ARNs the journal lost
    journal_counts: dict[str, int]
    remote_counts: dict[str, int]
    problems: list[str] = field(default_factory=list)


def audit(view: JournalView, remote_jobs: Sequence[Mapping[str, Any]], stats: Mapping[str, Any]) -> Audit:
    """Check exactly-once and nothing-lost, job by job.

    - every spec is final;
    - each (spec, attempt) that the event log says was created has exactly one ARN in the
      log, and exactly one remote job carries that attempt's name, with that ARN;
    - every remote job belongs to some (spec, attempt) of the journal (none is orphaned);
    - each spec's state is the normalised final status of its latest attempt's remote job,
      and every earlier attempt ended failed or expired (why it was resubmitted).
    """
    problems: list[str] = []
    remote_by_name: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for job in remote_jobs:
        remote_by_name[job["jobName"]].append(job)
    arns_by_attempt: dict[tuple[str, int], set[str]] = defaultdict(set)
    claimed: set[tuple[str, int]] = set()
    for event in view.events:
        if event.event == "claim":
            claimed.add((event.job_id, event.attempt))
        if event.arn:
            arns_by_attempt[(event.job_id, event.attempt)].add(event.arn)

    duplicates = int(stats.get("duplicate_jobs", 0))
    lost = 0
    known_names: set[str] = set()
    journal_counts: Counter[str] = Counter()
    remote_counts: Counter[str] = Counter()
    for spec_id, job in view.jobs.items():
        state = JobState(job["state"])
        journal_counts[str(state)] += 1
        if not state.is_final:
            lost += 1
            problems.append(f"{spec_id}: not final ({state}, attempt {job['attempt']})")
        given = job["request"].get("jobName")
        for attempt in range(1, job["attempt"] + 1):
            name = job_name(view.campaign, spec_id, attempt, given if isinstance(given, str) else None)
            known_names.add(name)
            remote = remote_by_name.get(name, [])
            arns = arns_by_attempt.get((spec_id, attempt), set())
            if len(remote) > 1:
                duplicates += len(remote) - 1
                problems.append(f"{spec_id} attempt {attempt}: {len(remote)} remote jobs named {name}")
            if len(arns) > 1:
                duplicates += len(arns) - 1
                problems.append(f"{spec_id} attempt {attempt}: several ARNs in the event log: {sorted(arns)}")
            if remote and not arns:
                lost += 1
                problems.append(f"{spec_id} attempt {attempt}: remote job {remote[0]['arn']} not journaled")
            if arns and not remote:
                problems.append(f"{spec_id} attempt {attempt}: journaled ARN {sorted(arns)} unknown remotely")
            if remote and arns and {r["arn"] for r in remote} != arns:
                problems.append(f"{spec_id} attempt {attempt}: ARN mismatch {sorted(arns)} vs remote")
            if (remote or arns) and (spec_id, attempt) not in claimed:
                problems.append(f"{spec_id} attempt {attempt}: created without a claim in the event log")
            if not remote:
                if state is not JobState.REJECTED or attempt != job["attempt"]:
                    problems.append(f"{spec_id} attempt {attempt}: no remote job")
                continue
            status = str(remote[0]["status"])
            remote_state = REMOTE_FINAL.get(status)
            if attempt == job["attempt"]:
                if remote_state is not None:
                    remote_counts[str(remote_state)] += 1
                if remote_state is not state:
                    problems.append(f"{spec_id}: journal says {state}, the service says {status}")
                if job["arn"] != remote[0]["arn"]:
                    lost += 1
                    problems.append(f"{spec_id}: journal ARN {job['arn']} is not {remote[0]['arn']}")
            elif remote_state not in (JobState.FAILED, JobState.EXPIRED):
                problems.append(f"{spec_id} attempt {attempt}: resubmitted although it ended {status}")
    for name, remote in remote_by_name.items():
        if name not in known_names:
            lost += len(remote)
            problems.append(f"remote job {name} ({remote[0]['arn']}) belongs to no spec attempt")
    if stats.get("duplicate_jobs"):
        problems.append(
            f"emulator counted {stats['duplicate_jobs']} duplicate jobs: {stats.get('duplicates')}"
        )
    finals = {s: n for s, n in journal_counts.items() if JobState(s).is_final and s != "rejected"}
    if finals != dict(remote_counts):
        problems.append(f"journal counts {finals} != service counts {dict(remote_counts)}")
    return Audit(
        specs=len(view.jobs),
        remote_jobs=len(remote_jobs),
        duplicates=duplicates,
        lost=lost,
        journal_counts=dict(journal_counts),
        remote_counts=dict(remote_counts),
        problems=problems,
    )


def unresubmitted_failures(view: JournalView, resubmit_failed: int) -> list[str]:
    """Failed or expired specs that still had attempts left under ``--resubmit-failed``."""
    return [
        f"{job['id']}: {job['state']} at attempt {job['attempt']} of {resubmit_failed + 1}"
        for job in view.jobs.values()
        if job["state"] in ("failed", "expired") and job["attempt"] <= resubmit_failed
    ]


# ----------------------------------------------------------------------------- crashing
@dataclass
class CrashRun:
    """How a crash campaign went."""

    kills: int = 0
    runs: int = 0
    final: Result | None = None
    seconds: float = 0.0
    #: Where the kills landed, judged from the journal right after each one.
    landed: Counter[str] = field(default_factory=Counter)
    #: Seconds into its run at which each kill landed.
    delays: list[float] = field(default_factory=list)
    #: Paced kills: the campaign's progress at each kill (see :func:`sent_share`).
    shares: list[float] = field(default_factory=list)
    #: Paced kills made at once because every spec had been sent (see :func:`crash_campaign`).
    forced: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Enough of a journal to tell what a killed run had written."""

    exists: bool
    jobs: int = 0
    events: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


def snapshot(journal: Path) -> Snapshot:
    if not journal.exists():
        return Snapshot(exists=False)
    try:
        view = read_journal(journal)
    except Exception as exc:  # a journal the next run cannot open is a finding: show it
        return Snapshot(exists=True, error=f"{type(exc).__name__}: {exc}")
    return Snapshot(True, len(view.jobs), len(view.events), dict(view.counts()))


def where_killed(before: Snapshot, after: Snapshot, stderr: str) -> list[str]:
    """Where a kill landed, from the killed run's log and what it left in its journal.

    A kill can be in several places at once (creates in flight while other jobs are
    tracked), so this returns every tag that applies.
    """
    if after.error:
        return [f"unreadable journal ({after.error})"]
    if "asyncjobs.campaign.ingested" not in stderr:
        return ["start-up or ingest (nothing sent yet)"]
    if after.events == before.events:
        return ["after ingest, before the first claim"]
    tags = []
    if after.counts.get("submitting"):
        tags.append("creates in flight (claimed, ARN not journaled)")
    if after.counts.get("submitted") or after.counts.get("running"):
        tags.append("jobs being tracked")
    return tags or ["between writes"]


@dataclass(frozen=True)
class KillAt:
    """One paced kill: ``delay`` seconds after the campaign's progress, seen from the run
    being killed, has reached ``progress`` (0: ``delay`` seconds into the run)."""

    progress: float
    delay: float


def paced_kills(kills: int, rng: random.Random, *, early_share: float = 1 / 3) -> list[KillAt]:
    """A kill plan: about ``early_share`` of the kills early in a run (start-up, ingest, the
    first claims: 0.05 to 1.5 s in), the others spread evenly over the campaign's progress
    (the j-th of P at j/(P+1) of it, then up to a second later, so they do not all fall on
    the create that crossed the mark). The last kill is a paced one, at P/(P+1): after it,
    the final run has the end of the campaign to itself.
    """
    if kills <= 0:
        return []
    early = set(rng.sample(range(kills - 1), min(kills - 1, round(kills * early_share))))
    paced = kills - len(early)
    plan, mark = [], 0
    for i in range(kills):
        if i in early:
            plan.append(KillAt(0.0, rng.uniform(0.05, 1.5)))
        else:
            mark += 1
            plan.append(KillAt(mark / (paced + 1), rng.uniform(0.0, 1.0)))
    return plan


def sent_share(
    jobs: Callable[[], Sequence[Mapping[str, Any]]], campaign: str, spec_ids: Iterable[str]
) -> Callable[[], float]:
    """The campaign's progress as the share of its specs the service has a job for (first
    attempts, by their deterministic names), from ``jobs`` (the emulator's list of jobs).

    This measure is what makes paced kills certain: a campaign cannot end while one of its
    specs has not been sent, and a job takes seconds to run once it is.
    """
    names = {job_name(campaign, spec_id, 1) for spec_id in spec_ids}
    if not names:
        raise ValueError("a campaign without specs has no progress to pace kills by")

    def share() -> float:
        return len(names.intersection(job["jobName"] for job in jobs())) / len(names)

    return share


def crash_campaign(
    *,
    workdir: Path,
    campaign: Path,
    journal: Path,
    endpoint_url: str,
    kills: int,
    seed: int,
    delays: Callable[[random.Random], float] | None = None,
    plan: Sequence[KillAt] | None = None,
    progress: Callable[[], float] | None = None,
    poll: float = 0.05,
    extra_args: Sequence[str] = (),
    max_runs: int | None = None,
    final_timeout: float = 300,
    on_kill: Callable[[CrashRun, str], None] | None = None,
) -> CrashRun:
    """Run ``asyncjobs run`` until it exits 0 or 1, SIGKILLing it ``kills`` times first.

    Every run is the same command a user would retype: the campaign file and the same
    journal. The last run is never killed; a run that ends by itself before its kill is the
    campaign finishing (the caller compares ``kills`` with what it asked for).

    When a kill lands:

    - by default, after a seeded random delay into its run (see :func:`kill_delay`). On a
      fast enough machine the campaign may finish before every kill is spent;
    - with ``plan`` (one :class:`KillAt` per kill) and ``progress`` (the campaign's progress
      in [0, 1], see :func:`sent_share`), as the plan says, looking every ``poll`` seconds.
      And at once, whatever the plan, when ``progress`` reaches 1: once every spec has been
      sent the campaign could end within a job's length, and the kill must come first. Since
      no job lasts anywhere near ``poll``, every kill of the plan lands, on any machine.
    """
    if (plan is None) != (progress is None):
        raise ValueError("plan and progress go together")
    if plan is not None and len(plan) < kills:
        raise ValueError(f"the plan has {len(plan)} kills, not {kills}")
    rng = random.Random(seed)
    pick = delays or kill_delay
    run = CrashRun()
    args = (
        "run", str(campaign), "--journal", str(journal), "--endpoint-url", endpoint_url,
        "--output", "json", *extra_args,
    )  # fmt: skip
    env = cli_env(workdir)
    started = time.monotonic()
    before = snapshot(journal)
    limit = max_runs if max_runs is not None else kills * 3 + 10
    while True:
        if run.runs >= limit:
            raise AssertionError(f"the campaign did not finish in {run.runs} runs ({run.kills} kills)")
        process = start_cli(*args, cwd=workdir, env=env)
        run.runs += 1
        if run.kills < kills:
            if plan is not None and progress is not None:
                at = _paced_kill(process, plan[run.kills], progress, poll, final_timeout)
            else:
                at = _delayed_kill(process, pick(rng))
            if at is not None:
                _, err = process.communicate()
                if process.returncode == -signal.SIGKILL:
                    run.kills += 1
                    run.delays.append(at.seconds)
                    if at.share is not None:
                        run.shares.append(at.share)
                    run.forced += at.forced
                    after = snapshot(journal)
                    tags = where_killed(before, after, err.decode(errors="replace"))
                    before = after
                    run.landed.update(tags)
                    if on_kill is not None:
                        on_kill(run, "; ".join(tags))
                    continue
                # it exited by itself just before the kill: that run was the last one
                result = Result(process.returncode, "", err.decode(errors="replace"))
                return _finished(run, result, started)
        return _finished(run, finish(process, final_timeout), started)


@dataclass(frozen=True)
class _Kill:
    seconds: float  # into the run
    share: float | None = None  # the campaign's progress then (paced kills)
    forced: bool = False


def _delayed_kill(process: subprocess.Popen[bytes], delay: float) -> _Kill | None:
    try:
        process.wait(delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        return _Kill(delay)
    return None


def _paced_kill(
    process: subprocess.Popen[bytes], kill: KillAt, progress: Callable[[], float], poll: float, timeout: float
) -> _Kill | None:
    """SIGKILL ``process`` when ``kill`` is due, or at once when every spec has been sent;
    None if it ended by itself first."""
    started = time.monotonic()
    reached: float | None = None  # when the run saw the campaign reach ``kill.progress``
    while process.poll() is None:
        share = progress()
        now = time.monotonic()
        if now - started > timeout:
            process.kill()
            raise AssertionError(f"the run made no progress to {kill.progress:.0%} in {timeout}s")
        if reached is None and share >= kill.progress:
            reached = now
        due = reached is not None and now >= reached + kill.delay
        if due or share >= 1.0:
            process.send_signal(signal.SIGKILL)
            return _Kill(now - started, share, forced=not due)
        wait = poll if reached is None else min(poll, reached + kill.delay - now)
        time.sleep(max(0.0, wait))
    return None


def _finished(run: CrashRun, result: Result, started: float) -> CrashRun:
    if result.code not in (0, 1):
        raise AssertionError(f"run {run.runs} (after {run.kills} kills) failed:\n{result}")
    run.final = result  # the campaign ended (possibly before every kill was spent)
    run.seconds = time.monotonic() - started
    return run


def kill_delay(rng: random.Random) -> float:
    """A kill moment: a third of them in start-up and ingest, the rest once jobs are moving.

    The command takes about a second to import and ingest, so short delays kill it
    while it opens or fills the journal, and longer ones while creates are in flight
    and jobs are being tracked.
    """
    if rng.random() < 1 / 3:
        return rng.uniform(0.05, 1.5)
    return rng.uniform(1.0, 4.0)
