"""Injected faults: server errors, dropped connections and latency, drawn per request.

The draws come from one RNG seeded by the config's seed, so a given sequence of
requests meets the same faults. A drop of a create call happens *after* the job was
created for half of the drops: the client never hears of a job that exists, the case
that exactly-once submission has to survive.
"""

from __future__ import annotations

import enum
import random

from .config import EmulatorConfig


class Fault(enum.Enum):
    NONE = "none"
    ERROR = "error"  # answer 500
    DROP_BEFORE = "drop_before"  # close the connection without doing anything
    DROP_AFTER = "drop_after"  # do the work, then close the connection without answering


class FaultInjector:
    """Decides the fault and latency of each request."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"faults/{seed}")

    def draw(self, config: EmulatorConfig, *, is_create: bool) -> Fault:
        """The fault for one request; ``is_create`` allows a drop after the work is done."""
        if config.error_rate and self._rng.random() < config.error_rate:
            return Fault.ERROR
        if config.drop_rate and self._rng.random() < config.drop_rate:
            if is_create and self._rng.random() < 0.5:
                return Fault.DROP_AFTER
            return Fault.DROP_BEFORE
        return Fault.NONE

    def latency(self, config: EmulatorConfig) -> float:
        """Seconds to delay one request."""
        low, high = config.latency
        if high <= 0:
            return 0.0
        return self._rng.uniform(low, high)
