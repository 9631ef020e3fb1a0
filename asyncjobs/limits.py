"""Request rates, backoff and running-job capacity: decisions as values, time injected.

- :class:`AdaptiveRate` paces create calls with an :class:`aiolimiter.AsyncLimiter`.
  AWS documents no request-rate quota for these APIs, so with no ceiling it starts
  unpaced (like botocore's adaptive mode) and, on the first throttle, drops to what
  the service was actually accepting; it cuts multiplicatively on every further
  throttle and probes upward while calls succeed, never above the user's ceiling.
- :func:`backoff` is full jitter under a cap, from an injected ``random.Random``.
- :class:`Capacity` is the believed cap of one running-jobs quota key; it is lowered
  to what is really running when the service says the quota is full below it, and
  probes back up slowly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

Clock = Callable[[], float]

#: Multiplicative decrease on a throttle.
BETA = 0.7
#: Share of the measured accepted rate to settle at after a throttle.
SETTLE = 0.95
#: Multiplicative increase per probe, and the quiet time between probes.
PROBE_FACTOR = 1.1
PROBE_AFTER = 4.0
#: The slowest pace the limiter falls to (one create every 20 s).
FLOOR = 0.05
#: Window over which accepted creates are counted to measure the real rate.
WINDOW = 10.0


def backoff(attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 20.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]; ``attempt`` starts at 0."""
    return rng.uniform(0.0, min(cap, base * (2.0 ** min(attempt, 30))))


class AdaptiveRate:
    """The create-call pace of one (service, region)."""

    def __init__(self, clock: Clock, *, ceiling: float | None = None, initial: float | None = None) -> None:
        self._clock = clock
        self.ceiling = ceiling
        start = initial if initial is not None else ceiling
        if start is not None and ceiling is not None:
            start = min(start, ceiling)
        self.rate: float | None = start  # None: unpaced
        self._limiter = self._make(start)
        self._accepted: deque[float] = deque()
        self._changed = clock()
        self._last_throttle: float | None = None
        self.throttles = 0

    @staticmethod
    def _make(rate: float | None) -> AsyncLimiter | None:
        # capacity 1: no bursts, one call every 1/rate seconds
        return None if rate is None else AsyncLimiter(1, 1.0 / rate)

    async def acquire(self) -> None:
        """Wait for this caller's turn. A rate change re-queues waiters at the new pace."""
        while True:
            limiter = self._limiter
            if limiter is None:
                return
            await limiter.acquire()
            if limiter is self._limiter:
                return

    def _set(self, rate: float | None) -> None:
        if rate is not None:
            rate = max(FLOOR, rate if self.ceiling is None else min(rate, self.ceiling))
        if rate != self.rate:
            self.rate = rate
            self._limiter = self._make(rate)
        self._changed = self._clock()

    def _measured(self, now: float) -> float | None:
        while self._accepted and self._accepted[0] < now - WINDOW:
            self._accepted.popleft()
        if len(self._accepted) < 2:
            return None
        span = max(1.0, now - self._accepted[0])
        return len(self._accepted) / span

    def on_success(self) -> None:
        now = self._clock()
        self._accepted.append(now)
        if self.rate is None or (self.ceiling is not None and self.rate >= self.ceiling):
            return
        quiet_since = max(self._changed, self._last_throttle or 0.0)
        if now - quiet_since >= PROBE_AFTER:
            self._set(self.rate * PROBE_FACTOR)

    def on_throttle(self) -> None:
        """Slow down; several throttles from one burst count as one."""
        now = self._clock()
        self.throttles += 1
        gap = 1.0 if self.rate is None else max(1.0, 2.0 / self.rate)
        if self._last_throttle is not None and now - self._last_throttle < gap and now - self._changed < gap:
            self._last_throttle = now
            return
        self._last_throttle = now
        measured = self._measured(now)
        if self.rate is None:
            self._set(measured * SETTLE if measured else 1.0)
        else:
            cut = self.rate * BETA
            self._set(max(cut, measured * SETTLE) if measured and measured * SETTLE < self.rate else cut)


@dataclass
class Capacity:
    """The believed cap on submitted-plus-running jobs of one quota key."""

    key: str
    limit: int
    cap: int = field(init=False)
    lowered_at: float | None = field(default=None, init=False)
    #: While none of ours hold a slot, other users fill the quota: wait before trying again.
    hold_until: float = field(default=0.0, init=False)
    rejections: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.cap = self.limit

    def free(self, in_use: int, now: float) -> int:
        if now < self.hold_until:
            return 0
        return max(0, self.cap - in_use)

    def exceeded(self, in_use: int, now: float, rng: random.Random) -> None:
        """The service said the quota is full while ``in_use`` others of ours hold slots."""
        self.rejections += 1
        self.cap = max(1, min(self.cap, in_use))
        self.lowered_at = now
        if in_use == 0:  # nothing of ours will free a slot: back off instead of asking again at once
            self.hold_until = now + backoff(min(self.rejections, 6), rng, base=1.0, cap=60.0) + 1.0

    def accepted(self, running: int) -> None:
        """The service accepted a job while ``running`` of ours hold slots: the quota is at least that."""
        if running > self.cap:
            self.cap = min(self.limit, running)

    def released(self) -> None:
        """One of ours left the quota: a slot is really free."""
        self.hold_until = 0.0

    def probe(self, now: float, after: float) -> bool:
        """Raise a lowered cap by one once ``after`` seconds passed without a rejection."""
        if self.lowered_at is None or self.cap >= self.limit or now - self.lowered_at < after:
            return False
        self.cap += 1
        self.lowered_at = now if self.cap < self.limit else None
        return True


#: The AWS default running-jobs quotas (Bedrock: per base model; Personalize: per region and kind).
DEFAULT_MAX_RUNNING = {"bedrock": 20, "personalize": 5}


def default_limit(key: str, overrides: dict[str, int]) -> int:
    """The cap of ``key``: an exact override, one by model id or service, else the AWS default."""
    if key in overrides:
        return overrides[key]
    service, _, rest = key.partition(":")
    if rest in overrides:
        return overrides[rest]
    if service in overrides:
        return overrides[service]
    return DEFAULT_MAX_RUNNING.get(service, 5)
