"""Adaptive create rate, backoff and capacity, with an injected clock."""

from __future__ import annotations

import random

import pytest

from asyncjobs.limits import FLOOR, PROBE_AFTER, AdaptiveRate, Capacity, backoff, default_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_full_jitter_under_a_cap() -> None:
    rng = random.Random(1)
    for attempt in range(40):
        bound = min(20.0, 0.5 * 2**attempt)
        samples = [backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= s <= bound for s in samples)
        assert max(samples) > bound * 0.8  # jitter spans the range


def test_unpaced_until_the_first_throttle_then_settles_at_the_accepted_rate() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    assert rate.rate is None
    for _ in range(20):  # the service accepts 2 per second
        clock.now += 0.5
        rate.on_success()
    rate.on_throttle()
    assert rate.rate is not None
    assert 1.7 <= rate.rate <= 2.0


def test_throttles_from_one_burst_cut_once() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=10.0)
    rate.on_throttle()
    after_first = rate.rate
    for _ in range(5):
        clock.now += 0.01
        rate.on_throttle()
    assert rate.rate == after_first
    assert rate.throttles == 6
    clock.now += 5
    rate.on_throttle()
    assert rate.rate is not None and after_first is not None and rate.rate < after_first


def test_probes_upward_but_never_above_the_ceiling() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, ceiling=3.0, initial=1.0)
    for _ in range(200):
        clock.now += PROBE_AFTER
        rate.on_success()
    assert rate.rate == 3.0


def test_never_below_the_floor() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=0.1)
    for _ in range(50):
        clock.now += 100
        rate.on_throttle()
    assert rate.rate == FLOOR


async def test_acquire_paces_calls() -> None:
    import anyio

    rate = AdaptiveRate(Clock(), ceiling=50.0)
    start = anyio.current_time()
    for _ in range(6):
        await rate.acquire()
    assert anyio.current_time() - start >= 5 / 50 * 0.9


def test_capacity_lowers_to_what_runs_and_probes_back() -> None:
    rng = random.Random(0)
    cap = Capacity("bedrock:m", 20)
    assert cap.free(5, 0.0) == 15
    cap.exceeded(7, 10.0, rng)
    assert cap.cap == 7 and cap.free(7, 10.0) == 0
    assert not cap.probe(20.0, after=60.0)
    assert cap.probe(71.0, after=60.0) and cap.cap == 8


def test_capacity_full_with_none_of_ours_holds_off() -> None:
    cap = Capacity("personalize:us-east-1:batch-inference", 5)
    cap.exceeded(0, 100.0, random.Random(0))
    assert cap.cap == 1
    assert cap.free(0, 100.0) == 0  # held: asking again at once would be a retry storm
    assert cap.free(0, 200.0) == 1
    cap.exceeded(0, 200.0, random.Random(0))
    cap.released()
    assert cap.free(0, 200.0) == 1


@pytest.mark.parametrize(
    ("key", "overrides", "expected"),
    [
        ("bedrock:anthropic.claude", {}, 20),
        ("personalize:us-east-1:batch-segment", {}, 5),
        ("bedrock:anthropic.claude", {"anthropic.claude": 8}, 8),
        ("bedrock:anthropic.claude", {"bedrock:anthropic.claude": 3, "bedrock": 9}, 3),
        ("bedrock:other", {"bedrock": 9}, 9),
        ("personalize:us-east-1:batch-inference", {"personalize": 2}, 2),
    ],
)
def test_default_limits(key: str, overrides: dict[str, int], expected: int) -> None:
    assert default_limit(key, overrides) == expected


def test_capacity_rises_to_what_the_service_accepted() -> None:
    cap = Capacity("bedrock:m", 20)
    cap.exceeded(3, 0.0, random.Random(0))  # rejected while 3 were journaled; more were in flight
    cap.accepted(5)
    assert cap.cap == 5
    cap.accepted(4)
    assert cap.cap == 5
    cap.accepted(50)
    assert cap.cap == 20
