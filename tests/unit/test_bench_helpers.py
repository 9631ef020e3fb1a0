"""The benchmarks' own arithmetic: references, spans and medians, against values worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.discovered import create_spans, keys_at_quota, span_ratio
from benchmarks.ideal import earliest_creates, emulator_burst, greedy_makespan, ideal_makespan
from benchmarks.quota_bound import compare_with_peers
from benchmarks.report import median_run, summary

KEY = "personalize:us-east-1:batch-inference"


def _records(*holds: float, kind: str = "personalize", key: str = KEY) -> list[dict[str, Any]]:
    """Finished jobs named in campaign order, each holding its slot for the given seconds."""
    return [
        {
            "kind": kind,
            "jobName": f"job-{i}",
            "quota_key": key,
            "submit_time": 100.0,
            "end_time": 100.0 + hold,
        }
        for i, hold in enumerate(holds)
    ]


@pytest.mark.parametrize(("rate", "burst"), [(2.0, 2.0), (4.0, 4.0), (0.5, 1.0), (1.0, 1.0)])
def test_the_emulator_bursts_its_rate_and_never_less_than_one(rate: float, burst: float) -> None:
    assert emulator_burst(rate) == burst


def test_earliest_creates_spend_the_burst_then_one_per_interval() -> None:
    # 2/s, burst 2: two at once, then one every 0.5 s
    assert earliest_creates(5, 2.0) == [0.0, 0.0, 0.5, 1.0, 1.5]
    # 0.5/s, burst 1: one at once, then one every 2 s
    assert earliest_creates(3, 0.5) == [0.0, 2.0, 4.0]
    assert earliest_creates(2, None) == [0.0, 0.0]


def test_the_greedy_reference_uses_the_emulators_burst_unless_told_otherwise() -> None:
    # four 1-s jobs on four slots at 2/s: created at 0, 0, 0.5, 1.0 with the burst of 2 (last ends
    # at 2.0); at 0, 0.5, 1.0, 1.5 without bursts (last ends at 2.5)
    records = _records(1.0, 1.0, 1.0, 1.0)
    slots = {"personalize": 4}
    assert greedy_makespan(records, create_rate=2.0, slots=slots) == pytest.approx(2.0)
    assert greedy_makespan(records, create_rate=2.0, slots=slots, burst=1) == pytest.approx(2.5)


def test_the_greedy_reference_reuses_a_slot_the_moment_it_frees() -> None:
    # one slot, jobs of 1, 2 and 1 s in campaign order: 0-1, 1-3, 3-4
    records = _records(1.0, 2.0, 1.0)
    assert greedy_makespan(records, create_rate=None, slots={"personalize": 1}) == pytest.approx(4.0)
    assert greedy_makespan(records, create_rate=2.0, slots={"personalize": 1}) == pytest.approx(4.0)


def test_the_ideal_is_the_largest_bound() -> None:
    # four 1-s jobs, four slots, 2/s: rate bound max(0+1, 0+1, 0.5+1, 1.0+1) = 2.0;
    # slot bound (4 s of work + 0 + 0 + 0.5 + 1.0 of create waits) / 4 = 1.375
    ideal = ideal_makespan(_records(1.0, 1.0, 1.0, 1.0), create_rate=2.0, slots={"personalize": 4})
    assert ideal.bounds == {"rate personalize": pytest.approx(2.0), f"slots {KEY}": pytest.approx(1.375)}
    assert (ideal.seconds, ideal.binding) == (pytest.approx(2.0), "rate personalize")


def test_create_span_over_the_least_the_bucket_allows() -> None:
    records = [{"kind": "bedrock", "submit_time": t} for t in (10.0, 10.0, 11.0, 12.5)] + [
        {"kind": "personalize-segment", "submit_time": t} for t in (10.0, 10.5, 11.0)
    ]
    spans = create_spans(records)
    assert spans == {"bedrock": (4, 2.5), "personalize": (3, 1.0)}
    # at 2/s with a burst of 2: 4 creates need (4 - 2) / 2 = 1 s, 3 need 0.5 s; the slower is 2.5 / 1
    assert span_ratio(spans, 2.0) == pytest.approx(2.5)
    assert span_ratio({"bedrock": (2, 0.0)}, 2.0) is None  # the burst alone: nothing to pace


def test_keys_at_quota_are_those_whose_slots_were_all_taken() -> None:
    # the emulator's default quotas: 20 per Bedrock model, 5 per Personalize kind
    peaks = {"bedrock:m1": 20, "bedrock:m2": 19, KEY: 5, "personalize:us-east-1:batch-segment": 4}
    assert keys_at_quota(peaks) == ["bedrock:m1", KEY]


def test_medians_and_spreads_over_runs() -> None:
    runs = [{"makespan_s": 3.0, "n": "c"}, {"makespan_s": 1.0, "n": "a"}, {"makespan_s": 2.0, "n": "b"}]
    assert summary(runs, "makespan_s") == {"makespan_s": 2.0, "makespan_s_spread": [1.0, 3.0]}
    assert median_run(runs, "makespan_s")["n"] == "b"
    assert median_run(runs[:2], "makespan_s")["n"] == "c"  # the upper middle of an even number


def test_asyncjobs_is_compared_with_the_baselines_that_know_as_much() -> None:
    entries = [
        {"contender": "asyncjobs_given", "makespan_s": 36.0},
        {"contender": "asyncjobs_discovered", "makespan_s": 40.0},
        {"contender": "baseline_standard", "makespan_s": 50.0},
        {"contender": "baseline_standard_given", "makespan_s": 40.0},
        {"contender": "baseline_adaptive_given", "makespan_s": 45.0},
    ]
    compare_with_peers(entries)
    given, discovered = entries[0], entries[1]
    assert given["makespan_vs_peers"] == {"baseline_standard_given": 0.9, "baseline_adaptive_given": 0.8}
    assert given["makespan_vs_best_peer"] == 0.9
    assert discovered["makespan_vs_peers"] == {"baseline_standard": 0.8}
