"""The ideal makespan: a lower bound on the makespan of *any* schedule of a campaign.

It is computed from the emulator's own limits and from the durations the emulator drew
for each job (``GET /_emulator/jobs``: a job holds its quota slot from ``submit_time`` to
``end_time``; that hold time ``d`` is drawn from the job's name and the seed, so it does not
depend on when the job is created). Time 0 is the first create.

Two bounds, each true of every schedule; the ideal is the larger of all of them.

**Create rate (per service).** The emulator's token bucket holds ``B = max(1, r)`` tokens
and starts full, so the ``p``-th create of a service (from 0) cannot be accepted before
``t_p = max(0, (p + 1 - B) / r)``. Whichever job is created ``p``-th still runs for its ``d``,
so the makespan is at least ``max_p (t_p + d_p)`` for the order the schedule used; of all
orders, the one that pairs the longest jobs with the earliest creates minimises that maximum
(an exchange argument), so ``max_p (t_p + d_desc[p])`` bounds every order.

**Slots (per quota key with S slots and n jobs).** Let ``m = min(S, n)``. Each job occupies a
slot for ``d``; at most ``m`` slots are ever busy. The slot first used ``j``-th is first used
by the key's ``j``-th create, which is no earlier than the service's ``j``-th create, ``t_j``; so
it offers at most ``T - t_j`` of busy time before the makespan ``T``. Hence
``sum(d) <= m*T - sum_{j<m} t_j``, i.e. ``T >= (sum(d) + sum_{j<m} t_j) / m``; and ``T >= max(d)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asyncjobs.emulator.limits import TokenBucket


def emulator_burst(rate: float) -> float:
    """The burst of the emulator's create bucket at ``rate``, read from the emulator's own bucket.

    Asked of :class:`TokenBucket` rather than restated, so the bounds below cannot drift from
    what the emulator enforces (today ``max(1, rate)``).
    """
    return TokenBucket(rate, clock=lambda: 0.0).capacity


@dataclass(frozen=True)
class IdealBound:
    seconds: float
    binding: str  # which bound is the largest, e.g. "slots personalize:us-east-1:batch-segment"
    bounds: dict[str, float]


def earliest_creates(count: int, rate: float | None) -> list[float]:
    """The earliest acceptance time of each of ``count`` creates under the emulator's bucket."""
    if not rate:
        return [0.0] * count
    burst = emulator_burst(rate)
    return [max(0.0, (p + 1 - burst) / rate) for p in range(count)]


def hold_times(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[str, str, float]]:
    """(kind, jobName) -> (service, quota key, seconds from submit to end) of each job's first creation."""
    holds: dict[tuple[str, str], tuple[str, str, float]] = {}
    for record in records:
        key = (record["kind"], record["jobName"])
        if key in holds or record.get("end_time") is None:
            continue
        service = "bedrock" if record["kind"] == "bedrock" else "personalize"
        holds[key] = (service, record["quota_key"], float(record["end_time"]) - float(record["submit_time"]))
    return holds


def ideal_makespan(
    records: Iterable[Mapping[str, Any]], *, create_rate: float | None, slots: Mapping[str, int]
) -> IdealBound:
    """The lower bound for the jobs in ``records``; ``slots`` by service (``bedrock``, ``personalize``)."""
    by_service: dict[str, list[float]] = defaultdict(list)
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for service, quota_key, seconds in hold_times(records).values():
        by_service[service].append(seconds)
        by_key[(service, quota_key)].append(seconds)
    bounds: dict[str, float] = {}
    for service, durations in by_service.items():
        starts = earliest_creates(len(durations), create_rate)
        longest_first = sorted(durations, reverse=True)
        bounds[f"rate {service}"] = max(t + d for t, d in zip(starts, longest_first, strict=True))
    for (service, key), durations in by_key.items():
        used = min(slots[service], len(durations))
        starts = earliest_creates(used, create_rate)
        bounds[f"slots {key}"] = max(max(durations), (sum(durations) + sum(starts)) / used)
    binding = max(bounds, key=lambda name: bounds[name])
    return IdealBound(seconds=bounds[binding], binding=binding, bounds=bounds)


def greedy_makespan(
    records: Iterable[Mapping[str, Any]],
    *,
    create_rate: float | None,
    slots: Mapping[str, int],
    burst: float | None = None,
) -> float:
    """The makespan of an *online* greedy client with perfect, free knowledge of job ends.

    A reference beside the ideal, not a bound on every schedule: the client does not know
    durations in advance; it starts the next job of a key (in campaign order) the moment a
    slot of that key is free, and paces each service's creates with a bucket of ``burst``
    tokens refilled at ``create_rate`` (None, the default: the emulator's own burst,
    :func:`emulator_burst`, i.e. every create the emulator would accept; 1: one create every
    ``1/r``, no bursts, which is stricter than the emulator). When several keys of one service
    want a create at once, the one with the most work per slot goes first. What this makespan
    exceeds the ideal by is the cost of not knowing durations and of sharing the create
    rate; what a real client exceeds it by is the cost of finding out that jobs ended.
    """
    pending: dict[str, list[float]] = defaultdict(list)
    service_of: dict[str, str] = {}
    for (_, _name), (service, key, seconds) in sorted(hold_times(records).items(), key=lambda i: i[0][1]):
        pending[key].append(seconds)
        service_of[key] = service
    capacity = burst if burst is not None else emulator_burst(create_rate or 1.0)
    tokens = {service: (capacity, 0.0) for service in service_of.values()}  # (tokens, as of time)
    free_at = {key: [0.0] * min(slots[service_of[key]], len(jobs)) for key, jobs in pending.items()}
    done = 0.0
    while any(pending.values()):
        ready = [k for k in pending if pending[k]]
        key = min(ready, key=lambda k: (min(free_at[k]), -len(pending[k]) / len(free_at[k]), k))
        wanted = min(free_at[key])
        start = wanted
        if create_rate:
            have, since = tokens[service_of[key]]
            have = min(capacity, have + max(0.0, wanted - since) * create_rate)
            start = max(wanted, since)
            if have < 1.0:
                start += (1.0 - have) / create_rate
                have = 1.0
            tokens[service_of[key]] = (have - 1.0, start)
        seconds = pending[key].pop(0)
        slot = free_at[key].index(wanted)
        free_at[key][slot] = start + seconds
        done = max(done, start + seconds)
    return done


def slot_turnaround(records: Iterable[Mapping[str, Any]], *, slots: Mapping[str, int]) -> dict[str, Any]:
    """How long freed quota slots stayed empty: a diagnostic of how fast a client reuses them.

    Per quota key, the ``i``-th create beyond the first ``S`` needs the ``i``-th job end
    before it (the emulator refuses it otherwise), so the gap between the two is the time a
    slot stood empty while work was left. Returns the mean and 90th percentile over all keys,
    the total idle slot-seconds, and the mean per key (``by_key``): on a key that is bound by the
    create rate rather than its slots (Bedrock in the quota-bound scenario), a gap is the create
    pacing, not a slow reuse of the slot.
    """
    ends: dict[str, list[float]] = defaultdict(list)
    starts: dict[str, list[float]] = defaultdict(list)
    for record in records:
        key = record["quota_key"]
        starts[key].append(float(record["submit_time"]))
        if record.get("end_time") is not None:
            ends[key].append(float(record["end_time"]))
    gaps: list[float] = []
    by_key: dict[str, float] = {}
    for key, submitted in sorted(starts.items()):
        size = slots["bedrock" if key.startswith("bedrock:") else "personalize"]
        later = sorted(submitted)[size:]
        mine = [max(0.0, s - e) for s, e in zip(later, sorted(ends[key]), strict=False)]
        if mine:
            by_key[key] = round(sum(mine) / len(mine), 3)
        gaps += mine
    if not gaps:
        return {"mean_s": 0.0, "p90_s": 0.0, "idle_slot_s": 0.0, "by_key": {}}
    gaps.sort()
    return {
        "mean_s": round(sum(gaps) / len(gaps), 3),
        "p90_s": round(gaps[min(len(gaps) - 1, int(0.9 * len(gaps)))], 3),
        "idle_slot_s": round(sum(gaps), 1),
        "by_key": by_key,
    }
