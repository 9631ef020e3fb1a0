"""What a user writes instead of asyncjobs: aioboto3, botocore retries, a semaphore of job slots.

This module deliberately uses no asyncjobs code. It follows the AWS Step Functions
batch-orchestration sample: a semaphore per running-jobs quota, sized to the quota the user
knows (Bedrock per model, Personalize per job kind); each job takes a slot, creates its job,
polls it with one Get/Describe call every ``poll_interval`` seconds until it is final, and
gives the slot back.

Pushback from the service is handled the way a careful user would handle it:

- botocore's retry mode (``standard`` or ``adaptive``, with its default of 3 attempts) retries
  throttles inside each call; ``adaptive`` also paces the client after the first throttle;
- around that, a plain application retry loop: a create refused with a throttling or quota
  error (``ThrottlingException``, ``LimitExceededException``, ``ServiceQuotaExceededException``)
  is tried again after exponential backoff with jitter (1 s doubling, capped at 30 s), up to
  ``CREATE_ATTEMPTS`` times; then the job counts as failed. Any other error fails the job.
- a status read that fails is simply tried again at the next poll.

Told the create rate (``create_rate``), the user adds what the aiolimiter docs show: one
``AsyncLimiter(create_rate, 1)`` per service (AWS meters create calls per service, and so does
the emulator), entered before every application-level create attempt. It lets up to
``create_rate`` calls through at once and then ``create_rate`` per second: the same rate and
burst as the emulator's bucket (``max(1, rate)`` tokens; a rate below 1/s would get a burst of
1 there and of ``rate`` here). botocore's own retries inside one call do not pass through it;
a user's code cannot reach them. Without ``create_rate`` the baseline has no ceiling at all and
leaves discovering the rate to botocore's retry mode.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aioboto3
from aiolimiter import AsyncLimiter
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

#: Application-level create attempts (each is itself up to 3 botocore attempts).
CREATE_ATTEMPTS = 8
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RETRYABLE_CREATE = frozenset(
    {
        "ThrottlingException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "TooManyRequestsException",
    }
)
#: A job that has not finished after this long is given up on (keeps every loop bounded).
DEADLINE = 1800.0

BEDROCK_FINAL = {
    "Completed": True,
    "PartiallyCompleted": False,
    "Failed": False,
    "Stopped": False,
    "Expired": False,
}
PERSONALIZE_FINAL = {"ACTIVE": True, "CREATE FAILED": False}


@dataclass
class BaselineResult:
    makespan_s: float
    succeeded: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _slot_key(kind: str, params: dict[str, Any]) -> str:
    return f"bedrock:{params['modelId']}" if kind == "bedrock" else kind


async def run_baseline(
    endpoint_url: str,
    jobs: Sequence[tuple[str, dict[str, Any]]],
    *,
    retry_mode: str,
    slots: dict[str, int],
    poll_interval: float = 1.0,
    create_rate: float | None = None,
    region: str = "us-east-1",
) -> BaselineResult:
    """Run ``jobs`` (kind, create parameters) to completion; ``slots``: {"bedrock": n, "personalize": n}.

    ``create_rate``: create calls per second and per service the client allows itself (None: no ceiling).
    """
    started = time.perf_counter()
    config = Config(retries={"mode": retry_mode}, max_pool_connections=50)
    session = aioboto3.Session()
    semaphores: dict[str, asyncio.Semaphore] = {}
    for kind, params in jobs:
        key = _slot_key(kind, params)
        if key not in semaphores:
            semaphores[key] = asyncio.Semaphore(slots["bedrock" if kind == "bedrock" else "personalize"])
    # made here, inside the running loop, because an AsyncLimiter binds to the loop it first runs in
    limiters: dict[str, AsyncLimiter | None] = {
        service: None if create_rate is None else AsyncLimiter(create_rate, 1.0)
        for service in ("bedrock", "personalize")
    }
    result = BaselineResult(makespan_s=0.0)
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint_url, "config": config}
    async with session.client("bedrock", **kwargs) as bedrock, session.client("personalize", **kwargs) as pz:

        async def one(kind: str, params: dict[str, Any]) -> None:
            client, limiter = (
                (bedrock, limiters["bedrock"]) if kind == "bedrock" else (pz, limiters["personalize"])
            )
            async with semaphores[_slot_key(kind, params)]:
                outcome = await _run_job(client, kind, params, poll_interval, limiter)
            if outcome == "succeeded":
                result.succeeded += 1
            else:
                result.failed += 1
                result.reasons[outcome] += 1

        await asyncio.gather(*(one(kind, params) for kind, params in jobs))
    result.makespan_s = time.perf_counter() - started
    return result


async def _create(client: Any, kind: str, params: dict[str, Any], limiter: AsyncLimiter | None) -> str:
    for attempt in range(CREATE_ATTEMPTS):
        if limiter is not None:
            await limiter.acquire()
        try:
            if kind == "bedrock":
                return str((await client.create_model_invocation_job(**params))["jobArn"])
            if kind == "personalize":
                return str((await client.create_batch_inference_job(**params))["batchInferenceJobArn"])
            return str((await client.create_batch_segment_job(**params))["batchSegmentJobArn"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in RETRYABLE_CREATE or attempt == CREATE_ATTEMPTS - 1:
                raise
        await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


async def _status(client: Any, kind: str, arn: str) -> str:
    if kind == "bedrock":
        return str((await client.get_model_invocation_job(jobIdentifier=arn))["status"])
    if kind == "personalize":
        response = await client.describe_batch_inference_job(batchInferenceJobArn=arn)
        return str(response["batchInferenceJob"]["status"])
    response = await client.describe_batch_segment_job(batchSegmentJobArn=arn)
    return str(response["batchSegmentJob"]["status"])


async def _run_job(
    client: Any, kind: str, params: dict[str, Any], poll_interval: float, limiter: AsyncLimiter | None
) -> str:
    """Create one job and poll it until it is final: ``succeeded`` or why it did not."""
    try:
        arn = await _create(client, kind, params, limiter)
    except ClientError as exc:
        return f"create failed: {exc.response.get('Error', {}).get('Code', '?')}"
    except BotoCoreError as exc:
        return f"create failed: {type(exc).__name__}"
    final = BEDROCK_FINAL if kind == "bedrock" else PERSONALIZE_FINAL
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        await asyncio.sleep(poll_interval)
        try:
            status = await _status(client, kind, arn)
        except (ClientError, BotoCoreError):
            continue
        if status in final:
            return "succeeded" if final[status] else f"job {status}"
    return "gave up waiting"
