"""The service adapter protocol, and the translation of botocore errors into asyncjobs classes.

Everything a service does differently lives in its adapter (``bedrock.py``,
``personalize.py``); the scheduler sees only :class:`ServiceAdapter` and the
:class:`~asyncjobs.errors.ServiceError` classes, and keys its retry policy off them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..errors import (
    AlreadyExists,
    CapacityExceeded,
    Fatal,
    LimitExceeded,
    NotFound,
    Rejected,
    ServiceError,
    Throttled,
    Transient,
)
from ..model import Job, JobState, Service

#: Error codes that mean "too many requests" (botocore's standard throttle list, trimmed).
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalServerException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ResourceInUseException",
    }
)
#: Codes that say the caller, not the request, is wrong: every call would fail the same way.
FATAL_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
    }
)


@dataclass(frozen=True, slots=True)
class Remote:
    """A job as the service reports it."""

    arn: str
    status: str
    state: JobState
    name: str | None = None
    message: str | None = None
    submitted: float | None = None  # epoch seconds, the service's clock
    ended: float | None = None  # epoch seconds, when it reached a final status


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one status poll found: the jobs seen (by ARN) and the read calls it cost."""

    found: dict[str, Remote]
    calls: int
    #: The same calls by API operation (``ListModelInvocationJobs``: 2, ...), for metrics.
    operations: Mapping[str, int] = field(default_factory=dict)


class ListLag:
    """How long a job may be missing from a List before one Get for it is worth its cost.

    AWS List results are eventually consistent: a job can be missing from them for a while
    after its create, and AWS does not say for how long. A job younger than :attr:`grace`
    that a complete List did not show is simply not reported by that sweep (a later one
    will see it). Each time a Get finds a job a List had missed, the grace grows to twice
    that job's age, so a service whose lists lag longer costs a few Gets, not one per job.
    """

    def __init__(self, grace: float = 30.0, longest: float = 900.0) -> None:
        self.grace = grace
        self.longest = longest

    def too_young(self, job: Job, now: float) -> bool:
        """Whether a List may still be behind ``job`` (then no Get for it yet)."""
        return job.submitted_at is not None and now - job.submitted_at < self.grace

    def found_by_get(self, job: Job, now: float) -> None:
        """A Get found ``job``, which a List had missed: lists lag at least its age."""
        if job.submitted_at is not None:
            self.grace = min(self.longest, max(self.grace, 2.0 * (now - job.submitted_at)))


class ServiceAdapter(Protocol):
    """One AWS service's batch-job API, reduced to what the scheduler needs."""

    @property
    def services(self) -> frozenset[Service]:
        """The job kinds this adapter drives."""
        ...

    async def create(self, job: Job) -> str:
        """Create the job; return its ARN. Raises ServiceError subclasses only."""
        ...

    async def find(self, job: Job) -> Remote | None:
        """Reconcile: the remote job this attempt created, if any (by token, name or ARN)."""
        ...

    async def poll(self, jobs: Sequence[Job]) -> PollResult:
        """Current status of ``jobs`` (which all have ARNs), as cheaply as the API allows."""
        ...

    async def stop(self, job: Job) -> bool:
        """Ask the service to stop the job; False when the service cannot stop this kind."""
        ...


def classify(exc: BaseException, *, operation: str) -> ServiceError:
    """The asyncjobs class for a botocore (or network) error; the original becomes ``__cause__``."""
    err: ServiceError
    if isinstance(exc, ClientError):
        info = exc.response.get("Error", {})
        code = str(info.get("Code", "")) or "Unknown"
        message = str(info.get("Message", "")) or str(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        err = _classify_code(code, status)(message, code=code, operation=operation)
    elif isinstance(exc, (SSLError, NoCredentialsError, PartialCredentialsError, NoRegionError)):
        err = Fatal(str(exc) or type(exc).__name__, code=type(exc).__name__, operation=operation)
    elif isinstance(exc, ParamValidationError):
        err = Rejected(str(exc).replace("\n", " "), code="ParamValidationError", operation=operation)
    elif isinstance(exc, (BotoConnectionError, HTTPClientError, OSError, asyncio.TimeoutError)):
        err = Transient(f"{type(exc).__name__}: {exc}", code="ConnectionError", operation=operation)
    elif isinstance(exc, BotoCoreError):
        err = Transient(str(exc) or type(exc).__name__, code=type(exc).__name__, operation=operation)
    else:
        err = Transient(str(exc) or type(exc).__name__, code=type(exc).__name__, operation=operation)
    err.__cause__ = exc
    return err


def _classify_code(code: str, status: int) -> type[ServiceError]:
    if code in THROTTLE_CODES or status == 429:
        return Throttled
    if code == "LimitExceededException":
        # Personalize's answer to both too many requests and too many running jobs; AWS documents
        # no message text that would tell them apart, so the scheduler decides from its own state
        return LimitExceeded
    if code == "ServiceQuotaExceededException":
        return CapacityExceeded
    if code == "ResourceAlreadyExistsException":
        return AlreadyExists
    if code == "ResourceNotFoundException":
        return NotFound
    if code in FATAL_CODES:
        return Fatal
    if code in TRANSIENT_CODES or status >= 500 or (code.isdigit() and int(code) >= 500):
        return Transient
    return Rejected


def region_account(arn: str) -> tuple[str, str, str] | None:
    """(partition, region, account) of an ARN, or None."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[3] and parts[4]:
        return parts[1], parts[3], parts[4]
    return None
