"""Shared fixtures: the in-process emulator, real AWS clients pointed at it, and request builders.

- ``emulator``: an :class:`~asyncjobs.emulator.Emulator` with the default config.
- ``make_emulator(**knobs)``: start one with any config (stopped at teardown).
- ``fast_config(**knobs)``: a config for quick tests (no rate limits, sub-second jobs).
- ``FakeClock``: inject as ``clock=`` where lifecycle timing matters.
- ``aws_client(service, url)``: an aioboto3 client with dummy credentials.
- ``bedrock_job(...)``, ``personalize_job(...)``, ``segment_job(...)``: valid create requests.
- The emulator as a subprocess: :func:`tests.emulator_process.emulator_process`.
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
from tests.emulator_process import emulator_process, emulator_process_sync
from tests.support.postgres import postgres_database, postgres_server  # noqa: F401 (fixtures)

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

ACCOUNT = "123456789012"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BatchRole"
SOLUTION_VERSION = f"arn:aws:personalize:us-east-1:{ACCOUNT}:solution/movies/abcdef12"
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


def bedrock_job(name: str = "job1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateModelInvocationJob request."""
    request: dict[str, Any] = {
        "jobName": name,
        "roleArn": ROLE,
        "modelId": MODEL,
        "inputDataConfig": {
            "s3InputDataConfig": {"s3Uri": "s3://input-bucket/batch/", "s3InputFormat": "JSONL"}
        },
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://output-bucket/results/"}},
    }
    request.update(overrides)
    return request


def segment_job(name: str = "segment1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateBatchSegmentJob request."""
    request: dict[str, Any] = {
        "jobName": name,
        "solutionVersionArn": SOLUTION_VERSION,
        "jobInput": {"s3DataSource": {"path": "s3://input-bucket/segments/"}},
        "jobOutput": {"s3DataDestination": {"path": "s3://output-bucket/segments/"}},
        "roleArn": ROLE,
    }
    request.update(overrides)
    return request


def personalize_job(name: str = "inference1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateBatchInferenceJob request."""
    request = segment_job(name)
    request["jobInput"] = {"s3DataSource": {"path": "s3://input-bucket/users/"}}
    request["jobOutput"] = {"s3DataDestination": {"path": "s3://output-bucket/recommendations/"}}
    request.update(overrides)
    return request


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
