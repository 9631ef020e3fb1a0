"""The sweep policy: sweep when a finished job would unblock something, rarely otherwise."""

from __future__ import annotations

import math
from typing import Any

import pytest

from asyncjobs.polling import Active, Durations, KeyLoad, PollPolicy, bearing, next_sweep, urgent_keys

POLICY = PollPolicy(min_interval=1.0, max_interval=30.0)
NONE: frozenset[str] = frozenset()


def durations(*values: float, kind: str = "bedrock") -> dict[str, Durations]:
    d = Durations()
    for v in values:
        d.add(v)
    return {kind: d}


def sweep(now: float, last: float, jobs: list[Active], **kw: Any) -> float:
    args: dict[str, Any] = {
        "waiting_keys": NONE,
        "urgent": NONE,
        "finishing": False,
        "idle": 0,
        "policy": POLICY,
    }
    args.update(kw)
    return next_sweep(now, last, jobs, **args)


def test_nothing_tracked_means_no_sweep() -> None:
    assert sweep(0, 0, [], finishing=True, durations={}) == math.inf


def test_no_demand_sweeps_at_the_max_interval() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    assert sweep(5, 0, jobs, durations=durations(3)) == 30.0


def test_an_urgent_full_key_sweeps_when_its_first_job_should_be_done() -> None:
    jobs = [Active("bedrock:m", "bedrock", t) for t in (0.0, 1.0, 2.0, 3.0)]
    key = frozenset({"bedrock:m"})
    assert sweep(0.5, 0, jobs, waiting_keys=key, urgent=key, durations=durations(10, 10, 10)) == 10.0


def test_a_full_key_off_the_critical_path_waits_for_half_its_jobs() -> None:
    jobs = [Active("bedrock:m", "bedrock", t) for t in (0.0, 1.0, 2.0, 3.0)]
    key = frozenset({"bedrock:m"})
    assert sweep(0.5, 0, jobs, waiting_keys=key, durations=durations(10, 10, 12)) == 11.0


def test_finishing_sweeps_when_every_job_should_be_done() -> None:
    jobs = [Active("bedrock:m", "bedrock", t) for t in (0.0, 4.0)]
    assert sweep(1, 0, jobs, finishing=True, durations=durations(2, 3, 4)) == 8.0


def test_stragglers_back_off() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    gaps = [sweep(100, 100, jobs, finishing=True, durations=durations(1), idle=i) - 100 for i in range(7)]
    assert gaps == [1, 2, 4, 8, 16, 30, 30]


def test_without_durations_sweeps_at_half_the_age() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    assert sweep(20, 20, jobs, finishing=True, durations={}) == 30.0


def test_urgent_keys_are_those_near_the_critical_path() -> None:
    d = {**durations(3.0, kind="bedrock"), **durations(3.0, kind="personalize")}
    loads = [
        KeyLoad("bedrock:a", "bedrock", "bedrock", pending=20, cap=8),  # 7.5 s of slots
        KeyLoad("personalize:r:batch-inference", "personalize", "personalize", pending=20, cap=3),  # 20 s
    ]
    assert urgent_keys(loads, d, {}) == {"personalize:r:batch-inference"}
    # a slow create rate makes Bedrock's queue the long pole instead: 20 / 0.5 = 40 s
    assert urgent_keys(loads, d, {"bedrock": 0.5}) == NONE
    assert urgent_keys(loads, {}, {}) == {"bedrock:a", "personalize:r:batch-inference"}
    assert urgent_keys([KeyLoad("k", "bedrock", "bedrock", 0, 1)], d, {}) == NONE


def test_an_urgent_key_keeps_looking_without_backing_off() -> None:
    jobs = [Active("personalize:r:batch-inference", "personalize", 0.0)]
    key = frozenset({"personalize:r:batch-inference"})
    d = durations(3.0, kind="personalize")
    # the first job may be done since t=3; nothing seen for five sweeps: still every min_interval
    assert sweep(10, 10, jobs, waiting_keys=key, urgent=key, durations=d, idle=5) == 11.0
    # the same key off the critical path backs off
    assert sweep(10, 10, jobs, waiting_keys=key, durations=d, idle=5) == 40.0


@pytest.mark.parametrize("known", [True, False], ids=["durations-known", "durations-unknown"])
@pytest.mark.parametrize(
    ("finishing", "waiting", "urgent"),
    [
        (True, NONE, NONE),
        (False, frozenset({"bedrock:a"}), NONE),
        (False, frozenset({"bedrock:a"}), frozenset({"bedrock:a"})),
        (False, NONE, NONE),
    ],
    ids=["finishing", "one-full-key", "one-urgent-key", "no-demand"],
)
def test_the_jobs_the_tracker_passes_give_the_answer_all_jobs_give(
    known: bool, finishing: bool, waiting: frozenset[str], urgent: frozenset[str]
) -> None:
    """The tracker passes the policy only the jobs that :func:`bearing` picks; the policy must
    answer the same as for every tracked job."""
    # submitted out of order, so neither the first nor the last of the index is the earliest
    times = [0.7 * ((i * 17) % 40) for i in range(40)]
    jobs = [Active("bedrock:a" if i % 3 else "bedrock:b", "bedrock", t) for i, t in enumerate(times)]
    by_id = {f"j{i}": job for i, job in enumerate(jobs)}
    by_key: dict[str, dict[str, Active]] = {}
    for job_id, job in by_id.items():
        by_key.setdefault(job.key, {})[job_id] = job
    known_durations = durations(2.0, 3.0, 5.0, 8.0) if known else {}
    chosen = bearing(by_id, by_key, waiting, finishing=finishing, active=lambda job: job)
    assert len(chosen) < len(jobs)
    for now, last in ((30.0, 28.0), (40.0, 20.0), (60.0, 59.5)):
        kw = {"waiting_keys": waiting, "urgent": urgent, "finishing": finishing}
        assert sweep(now, last, chosen, durations=known_durations, **kw) == sweep(
            now, last, jobs, durations=known_durations, **kw
        )
