"""Bedrock batch inference: Create/Get/List/StopModelInvocationJob.

- Exactly once: every attempt carries a deterministic ``clientRequestToken``; Bedrock
  answers a repeated token with the original ``jobArn``, so a resumed process simply
  asks again.
- Tracking: one ``ListModelInvocationJobs`` page (up to 1,000 jobs, newest first,
  filtered by name and submit time) answers for every job of the campaign at once;
  ``GetModelInvocationJob`` is the fallback for a job a sweep missed, once it is older than
  lists are seen to lag (:class:`~asyncjobs.services.base.ListLag`).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from ..errors import AlreadyExists, ServiceError
from ..model import Job, JobState, Service
from .base import ListLag, PollResult, Remote, classify

log = structlog.get_logger("asyncjobs.services.bedrock")

STATES: Mapping[str, JobState] = {
    "Submitted": JobState.SUBMITTED,
    "Validating": JobState.SUBMITTED,
    "Scheduled": JobState.SUBMITTED,
    "InProgress": JobState.RUNNING,
    "Stopping": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "PartiallyCompleted": JobState.PARTIAL,
    "Failed": JobState.FAILED,
    "Stopped": JobState.STOPPED,
    "Expired": JobState.EXPIRED,
}
#: How far before the earliest local submit time a sweep looks, for clock skew.
SKEW = 600.0
PAGE = 1000


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None


def to_remote(item: Mapping[str, Any]) -> Remote:
    """A Get output or a List summary as a :class:`Remote`."""
    status = str(item.get("status", "Submitted"))
    state = STATES.get(status, JobState.SUBMITTED)
    ended = _epoch(item.get("endTime"))
    if ended is None and state.is_final:
        ended = _epoch(item.get("lastModifiedTime"))
    return Remote(
        arn=str(item["jobArn"]),
        status=status,
        state=state,
        name=item.get("jobName"),
        message=item.get("message"),
        submitted=_epoch(item.get("submitTime")),
        ended=ended,
    )


def _name_filter(names: Sequence[str]) -> str | None:
    """The longest common prefix of ``names``, if it is a usable ``nameContains`` value."""
    prefix = os.path.commonprefix(list(names))[:63]  # noqa: RUF071 (names, not paths)
    return prefix if len(prefix) >= 3 and prefix[0].isalnum() else None


class BedrockAdapter:
    """Drives model invocation jobs through one aiobotocore ``bedrock`` client."""

    services = frozenset({Service.BEDROCK})

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lag = ListLag()

    async def _call(self, operation: str, **params: Any) -> Any:
        method = getattr(self._client, _SNAKE[operation])
        try:
            return await method(**params)
        except Exception as exc:
            raise classify(exc, operation=operation) from exc

    async def create(self, job: Job) -> str:
        params = dict(job.request)
        params["jobName"] = job.job_name
        params["clientRequestToken"] = job.token
        response = await self._call("CreateModelInvocationJob", **params)
        return str(response["jobArn"])

    async def describe(self, arn: str) -> Remote:
        return to_remote(await self._call("GetModelInvocationJob", jobIdentifier=arn))

    async def find(self, job: Job) -> Remote | None:
        """The job this attempt created: by ARN if known, else a List by exact name and token."""
        if job.arn:
            return await self.describe(job.arn)
        params: dict[str, Any] = {"nameContains": job.job_name, "maxResults": PAGE}
        while True:
            page = await self._call("ListModelInvocationJobs", **params)
            for item in page.get("invocationJobSummaries", []):
                if item.get("jobName") != job.job_name:
                    continue
                if item.get("clientRequestToken") in (None, job.token):
                    return to_remote(item)
                raise AlreadyExists(
                    f"a Bedrock job named {job.job_name!r} exists with another client request token",
                    code="ConflictException",
                    operation="ListModelInvocationJobs",
                )
            token = page.get("nextToken")
            if not token:
                return None
            params["nextToken"] = token

    async def poll(self, jobs: Sequence[Job]) -> PollResult:
        wanted = {j.arn: j for j in jobs if j.arn}
        found: dict[str, Remote] = {}
        calls: Counter[str] = Counter()
        times = [j.submitted_at for j in wanted.values() if j.submitted_at is not None]
        params: dict[str, Any] = {"maxResults": PAGE, "sortBy": "CreationTime", "sortOrder": "Descending"}
        earliest = min(times) - SKEW if times else None
        if earliest is not None:
            params["submitTimeAfter"] = dt.datetime.fromtimestamp(earliest, dt.UTC)
        name = _name_filter([j.job_name for j in wanted.values()])
        if name:
            params["nameContains"] = name
        while wanted.keys() - found.keys():
            try:
                page = await self._call("ListModelInvocationJobs", **params)
            finally:
                calls["ListModelInvocationJobs"] += 1
            for item in page.get("invocationJobSummaries", []):
                if item.get("jobArn") in wanted:
                    found[item["jobArn"]] = to_remote(item)
            token = page.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        now = time.time()
        for arn in list(wanted.keys() - found.keys()):
            if self._lag.too_young(wanted[arn], now):
                continue  # the list may not show it yet
            calls["GetModelInvocationJob"] += 1
            try:
                found[arn] = await self.describe(arn)
            except ServiceError as exc:
                log.warning(
                    "asyncjobs.poll.describe_failed", job_id=wanted[arn].id, arn=arn, error=exc.describe()
                )
            else:
                self._lag.found_by_get(wanted[arn], now)
        return PollResult(found=found, calls=calls.total(), operations=calls)

    async def stop(self, job: Job) -> bool:
        if not job.arn:
            return False
        try:
            await self._call("StopModelInvocationJob", jobIdentifier=job.arn)
        except ServiceError as exc:
            if exc.code != "ConflictException":  # already stopping or final
                raise
        return True


_SNAKE = {
    "CreateModelInvocationJob": "create_model_invocation_job",
    "GetModelInvocationJob": "get_model_invocation_job",
    "ListModelInvocationJobs": "list_model_invocation_jobs",
    "StopModelInvocationJob": "stop_model_invocation_job",
}
