"""When to sweep job statuses next: a pure policy, so that it can be tested without a clock.

A sweep is one List call per service (or a few Describes); it answers for every job
at once, so the question is only *when*. Sweeping is worth it when a finished job
would let something happen: a job is waiting for a slot of a full quota key, or the
campaign is waiting only for its last jobs. Otherwise the tracker sweeps rarely,
just to keep the journal fresh.

Job durations are learned from the service's own timestamps (submit to end), so
the tracker predicts when jobs finish instead of polling blindly. Before anything
has finished, it sweeps at a fraction of the oldest job's age.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Durations kept per job kind.
KEEP = 64


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
class PollPolicy:
    min_interval: float = 1.0
    max_interval: float = 30.0


def next_sweep(
    now: float,
    last: float,
    active: Iterable[Active],
    *,
    waiting_keys: frozenset[str],
    finishing: bool,
    durations: Mapping[str, Durations],
    idle: int,
    policy: PollPolicy,
) -> float:
    """The time of the next sweep (``math.inf`` when nothing is tracked).

    ``waiting_keys``: quota keys that are full while work waits for them.
    ``finishing``: no work is left to submit; the campaign waits only for these jobs.
    ``idle``: sweeps in a row that observed no change (backs off stragglers).
    """
    jobs = list(active)
    if not jobs:
        return math.inf
    floor = last + policy.min_interval * (2.0 ** min(idle, 5))
    ceiling = last + policy.max_interval
    relevant = jobs if finishing else [j for j in jobs if j.key in waiting_keys]
    if not relevant:
        return max(floor, ceiling)
    predicted: list[float] = []
    unknown: list[float] = []
    for job in relevant:
        d = durations.get(job.kind)
        mid = d.quantile(0.5) if d else None
        hi = d.quantile(0.9) if d else None
        if mid is None or hi is None:
            unknown.append(job.submitted_at)
        else:
            predicted.append(job.submitted_at + (hi if finishing else mid))
    targets: list[float] = []
    if unknown:
        oldest = min(unknown)
        targets.append(last + max(policy.min_interval, 0.5 * (now - oldest)))
    if predicted:
        predicted.sort()
        if finishing:
            targets.append(predicted[-1])
        else:
            # when about half of the blocking jobs should be done: one sweep frees several slots
            targets.append(predicted[(len(predicted) - 1) // 2])
    return min(ceiling, max(floor, min(targets)))
