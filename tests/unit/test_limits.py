"""Adaptive create rate, backoff and capacity, with an injected clock."""

from __future__ import annotations

import random

import pytest

from asyncjobs.limits import (
    CAUTIOUS_FOR,
    FLOOR,
    PROBE_AFTER,
    PROBE_FACTOR,
    AdaptiveRate,
    Capacity,
    backoff,
    default_limit,
)


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


def accept(rate: AdaptiveRate, clock: Clock, *, seconds: float, every: float, held_back: bool = True) -> None:
    """Creates accepted every ``every`` seconds for ``seconds``, each held back by the pace or not."""
    for _ in range(round(seconds / every)):
        clock.now += every
        if held_back:
            rate.held_back()
        rate.on_success()


def test_knowing_nothing_it_starts_at_one_a_second_and_doubles_each_second_until_a_throttle() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    assert (rate.rate, rate.slow_start, rate.learned) == (1.0, True, None)
    accept(rate, clock, seconds=1.0, every=1.0)
    assert rate.rate == 2.0
    accept(rate, clock, seconds=1.0, every=0.5)
    assert rate.rate == 4.0
    accept(rate, clock, seconds=1.0, every=0.25)
    assert rate.rate == 8.0
    rate.on_throttle()  # 8/s is too fast; 4/s drew nothing for a second
    assert rate.rate == pytest.approx(4.0 * 0.95)
    assert not rate.slow_start and rate.learned == pytest.approx(3.8)
    accept(rate, clock, seconds=CAUTIOUS_FOR - 1, every=0.25)
    assert rate.rate == pytest.approx(3.8), "no probe towards 8/s for a while: 4/s is what is known to hold"
    accept(rate, clock, seconds=PROBE_AFTER + 2, every=0.25)
    assert rate.rate > 3.8


def test_a_slow_start_keeps_up_with_another_workers_doubling_of_the_shared_pace() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    assert rate.rising == 1.0
    accept(rate, clock, seconds=0.5, every=0.5)
    rate.keep_up(4.0)  # another worker's doublings took the pace to 4/s
    assert (rate.rate, rate.slow_start, rate.rising, rate.learned) == (4.0, True, 4.0, None)
    rate.keep_up(2.0)  # an older save: never back down
    assert rate.rate == 4.0
    accept(rate, clock, seconds=0.75, every=0.25)
    assert rate.rate == 4.0, "the next doubling a second after the one kept up with, not sooner"
    accept(rate, clock, seconds=0.25, every=0.25)
    assert rate.rate == 8.0
    rate.on_throttle()
    assert rate.rising is None
    rate.keep_up(16.0)  # a slow start over here is not resumed
    assert rate.rate == pytest.approx(4.0 * 0.95)
    assert AdaptiveRate(clock, initial=3.0).rising is None, "a learned pace: no slow start to keep up"


def test_slow_start_waits_while_the_slots_not_the_pace_hold_creates_back() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    accept(rate, clock, seconds=10.0, every=1.0, held_back=False)
    assert rate.rate == 1.0
    accept(rate, clock, seconds=1.0, every=1.0)
    assert rate.rate == 2.0


def test_probes_only_while_the_pace_holds_creates_back() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=2.0)
    clock.now += CAUTIOUS_FOR
    accept(rate, clock, seconds=8 * PROBE_AFTER, every=0.5, held_back=False)
    assert rate.rate == 2.0
    accept(rate, clock, seconds=2 * PROBE_AFTER, every=0.5)
    assert rate.rate == pytest.approx(2.0 * PROBE_FACTOR**2)


def test_near_a_throttled_pace_it_probes_only_after_a_long_quiet() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=10.0)
    clock.now += CAUTIOUS_FOR
    rate.on_throttle()  # at 10/s, with no accepted rate measured: cut to 7/s
    assert rate.rate == pytest.approx(7.0)
    accept(rate, clock, seconds=CAUTIOUS_FOR - 1, every=0.25)
    assert rate.rate == pytest.approx(10.0 * 0.95), "up to just below the pace that was throttled, no further"
    accept(rate, clock, seconds=PROBE_AFTER + 2, every=0.25)
    assert rate.rate > 10.0


def test_a_learned_pace_is_where_a_resumed_run_starts_without_a_slow_start() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=3.0)
    assert (rate.rate, rate.slow_start, rate.learned) == (3.0, False, 3.0)
    accept(rate, clock, seconds=CAUTIOUS_FOR - 1, every=1 / 3)
    assert rate.rate == 3.0, "no probe above a learned pace until it has been quiet for a while"
    assert AdaptiveRate(clock, initial=3.0, ceiling=2.0).rate == 2.0
    assert AdaptiveRate(clock, ceiling=2.0).rate == 2.0, "a given ceiling is where pacing starts"


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
        rate.held_back()
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


def test_a_cap_another_worker_found_is_taken_and_probed_above_later() -> None:
    cap = Capacity("personalize:us-east-1:batch-inference", 5)
    cap.adopt(3, 100.0)
    assert cap.cap == 3
    assert not cap.probe(150.0, after=60.0)  # as careful as if this worker had found it at 100
    assert cap.probe(161.0, after=60.0) and cap.cap == 4
    cap.adopt(9, 170.0)  # never above what this worker's settings allow
    assert cap.cap == 5 and not cap.probe(1000.0, after=60.0)
    cap.adopt(0, 180.0)
    assert cap.cap == 1


def test_a_change_of_cap_is_told_and_a_taken_one_is_not() -> None:
    told: list[int] = []
    cap = Capacity("bedrock:m", 20)
    cap.on_change = lambda: told.append(cap.cap)
    cap.exceeded(7, 10.0, random.Random(0))
    cap.exceeded(7, 11.0, random.Random(0))  # the same cap: nothing new to tell
    cap.probe(80.0, after=60.0)
    cap.accepted(12)
    cap.adopt(4, 90.0)  # came from another worker: not told back
    assert told == [7, 8, 12]


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


def test_a_throttle_that_was_not_one_is_undone_unless_another_came_since() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock, initial=4.0)
    clock.now += 10
    mark = rate.on_throttle()
    assert rate.rate == pytest.approx(2.8)
    rate.undo_throttle(mark)
    assert (rate.rate, rate.throttles) == (4.0, 0)
    first = rate.on_throttle()
    clock.now += 10
    rate.on_throttle()
    cut_twice = rate.rate
    rate.undo_throttle(first)
    assert rate.rate == cut_twice, "a later throttle stands"


def test_the_refusal_that_ended_the_slow_start_keeps_its_pace_whatever_its_cause() -> None:
    """Undone, it leaves the pace at the last one that drew no refusal (not the one just doubled
    to), ends the slow start, and counts as no throttle; probing upward follows a quiet time."""
    clock = Clock()
    rate = AdaptiveRate(clock)
    accept(rate, clock, seconds=1.0, every=1.0)
    accept(rate, clock, seconds=1.0, every=0.5)
    assert rate.rate == 4.0
    mark = rate.on_throttle()
    rate.undo_throttle(mark)
    assert (rate.rate, rate.slow_start, rate.throttles, rate.learned) == (2.0 * 0.95, False, 0, None)
    accept(rate, clock, seconds=PROBE_AFTER - 0.5, every=0.5)
    assert rate.rate == pytest.approx(1.9), "no doubling, and no probe before a quiet time"
    accept(rate, clock, seconds=1.0, every=0.5)
    assert rate.rate == pytest.approx(1.9 * PROBE_FACTOR), "then a probe upward, not held below 1.9"
    later = rate.on_throttle()
    rate.undo_throttle(later)
    assert rate.rate == pytest.approx(1.9 * PROBE_FACTOR), "past the slow start, an undone cut is undone"


def test_an_unclear_refusal_settles_the_pace_just_below_the_one_that_drew_it() -> None:
    """Neither the full cut of a throttle nor none: 5% below, and no probe past that for a while."""
    clock = Clock()
    rate = AdaptiveRate(clock, initial=2.2)
    clock.now += CAUTIOUS_FOR + 1
    mark = rate.on_throttle()
    assert rate.rate == pytest.approx(2.2 * 0.7)
    rate.soften_throttle(mark)
    assert rate.rate == pytest.approx(2.2 * 0.95)
    accept(rate, clock, seconds=CAUTIOUS_FOR - 1, every=0.5)
    assert rate.rate == pytest.approx(2.2 * 0.95), "no probe back towards the pace that drew it"
    later = rate.on_throttle()
    clock.now += 10
    rate.on_throttle()
    cut_twice = rate.rate
    rate.soften_throttle(later)
    assert rate.rate == cut_twice, "a later throttle stands"
