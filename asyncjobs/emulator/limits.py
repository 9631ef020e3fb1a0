"""Request-rate limits: a token bucket per (service, class of operation).

A bucket holds at most ``max(1, rate)`` tokens, starts full and refills at ``rate``
tokens per second of the emulator's clock. A request that finds less than one token
is throttled; it never waits. ``rate`` None (or 0) means unlimited. Operations of no
class (the tag operations) are not limited: AWS documents no rate for them, and they
must not spend the budget of the job calls.
"""

from __future__ import annotations

from collections.abc import Callable

#: The class of each API operation; each class has its own bucket per service.
OPERATION_CLASS: dict[str, str] = {
    "CreateModelInvocationJob": "create",
    "StopModelInvocationJob": "create",  # a mutating call: it shares the create budget
    "GetModelInvocationJob": "get",
    "ListModelInvocationJobs": "list",
    "CreateBatchInferenceJob": "create",
    "CreateBatchSegmentJob": "create",
    "DescribeBatchInferenceJob": "get",
    "DescribeBatchSegmentJob": "get",
    "ListBatchInferenceJobs": "list",
    "ListBatchSegmentJobs": "list",
}


class TokenBucket:
    """A bucket of ``rate`` tokens per second with a burst of ``max(1, rate)``."""

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def try_acquire(self) -> bool:
        """Take one token if there is one; False means the request is throttled."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock that steps back refills nothing
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimits:
    """The buckets of every (service, class), created on first use from a rate lookup."""

    def __init__(self, rate_of: Callable[[str], float | None], clock: Callable[[], float]) -> None:
        self._rate_of = rate_of
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket | None] = {}

    def allow(self, service: str, operation: str) -> bool:
        """Whether a request of ``operation`` to ``service`` may proceed now."""
        op_class = OPERATION_CLASS.get(operation)
        if op_class is None:
            return True
        key = (service, op_class)
        try:
            bucket = self._buckets[key]
        except KeyError:
            rate = self._rate_of(key[1])
            bucket = self._buckets[key] = TokenBucket(rate, self._clock) if rate else None
        return bucket is None or bucket.try_acquire()
