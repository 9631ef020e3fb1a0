"""Shared fixtures: the in-process emulator, real AWS clients pointed at it, and request builders.

- ``emulator``: an :class:`~asyncjobs.emulator.Emulator` with the default config.
- ``aws_credentials``: dummy credentials in the environment (``pytest.mark.usefixtures``).
- ``make_emulator(**knobs)``: start one with any config (stopped at teardown).
- ``fast_config(**knobs)``: a config for quick tests (no rate limits, sub-second jobs).
- ``FakeClock``: inject as ``clock=`` where lifecycle timing matters.
- ``aws_client(service, url)``: an aioboto3 client with dummy credentials.
- ``bedrock_job(...)``, ``personalize_job(...)``, ``segment_job(...)``: valid create requests
  (from :mod:`tests.support.specs`, with the other spec builders).
- The emulator as a subprocess: :func:`asyncjobs.emulator.process.emulator_process`.
- ``postgres_server``, ``postgres_database``: a real PostgreSQL (see :mod:`tests.support.postgres`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aioboto3
import pytest
from botocore.config import Config

from asyncjobs.emulator import Emulator, EmulatorConfig
from asyncjobs.emulator.process import emulator_process, emulator_process_sync
from tests.support.postgres import postgres_database, postgres_server  # noqa: F401 (fixtures)
from tests.support.specs import (
    ACCOUNT,
    MODEL,
    ROLE,
    SOLUTION_VERSION,
    bedrock_job,
    personalize_job,
    segment_job,
)

__all__ = [
    "ACCOUNT",
    "CREDENTIALS",
    "MODEL",
    "ROLE",
    "SOLUTION_VERSION",
    "FakeClock",
    "aws_client",
    "bedrock_job",
    "emulator_process",
    "emulator_process_sync",
    "fast_config",
    "personalize_job",
    "segment_job",
]

CREDENTIALS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fast_config(**knobs: Any) -> EmulatorConfig:
    """No rate limits and jobs that finish within about a second, unless ``knobs`` say otherwise."""
    base: dict[str, Any] = {
        "create_rate": None,
        "get_rate": None,
        "list_rate": None,
        "job_seconds": (0.2, 0.4),
        "bedrock_phase_seconds": (0.01, 0.05),
        "personalize_pending_seconds": (0.01, 0.05),
        "stop_seconds": 0.1,
    }
    return EmulatorConfig(**{**base, **knobs})


@asynccontextmanager
async def aws_client(
    service: str, url: str, *, region: str = "us-east-1", retries: int | None = None, **config: Any
) -> AsyncIterator[Any]:
    """An aioboto3 client for ``service`` at ``url``; ``retries`` sets total attempts (1 = none)."""
    if retries is not None:
        config["retries"] = {"total_max_attempts": retries, "mode": "standard"}
    session = aioboto3.Session()
    async with session.client(
        service, endpoint_url=url, region_name=region, config=Config(**config), **CREDENTIALS
    ) as client:
        yield client


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dummy :data:`CREDENTIALS` in the environment, where the code under test looks for them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An in-process emulator with the default config."""
    async with Emulator(EmulatorConfig()) as emu:
        yield emu


MakeEmulator = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    """``await make_emulator(config)`` or ``await make_emulator(**knobs)`` (knobs go to fast_config)."""
    async with AsyncExitStack() as stack:

        async def make(config: EmulatorConfig | None = None, **knobs: Any) -> Emulator:
            return await stack.enter_async_context(Emulator(config or fast_config(**knobs)))

        yield make
