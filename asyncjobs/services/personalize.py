"""Personalize batch inference and batch segment jobs.

- Exactly once: Personalize has no idempotency token, but a job's name is its
  resource id. A repeated create answers ``ResourceAlreadyExistsException``; the job
  is then described by the ARN built from the name and adopted only if it is the
  one the spec asks for (solution version, input and output paths).
- Tracking: ``List*Jobs`` filtered by solution version, or one ``Describe*Job`` per
  job when the list has grown longer (in pages) than the jobs being tracked.
- Personalize cannot stop batch jobs: they are tracked to the end.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ..errors import AlreadyExists, NotFound, ServiceError
from ..model import Job, JobState, Service
from .base import ListLag, PollResult, Remote, classify, region_account

log = structlog.get_logger("asyncjobs.services.personalize")

PAGE = 100


@dataclass(frozen=True, slots=True)
class _Kind:
    create: str
    describe: str
    list: str
    arn_key: str
    result_key: str
    list_key: str
    resource: str


KINDS: Mapping[Service, _Kind] = {
    Service.PERSONALIZE: _Kind(
        create="create_batch_inference_job",
        describe="describe_batch_inference_job",
        list="list_batch_inference_jobs",
        arn_key="batchInferenceJobArn",
        result_key="batchInferenceJob",
        list_key="batchInferenceJobs",
        resource="batch-inference-job",
    ),
    Service.PERSONALIZE_SEGMENT: _Kind(
        create="create_batch_segment_job",
        describe="describe_batch_segment_job",
        list="list_batch_segment_jobs",
        arn_key="batchSegmentJobArn",
        result_key="batchSegmentJob",
        list_key="batchSegmentJobs",
        resource="batch-segment-job",
    ),
}


def operation_name(method: str) -> str:
    """The API operation of a client method: ``list_batch_inference_jobs`` -> ``ListBatchInferenceJobs``."""
    return "".join(part.title() for part in method.split("_"))


def normalise(status: str) -> JobState:
    """Personalize's free-form status as a normalised state (ACTIVE and CREATE FAILED are final)."""
    text = status.upper().replace("_", " ")
    if text == "ACTIVE":
        return JobState.SUCCEEDED
    if "FAILED" in text:
        return JobState.FAILED
    if "IN PROGRESS" in text:
        return JobState.RUNNING
    return JobState.SUBMITTED


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None


def to_remote(item: Mapping[str, Any], arn_key: str) -> Remote:
    status = str(item.get("status", ""))
    state = normalise(status)
    return Remote(
        arn=str(item[arn_key]),
        status=status,
        state=state,
        name=item.get("jobName"),
        message=item.get("failureReason"),
        submitted=_epoch(item.get("creationDateTime")),
        ended=_epoch(item.get("lastUpdatedDateTime")) if state.is_final else None,
    )


def _paths(request: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return (
        request.get("solutionVersionArn"),
        (request.get("jobInput") or {}).get("s3DataSource", {}).get("path"),
        (request.get("jobOutput") or {}).get("s3DataDestination", {}).get("path"),
    )


class PersonalizeAdapter:
    """Drives both Personalize batch job kinds through one aiobotocore ``personalize`` client."""

    services = frozenset({Service.PERSONALIZE, Service.PERSONALIZE_SEGMENT})

    def __init__(self, client: Any) -> None:
        self._client = client
        # pages a full list sweep took last time, per (kind, solution version)
        self._pages: dict[tuple[Service, str], int] = {}
        self._lag = ListLag()

    async def _call(self, method: str, **params: Any) -> Any:
        try:
            return await getattr(self._client, method)(**params)
        except Exception as exc:
            raise classify(exc, operation=operation_name(method)) from exc

    async def create(self, job: Job) -> str:
        kind = KINDS[job.service]
        params = dict(job.request)
        params["jobName"] = job.job_name
        response = await self._call(kind.create, **params)
        return str(response[kind.arn_key])

    def arn_for(self, job: Job) -> str | None:
        """The ARN the service gives a job of this name (Personalize ARNs end in the name)."""
        parsed = region_account(str(job.request.get("solutionVersionArn", "")))
        if parsed is None:
            return None
        partition, region, account = parsed
        return f"arn:{partition}:personalize:{region}:{account}:{KINDS[job.service].resource}/{job.job_name}"

    async def describe(self, job: Job, arn: str) -> tuple[Remote, dict[str, Any]]:
        kind = KINDS[job.service]
        response = await self._call(kind.describe, **{kind.arn_key: arn})
        item = dict(response[kind.result_key])
        return to_remote(item, kind.arn_key), item

    async def find(self, job: Job) -> Remote | None:
        """The job named ``job.job_name``, if it exists and is the one the spec asks for.

        Raises AlreadyExists when a job of that name exists but asks for something else.
        """
        arn = job.arn or self.arn_for(job)
        if arn is None:
            return None
        try:
            remote, item = await self.describe(job, arn)
        except NotFound:
            return None
        if _paths(item) != _paths(job.request):
            raise AlreadyExists(
                f"a different Personalize job named {job.job_name!r} already exists "
                f"({arn}: solution version, input or output path differ)",
                code="ResourceAlreadyExistsException",
            )
        return remote

    async def poll(self, jobs: Sequence[Job]) -> PollResult:
        groups: dict[tuple[Service, str], list[Job]] = defaultdict(list)
        for job in jobs:
            if job.arn:
                groups[(job.service, str(job.request.get("solutionVersionArn", "")))].append(job)
        found: dict[str, Remote] = {}
        calls: Counter[str] = Counter()
        for (service, version), group in groups.items():
            kind = KINDS[service]
            wanted = {j.arn: j for j in group if j.arn}
            listed = self._pages.get((service, version), 1) <= len(wanted)
            if listed:
                params: dict[str, Any] = {"maxResults": PAGE}
                if version:
                    params["solutionVersionArn"] = version
                pages = 0
                while wanted.keys() - found.keys():
                    try:
                        page = await self._call(kind.list, **params)
                    finally:
                        calls[operation_name(kind.list)] += 1
                    pages += 1
                    for item in page.get(kind.list_key, []):
                        if item.get(kind.arn_key) in wanted:
                            found[item[kind.arn_key]] = to_remote(item, kind.arn_key)
                    token = page.get("nextToken")
                    if not token:
                        break
                    params["nextToken"] = token
                self._pages[(service, version)] = pages
            now = time.time()
            for arn, job in wanted.items():
                if arn in found or (listed and self._lag.too_young(job, now)):
                    continue  # seen, or too new for the list to show yet
                calls[operation_name(kind.describe)] += 1
                try:
                    found[arn] = (await self.describe(job, arn))[0]
                except ServiceError as exc:
                    log.warning(
                        "asyncjobs.poll.describe_failed", job_id=job.id, arn=arn, error=exc.describe()
                    )
                else:
                    if listed:
                        self._lag.found_by_get(job, now)
        return PollResult(found=found, calls=calls.total(), operations=calls)

    async def stop(self, job: Job) -> bool:
        return False
