"""Settings presets for tests: campaign :class:`~asyncjobs.scheduler.Settings` fields and
``asyncjobs run`` options that make runs quick against quick jobs.

The Settings presets are field dicts, so a test can override a field:
``Settings(**{**EMULATOR_RUN, "max_running": {"m1": 1}})``.
"""

from __future__ import annotations

from typing import Any

#: A campaign against the emulator (its jobs last under a second): quick polls and backoff.
EMULATOR_RUN: dict[str, Any] = {
    "min_poll_interval": 0.05,
    "poll_interval": 0.5,
    "read_rate": 100.0,
    "backoff_base": 0.05,
    "backoff_cap": 0.5,
}

#: A campaign against an in-memory fake service. The pace is given (as ``--create-rate`` would):
#: these runs are about slots, states and errors; discovering the pace is tested against the emulator.
FAKE_SERVICE_RUN: dict[str, Any] = {
    "create_rate": 1000.0,
    "min_poll_interval": 0.01,
    "poll_interval": 0.05,
    "read_rate": 200.0,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
}

#: ``asyncjobs run`` options: poll every half second (the emulator's jobs last under a second).
#: (Short names: they end many an argument list that must stay on one line.)
FAST_POLL = ("--poll-interval", "0.5")

#: ``asyncjobs run`` options: poll every 0.3 s, and print the summary as JSON.
FAST_JSON = ("--poll-interval", "0.3", "--output", "json")
