"""The sweep policy: sweep when a finished job would unblock something, rarely otherwise."""

from __future__ import annotations

import math

from asyncjobs.polling import Active, Durations, PollPolicy, next_sweep

POLICY = PollPolicy(min_interval=1.0, max_interval=30.0)


def durations(*values: float) -> dict[str, Durations]:
    d = Durations()
    for v in values:
        d.add(v)
    return {"bedrock": d}


def test_nothing_tracked_means_no_sweep() -> None:
    assert (
        next_sweep(0, 0, [], waiting_keys=frozenset(), finishing=True, durations={}, idle=0, policy=POLICY)
        == math.inf
    )


def test_no_demand_sweeps_at_the_max_interval() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    at = next_sweep(
        5, 0, jobs, waiting_keys=frozenset(), finishing=False, durations=durations(3), idle=0, policy=POLICY
    )
    assert at == 30.0


def test_waiting_for_a_slot_sweeps_when_half_the_blocking_jobs_should_be_done() -> None:
    jobs = [Active("bedrock:m", "bedrock", t) for t in (0.0, 1.0, 2.0, 3.0)]
    at = next_sweep(
        0.5,
        0,
        jobs,
        waiting_keys=frozenset({"bedrock:m"}),
        finishing=False,
        durations=durations(10, 10, 10),
        idle=0,
        policy=POLICY,
    )
    assert at == 11.0  # second of four jobs, median duration 10 s


def test_finishing_sweeps_when_every_job_should_be_done() -> None:
    jobs = [Active("bedrock:m", "bedrock", t) for t in (0.0, 4.0)]
    at = next_sweep(
        1,
        0,
        jobs,
        waiting_keys=frozenset(),
        finishing=True,
        durations=durations(2, 3, 4),
        idle=0,
        policy=POLICY,
    )
    assert at == 8.0


def test_stragglers_back_off() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    kw = dict(waiting_keys=frozenset(), finishing=True, durations=durations(1), policy=POLICY)
    gaps = [next_sweep(100, 100, jobs, idle=i, **kw) - 100 for i in range(7)]  # type: ignore[arg-type]
    assert gaps == [1, 2, 4, 8, 16, 30, 30]


def test_without_durations_sweeps_at_half_the_age() -> None:
    jobs = [Active("bedrock:m", "bedrock", 0.0)]
    at = next_sweep(
        20, 20, jobs, waiting_keys=frozenset(), finishing=True, durations={}, idle=0, policy=POLICY
    )
    assert at == 30.0
