"""When to sweep job statuses next: a pure policy, so that it can be tested without a clock.

A sweep is one List call per job kind (or a few Describes); it answers for every job
of that kind at once, so the question is only *when*. Sweeping is worth it when a
finished job would let something happen:

- a quota key is full while work waits for it. If that key is on the campaign's
  critical path (*urgent*: draining it would take about as long as the whole
  remaining campaign), sweep from the time its first job may be done, every
  ``min_interval``, so a freed slot is refilled at once. Otherwise sweep when
  about half its jobs should be done: one read frees several slots.
- no work is left to submit: sweep when every job should be done.

Otherwise the tracker sweeps at the longest interval, just to keep the journal
fresh. Job durations are learned from the service's own timestamps (submit to
end), so the tracker predicts when jobs finish instead of polling blindly; before
anything has finished, it sweeps at a fraction of the oldest job's age.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

#: Durations kept per job kind.
KEEP = 64
#: A key is urgent when draining it takes at least this share of the critical path.
URGENT_SHARE = 0.6


@dataclass
class Durations:
    """Observed run times of finished jobs of one kind (seconds, the service's clock)."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))

    def add(self, seconds: float) -> None:
        if seconds >= 0 and math.isfinite(seconds):
            self.samples.append(seconds)

    def quantile(self, q: float) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Active:
    """A tracked job, as the policy sees it."""

    key: str
    kind: str
    submitted_at: float


@dataclass(frozen=True, slots=True)
class KeyLoad:
    """The work waiting on one quota key."""

    key: str
    kind: str
    service: str
    pending: int
    cap: int


@dataclass(frozen=True, slots=True)
class PollPolicy:
    min_interval: float = 0.5
    max_interval: float = 30.0


def urgent_keys(
    loads: Iterable[KeyLoad], durations: Mapping[str, Durations], rates: Mapping[str, float | None]
) -> frozenset[str]:
    """Keys whose draining is on (or near) the campaign's critical path.

    A key drains in about ``pending * median duration / cap``; a service's creates
    take ``pending / rate``. Keys with no known duration count as urgent.
    """
    loads = [load for load in loads if load.pending > 0]
    drain: dict[str, float] = {}
    per_service: dict[str, int] = {}
    unknown: set[str] = set()
    for load in loads:
        per_service[load.service] = per_service.get(load.service, 0) + load.pending
        d = durations.get(load.kind)
        median = d.quantile(0.5) if d else None
        if median is None:
            unknown.add(load.key)
        else:
            drain[load.key] = load.pending * median / max(1, load.cap)
    critical = max(
        [*drain.values(), *(n / r for s, n in per_service.items() if (r := rates.get(s)) and r > 0)],
        default=0.0,
    )
    return frozenset(unknown | {k for k, t in drain.items() if t >= URGENT_SHARE * critical})


J = TypeVar("J")


def bearing(
    jobs: Mapping[str, J],
    by_key: Mapping[str, Mapping[str, J]],
    waiting_keys: Iterable[str],
    *,
    finishing: bool,
    active: Callable[[J], Active],
) -> list[Active]:
    """The jobs of one kind that bear on :func:`next_sweep`'s answer, found without a pass
    over all of them while work is still being submitted: the jobs of its full keys (at most
    their caps), or once finishing, the earliest and the latest submitted (the policy looks
    only at those two). With none of those, any one job: the kind is still swept now and then.

    ``jobs`` are the kind's tracked jobs by id, ``by_key`` the same jobs by quota key, and
    ``active`` how the policy sees a job.
    """
    if finishing:
        seen = [active(job) for job in jobs.values()]
        return [min(seen, key=_submitted), max(seen, key=_submitted)]
    chosen = [active(job) for key in waiting_keys for job in by_key.get(key, {}).values()]
    return chosen or [active(next(iter(jobs.values())))]


def _submitted(job: Active) -> float:
    return job.submitted_at


def next_sweep(
    now: float,
    last: float,
    active: Iterable[Active],
    *,
    waiting_keys: frozenset[str],
    urgent: frozenset[str],
    finishing: bool,
    durations: Mapping[str, Durations],
    idle: int,
    policy: PollPolicy,
) -> float:
    """The time of the next sweep of these jobs (``math.inf`` when there are none).

    ``waiting_keys``: quota keys that are full while work waits for them; ``urgent``
    those of them on the critical path. ``finishing``: no work is left to submit.
    ``idle``: sweeps in a row that observed no change (backs off stragglers).

    Of ``active``, only the jobs of ``waiting_keys`` matter, or when ``finishing`` the earliest
    and the latest submitted; with none of those, any one job stands for the rest. The tracker
    passes just those (a test holds the answer equal to the one for every job).
    """
    jobs = list(active)
    if not jobs:
        return math.inf
    floor = last + policy.min_interval * (2.0 ** min(idle, 5))
    ceiling = last + policy.max_interval
    targets: list[float] = []
    urgent_due = False
    groups: dict[str, list[Active]] = {}
    for job in jobs:
        if finishing or job.key in waiting_keys:
            groups.setdefault("all" if finishing else job.key, []).append(job)
    for key, group in groups.items():
        first = key in urgent and not finishing
        predicted: list[float] = []
        unknown: list[float] = []
        for job in group:
            d = durations.get(job.kind)
            q = d.quantile(0.9 if finishing else 0.25 if first else 0.5) if d else None
            if q is None:
                unknown.append(job.submitted_at)
            else:
                predicted.append(job.submitted_at + q)
        if unknown:
            targets.append(last + max(policy.min_interval, 0.5 * (now - min(unknown))))
        if predicted:
            predicted.sort()
            if finishing:
                targets.append(predicted[-1])
            elif first:  # a slot of the critical path may be free: look again soon, without backing off
                targets.append(max(predicted[0], last + policy.min_interval))
                urgent_due = True
            else:  # about half of this key's jobs should be done: one read frees several slots
                targets.append(predicted[(len(predicted) - 1) // 2])
    if not targets:
        return max(floor, ceiling)
    if urgent_due:
        floor = last + policy.min_interval
    return min(ceiling, max(floor, min(targets)))
