"""The domain values: services, normalised job states, job specs and job records.

Everything here is a frozen value with no I/O. The lifecycle table lives in
:mod:`asyncjobs.lifecycle`; storage in :mod:`asyncjobs.journal`.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


class Service(enum.StrEnum):
    """The kinds of batch job asyncjobs drives, as named in campaign files."""

    BEDROCK = "bedrock"
    PERSONALIZE = "personalize"
    PERSONALIZE_SEGMENT = "personalize-segment"

    @property
    def aws_service(self) -> str:
        """The botocore service name (``bedrock`` or ``personalize``)."""
        return "bedrock" if self is Service.BEDROCK else "personalize"

    @property
    def create_operation(self) -> str:
        """The botocore operation name of this kind's create call."""
        return {
            Service.BEDROCK: "CreateModelInvocationJob",
            Service.PERSONALIZE: "CreateBatchInferenceJob",
            Service.PERSONALIZE_SEGMENT: "CreateBatchSegmentJob",
        }[self]


class JobState(enum.StrEnum):
    """Normalised job states, the same for every service.

    ``pending`` (not yet sent), ``submitting`` (the intent to create is journaled;
    the create call may or may not have reached the service), ``submitted``
    (the service returned an ARN), ``running``, and the final states.
    """

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    STOPPED = "stopped"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        """Holds (or may hold) a slot of a running-jobs quota."""
        return self in ACTIVE_STATES


FINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.PARTIAL,
        JobState.FAILED,
        JobState.STOPPED,
        JobState.EXPIRED,
        JobState.REJECTED,
        JobState.CANCELLED,
    }
)
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.SUBMITTING, JobState.SUBMITTED, JobState.RUNNING})
#: Final states that count as an unsuccessful outcome (exit code 1 of ``asyncjobs run``).
UNSUCCESSFUL_STATES: frozenset[JobState] = frozenset(
    {JobState.FAILED, JobState.STOPPED, JobState.EXPIRED, JobState.REJECTED}
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form that is hashed and stored."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def spec_digest(service: str, request_json: str | bytes) -> str:
    """The digest of a spec from its service and its request's canonical JSON (text or UTF-8)."""
    raw = request_json.encode() if isinstance(request_json, str) else request_json
    return hashlib.sha256(service.encode() + b"\0" + raw).hexdigest()


#: The request member by which each kind's running-jobs quota is counted.
_QUOTA_MEMBER: Mapping[Service, str] = {
    Service.BEDROCK: "modelId",
    Service.PERSONALIZE: "solutionVersionArn",
    Service.PERSONALIZE_SEGMENT: "solutionVersionArn",
}


@functools.lru_cache(maxsize=1024)
def _quota_key(service: Service, member: str) -> str:
    if service is Service.BEDROCK:
        return f"bedrock:{member}"
    region = arn_region(member) or "default"
    kind = "batch-inference" if service is Service.PERSONALIZE else "batch-segment"
    return f"personalize:{region}:{kind}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of a campaign: a stable ``id``, the service, and the create call's parameters.

    ``request`` holds the create call's members exactly as the AWS API names them
    (what ``aws ... --cli-input-json`` takes). ``jobName`` may be absent; the
    campaign then derives one (see :func:`asyncjobs.naming.job_name`).
    """

    id: str
    service: Service
    request: Mapping[str, Any]
    #: Where the spec came from, for error messages (``campaign.jsonl:12``); not hashed.
    source: str | None = field(default=None, compare=False)

    @property
    def digest(self) -> str:
        """A stable hash of what the spec asks for (service and request)."""
        return spec_digest(str(self.service), canonical_json(self.request))

    @property
    def quota_key(self) -> str:
        """The running-jobs quota this spec counts against.

        Bedrock counts per model; Personalize per region and job kind. Derived once per
        distinct model or solution version (an ingest asks for every spec).
        """
        return _quota_key(self.service, str(self.request.get(_QUOTA_MEMBER[self.service], "")))


def arn_region(arn: str) -> str | None:
    """The region field of an ARN, or None when the string is not an ARN with one."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return None


@dataclass(frozen=True, slots=True)
class Job:
    """A spec as the journal knows it: its state and its current attempt."""

    id: str
    seq: int
    service: Service
    quota_key: str
    state: JobState
    attempt: int
    job_name: str
    token: str
    request: Mapping[str, Any]
    digest: str
    arn: str | None = None
    remote_status: str | None = None
    last_error: str | None = None
    submitted_at: float | None = None
    updated_at: float | None = None


def evolve(job: Job, state: JobState, updated_at: float, fields: Mapping[str, Any]) -> Job:
    """``job`` in ``state`` with ``fields`` changed: ``dataclasses.replace`` without its
    per-call introspection (the journal makes one per state change)."""
    get = fields.get
    return Job(
        job.id,
        job.seq,
        job.service,
        job.quota_key,
        state,
        get("attempt", job.attempt),
        get("job_name", job.job_name),
        get("token", job.token),
        job.request,
        job.digest,
        get("arn", job.arn),
        get("remote_status", job.remote_status),
        get("last_error", job.last_error),
        get("submitted_at", job.submitted_at),
        updated_at,
    )


@dataclass(frozen=True, slots=True)
class StateCounts:
    """Number of jobs per normalised state."""

    counts: Mapping[JobState, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __getitem__(self, state: JobState) -> int:
        return self.counts.get(state, 0)

    def as_dict(self) -> dict[str, int]:
        return {str(s): self.counts.get(s, 0) for s in JobState}

    @property
    def done(self) -> bool:
        return all(s.is_final for s, n in self.counts.items() if n)
