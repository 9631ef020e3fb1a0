"""Request rates, backoff and running-job capacity: decisions as values, time injected.

- :class:`AdaptiveRate` paces create calls with an :class:`aiolimiter.AsyncLimiter`.
  AWS documents no request-rate quota for these APIs. Given a ceiling, the pace starts
  there; given a pace learned by an earlier run, it starts from that; knowing nothing, it
  starts slowly (one create a second) and doubles each second until the first throttle,
  then settles at the last pace that drew none. Each further throttle cuts the pace; it
  probes upward only while the pace (not the running-job slots) holds creates back, and
  near a pace that was throttled only after a long quiet time.
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

import anyio
from aiolimiter import AsyncLimiter

Clock = Callable[[], float]

#: The pace, creates per second, of a service whose limit nothing says yet.
START = 1.0
#: Multiplicative decrease on a throttle.
BETA = 0.7
#: Share of a pace known to be too fast (or of the measured accepted rate) to settle at.
SETTLE = 0.95
#: Multiplicative increase per probe, and the quiet time between probes.
PROBE_FACTOR = 1.1
PROBE_AFTER = 4.0
#: How long after a throttle the pace stays below ``SETTLE`` x the pace that drew it.
CAUTIOUS_FOR = 60.0
#: The slowest pace the limiter falls to (one create every 20 s).
FLOOR = 0.05
#: Window over which accepted creates are counted to measure the real rate.
WINDOW = 10.0


def backoff(attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 20.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]; ``attempt`` starts at 0."""
    return rng.uniform(0.0, min(cap, base * (2.0 ** min(attempt, 30))))


class AdaptiveRate:
    """The create-call pace of one (service, region), in calls per second."""

    def __init__(
        self,
        clock: Clock,
        *,
        ceiling: float | None = None,
        initial: float | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        #: Called after each change of pace (workers sharing one pace hear of it at once).
        self._on_change = on_change
        self.ceiling = ceiling
        now = clock()
        #: Doubling each second until the first throttle: nothing is known of the limit yet.
        self.slow_start = initial is None and ceiling is None
        self._last_throttle: float | None = None
        #: The pace that drew the last throttle: probes stay below it for a while.
        self._throttled_pace: float | None = None
        if initial is not None:
            # learned by an earlier run: as careful near it as if it had just been throttled there
            self._last_throttle, self._throttled_pace = now, initial / SETTLE
        start = initial if initial is not None else ceiling if ceiling is not None else START
        self.rate: float = self._bounded(start)
        self._limiter = AsyncLimiter(1, 1.0 / self.rate)  # capacity 1: no bursts
        self._accepted: deque[float] = deque()
        self._changed = now
        self._held_back: float | None = None
        self._queued: set[anyio.CancelScope] = set()
        self._holds = 0
        self._throttle_seq = 0
        self._undo: tuple[float, bool, float | None, float | None, float] | None = None
        self._last_sent = float("-inf")  # event-loop time of the last call let through
        self._released: anyio.Event | None = None
        self.throttles = 0

    @property
    def learned(self) -> float | None:
        """The pace in force, once a throttle has shown where the limit lies (worth keeping for
        the next run); None while nothing has."""
        return None if self._throttled_pace is None else self.rate

    @property
    def rising(self) -> float | None:
        """The pace of a slow start still going on (None once it is over): workers sharing this
        pace double it together (:meth:`keep_up`)."""
        return self.rate if self.slow_start else None

    def keep_up(self, pace: float) -> None:
        """Another worker sharing this pace doubled it in its slow start to ``pace``: go on from
        there, doubling again a second after, as if this worker had doubled it. Each worker
        doubling on its own would send the workers' shared creates at a mix of paces, the
        fastest ahead of where one worker's slow start would be; a slow start that is over here
        (a refusal ended it) is not resumed."""
        if self.slow_start and self._bounded(pace) > self.rate:
            self._set(pace)

    def adopt(self, pace: float) -> None:
        """Another worker sharing this pace learned ``pace``: take it, as careful near it as a pace
        learned by an earlier run."""
        self.slow_start = False
        self._last_throttle, self._throttled_pace = self._clock(), pace / SETTLE
        self._set(pace)

    def _bounded(self, rate: float) -> float:
        return max(FLOOR, rate if self.ceiling is None else min(rate, self.ceiling))

    def hold(self) -> None:
        """No create goes out until as many :meth:`release` calls (a probe is sent meanwhile)."""
        self._holds += 1
        if self._holds == 1:
            self._released = anyio.Event()

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)
        if self._holds == 0 and self._released is not None:
            self._released.set()

    async def acquire(self, *, through_hold: bool = False) -> None:
        """Wait for this caller's turn. A change of pace moves every waiter to the new pace at
        once (left queued on the old limiter, they would drain at the old pace). A hold keeps
        every caller waiting but the one sent ``through_hold`` (it still takes its turn)."""
        while True:
            while self._holds and self._released is not None and not through_hold:
                await self._released.wait()
            limiter = self._limiter
            if limiter.has_capacity():
                await limiter.acquire()
            else:
                self.held_back()
                with anyio.CancelScope() as queued:
                    self._queued.add(queued)
                    try:
                        await limiter.acquire()
                    finally:
                        self._queued.discard(queued)
                if queued.cancelled_caught or limiter is not self._limiter:
                    continue
            # a new limiter starts empty: the first call after a change of pace still keeps its
            # distance from the last one sent under the old pace
            wait = self._last_sent + 1.0 / self.rate - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
            self._last_sent = anyio.current_time()
            return

    def held_back(self) -> None:
        """A create had to wait for the pace: only then is a faster pace worth probing for."""
        self._held_back = self._clock()

    def binding(self, now: float) -> bool:
        """Whether the pace has held a create back lately (else the slots, or the work, bound)."""
        return self._held_back is not None and now - self._held_back <= max(2.0, 2.0 / self.rate)

    def _set(self, rate: float) -> None:
        rate = self._bounded(rate)
        if rate != self.rate:
            self.rate = rate
            self._limiter = AsyncLimiter(1, 1.0 / rate)
            for queued in self._queued:
                queued.cancel()
            if self._on_change is not None:
                self._on_change()
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
        if not self.binding(now) or (self.ceiling is not None and self.rate >= self.ceiling):
            return
        if self.slow_start:
            if now - self._changed >= 1.0:
                self._set(self.rate * 2)
            return
        last_throttle = self._last_throttle or 0.0
        if now - max(self._changed, last_throttle) < PROBE_AFTER:
            return
        target = self.rate * PROBE_FACTOR
        if self._throttled_pace is not None and now - last_throttle < CAUTIOUS_FOR:
            target = min(target, self._throttled_pace * SETTLE)
        if target > self.rate:
            self._set(target)

    def on_throttle(self) -> int:
        """Slow down; several throttles from one burst count as one. Returns a mark that
        :meth:`undo_throttle` takes, for a throttle that may turn out not to have been one."""
        self._undo = (self.rate, self.slow_start, self._last_throttle, self._throttled_pace, self._changed)
        self._throttle_seq += 1
        self._throttle(self._clock())
        return self._throttle_seq

    def undo_throttle(self, mark: int) -> None:
        """The throttle that returned ``mark`` was not one (a full quota, say): the pace goes back
        to where it was, unless another throttle has come since.

        Not so for the refusal that ended the slow start: whatever its cause, the pace stays at
        the last one that drew no refusal for a second, and the slow start stays over (as a loss
        ends TCP's). The pace it was cut from had been reached by doubling less than a second
        before and nothing has shown the service takes it; going back there drew a refusal on
        nearly every later create, and resuming the doubling ran the pace to 8 and 16 creates/s
        against a service of 2. Nothing was learned of the limit, so the pace probes upward as
        after any quiet time, without the caution kept near a pace that was throttled.
        """
        if mark != self._throttle_seq or self._undo is None:
            return
        rate, ended_slow_start, self._last_throttle, self._throttled_pace, changed = self._undo
        self._undo = None
        self.throttles -= 1
        if not ended_slow_start:
            self._set(rate)
            self._changed = changed

    def soften_throttle(self, mark: int) -> None:
        """The throttle that returned ``mark`` may or may not have been one: instead of its cut,
        the pace settles just below the one that drew it, and probes stay below that for a
        while, as after a throttle. Undone, a pace probed just past the service's drew a refusal
        every few creates, each as unclear; kept, the cuts added up and the pace fell as low as
        1.2 creates/s against a service of 2. No-op if another throttle came since."""
        if mark != self._throttle_seq or self._undo is None:
            return
        drew = self._undo[0]
        ended_slow_start = self._undo[1]
        self.undo_throttle(mark)
        if not ended_slow_start:
            self._last_throttle, self._throttled_pace = self._clock(), drew
            self._set(drew * SETTLE)

    def _throttle(self, now: float) -> None:
        self.throttles += 1
        gap = max(1.0, 2.0 / self.rate)
        if self._last_throttle is not None and now - self._last_throttle < gap and now - self._changed < gap:
            self._last_throttle = now
            return
        self._last_throttle = now
        self._throttled_pace = self.rate
        if self.slow_start:
            # the pace before the last doubling drew no throttle for a second; the limit lies
            # between the two, and probing stays at the lower one for a while
            self.slow_start = False
            self._throttled_pace = self.rate / 2
            self._set(self.rate / 2 * SETTLE)
            return
        measured = self._measured(now)
        cut = self.rate * BETA
        self._set(max(cut, measured * SETTLE) if measured and measured * SETTLE < self.rate else cut)


@dataclass
class Capacity:
    """The believed cap on submitted-plus-running jobs of one quota key."""

    key: str
    limit: int
    #: Called after each change of cap (workers sharing the quota hear of it at once).
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)
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
        self._set(max(1, min(self.cap, in_use)))
        self.lowered_at = now
        if in_use == 0:  # nothing of ours will free a slot: back off instead of asking again at once
            self.hold_until = now + backoff(min(self.rejections, 6), rng, base=1.0, cap=60.0) + 1.0

    def accepted(self, running: int) -> None:
        """The service accepted a job while ``running`` of ours hold slots: the quota is at least that."""
        if running > self.cap:
            self._set(min(self.limit, running))

    def released(self) -> None:
        """One of ours left the quota: a slot is really free."""
        self.hold_until = 0.0

    def probe(self, now: float, after: float) -> bool:
        """Raise a lowered cap by one once ``after`` seconds passed without a rejection."""
        if self.lowered_at is None or self.cap >= self.limit or now - self.lowered_at < after:
            return False
        self._set(self.cap + 1)
        self.lowered_at = now if self.cap < self.limit else None
        return True

    def adopt(self, cap: int, now: float) -> None:
        """Another worker sharing this quota found its cap at ``cap``: take it, and probe above
        it no sooner than if this worker had found it now (the workers' probes stay apart)."""
        self.cap = max(1, min(self.limit, cap))
        self.lowered_at = now if self.cap < self.limit else None

    def _set(self, cap: int) -> None:
        if cap != self.cap:
            self.cap = cap
            if self.on_change is not None:
                self.on_change()


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
