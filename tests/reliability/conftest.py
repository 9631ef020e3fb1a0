"""Fixtures of the reliability tests: an emulator in its own process, a working directory.

The helpers themselves live in :mod:`tests.reliability.harness` (shared with ``make chaos``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from asyncjobs.emulator.process import EmulatorProcess, emulator_process_sync

#: Quick jobs, no injected faults: what most tests start from.
QUICK = ("--job-seconds", "0.2,0.5", "--seed", "7")

StartEmulator = Callable[..., EmulatorProcess]


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    """``start_emulator(*args)``: the emulator command on a free port, stopped at teardown."""
    with ExitStack() as stack:

        def start(*args: str) -> EmulatorProcess:
            return stack.enter_context(emulator_process_sync(*args))

        yield start


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the command runs: the campaign file and the journal go here."""
    return tmp_path
