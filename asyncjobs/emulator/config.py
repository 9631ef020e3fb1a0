"""The emulator's knobs: one frozen dataclass, every field documented, with defaults.

Where AWS documents a value (running-job quotas, the Bedrock timeout range) the
default follows it. Where AWS documents nothing (control-plane request rates,
phase durations, the token-mismatch behaviour) the default is a plausible choice,
and the field says so. Durations are seconds of the emulator's clock and are all
multiplied by :attr:`EmulatorConfig.time_scale`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TokenMismatch = Literal["original", "conflict", "validation"]
TOKEN_MISMATCH_CHOICES: tuple[TokenMismatch, ...] = ("original", "conflict", "validation")
AuthFault = Literal["access-denied", "expired-token"]
AUTH_FAULT_CHOICES: tuple[AuthFault, ...] = ("access-denied", "expired-token")

#: Fields that can't be set from JSON (``POST /_emulator/config``) or the command line.
_NOT_SERIALIZABLE = frozenset({"clock"})
_PAIRS = frozenset({"job_seconds", "latency", "bedrock_phase_seconds", "personalize_pending_seconds"})


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulated services behave. Change a running emulator with ``Emulator.configure``."""

    #: Seeds every random draw: job durations and outcomes (per job name), faults (per request).
    seed: int = 0
    #: Region used when a request's SigV4 credential scope cannot be read.
    #: Otherwise each request's region comes from its ``Authorization`` header.
    region: str = "us-east-1"
    #: The account id in every ARN the emulator makes.
    account_id: str = "123456789012"

    # -- request rates: a token bucket per (service, class), burst = max(1, rate); None or 0 = unlimited.
    # AWS documents no control-plane TPS for these APIs. The defaults are in the range that AWS
    # control planes commonly allow (single-digit TPS for mutating calls, more for reads), low enough
    # that a client which never backs off meets throttling, and high enough for a steady campaign.
    #: Create calls (and StopModelInvocationJob) per second, per service.
    create_rate: float | None = 5.0
    #: Get/Describe calls per second, per service.
    get_rate: float | None = 20.0
    #: List calls per second, per service.
    list_rate: float | None = 10.0

    # -- running-job quotas (documented by AWS; both adjustable there too).
    #: Bedrock: Submitted + Validating + Scheduled + InProgress + Stopping jobs per model.
    bedrock_max_running: int = 20
    #: Personalize: pending + in-progress jobs per region and job kind.
    personalize_max_running: int = 5
    #: The message of every Personalize LimitExceededException, both the request-rate throttle
    #: and the full running-jobs quota; AWS documents neither text, so a client must not rely on
    #: them. None: a distinct text for each (a rate message, and one naming the quota).
    limit_message: str | None = None

    # -- lifecycle
    #: (min, max) seconds a job spends running (InProgress / CREATE IN_PROGRESS), drawn uniformly.
    job_seconds: tuple[float, float] = (2.0, 5.0)
    #: (min, max) seconds of each Bedrock phase before InProgress: Submitted, Validating, Scheduled.
    bedrock_phase_seconds: tuple[float, float] = (0.1, 0.5)
    #: (min, max) seconds a Personalize job stays pending before it runs.
    personalize_pending_seconds: tuple[float, float] = (0.2, 1.0)
    #: Seconds a stopped Bedrock job stays Stopping before it is Stopped.
    stop_seconds: float = 0.5
    #: Seconds the List operations trail behind, as AWS List results are eventually consistent:
    #: ListModelInvocationJobs, ListBatchInferenceJobs and ListBatchSegmentJobs show every job
    #: as it was this long ago (status, times, message; their filters see the same) and leave out
    #: jobs created since. Get and Describe stay current. Scaled by time_scale like the job
    #: durations it trails. 0 = no lag.
    list_lag: float = 0.0
    #: Multiplies every duration above, and the Bedrock job timeout.
    time_scale: float = 1.0
    #: Probability that a job ends Failed / CREATE FAILED (with a failure message).
    fail_rate: float = 0.0
    #: Probability that a Bedrock job ends PartiallyCompleted.
    partial_rate: float = 0.0
    #: Probability that a Bedrock job is never picked up from Scheduled, so it becomes Expired
    #: when its timeout (timeoutDurationInHours x 3600 x time_scale) runs out.
    expire_rate: float = 0.0
    #: timeoutDurationInHours when the request has none (AWS does not state its default; 168 is the max).
    bedrock_default_timeout_hours: int = 168
    #: The status of a Personalize job before it runs (AWS documents no exact strings).
    personalize_pending_status: str = "CREATE PENDING"
    #: The status of a running Personalize job.
    personalize_running_status: str = "CREATE IN_PROGRESS"
    #: A repeated Bedrock clientRequestToken with different parameters. AWS documents nothing:
    #: ``original`` returns the original jobArn (the model says the request is ignored),
    #: ``conflict``/``validation`` reject it with ConflictException/ValidationException.
    bedrock_token_mismatch: TokenMismatch = "original"

    # -- faults, drawn per request from an RNG seeded by ``seed``
    #: Probability of a 500 (InternalServerException for Bedrock, InternalFailure for Personalize).
    error_rate: float = 0.0
    #: Probability that the connection is closed with no response. For create calls, half of the
    #: drops happen after the job was created.
    drop_rate: float = 0.0
    #: (min, max) seconds of latency added to every API request.
    latency: tuple[float, float] = (0.0, 0.0)

    # -- authorization faults: every signed API request is refused, as AWS refuses a caller.
    #: ``access-denied``: AccessDeniedException, 403 (Bedrock models it so; Personalize models no
    #: such error, and gets the 403 the emulator sends for unsigned requests). ``expired-token``:
    #: ExpiredTokenException, 403 for Bedrock and 400 for Personalize, as other REST-JSON (Lambda)
    #: and JSON 1.1 (DynamoDB) services answer; AWS documents neither. None: no fault.
    auth_fault: AuthFault | None = None
    #: How many signed API requests are answered normally before ``auth_fault`` starts, counted
    #: from when the fault was set (at start, or by ``configure``): credentials that expire mid-run.
    auth_fault_after: int = 0

    #: Wall-clock seconds (``time.time`` by default); inject a fake one in tests.
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("create_rate", "get_rate", "list_rate"):
            rate = getattr(self, name)
            if rate is not None and (not math.isfinite(rate) or rate < 0):
                raise ValueError(f"{name} must be a non-negative number or None, not {rate!r}")
        for name in ("bedrock_max_running", "personalize_max_running"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in _PAIRS:
            low, high = getattr(self, name)
            if not (0 <= low <= high) or not math.isfinite(high):
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max, not {(low, high)!r}")
        for name in ("fail_rate", "partial_rate", "expire_rate", "error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.fail_rate + self.partial_rate > 1.0:
            raise ValueError("fail_rate + partial_rate must not exceed 1")
        if not (self.time_scale > 0 and math.isfinite(self.time_scale)):
            raise ValueError("time_scale must be a positive number")
        if self.stop_seconds < 0:
            raise ValueError("stop_seconds must not be negative")
        if not (self.list_lag >= 0 and math.isfinite(self.list_lag)):
            raise ValueError(f"list_lag must be a non-negative number, not {self.list_lag!r}")
        if not 24 <= self.bedrock_default_timeout_hours <= 168:
            raise ValueError("bedrock_default_timeout_hours must be between 24 and 168")
        if self.auth_fault is not None and self.auth_fault not in AUTH_FAULT_CHOICES:
            raise ValueError(
                f"auth_fault must be None or one of {AUTH_FAULT_CHOICES}, not {self.auth_fault!r}"
            )
        if isinstance(self.auth_fault_after, bool) or not isinstance(self.auth_fault_after, int):
            raise ValueError(f"auth_fault_after must be an integer, not {self.auth_fault_after!r}")
        if self.auth_fault_after < 0:
            raise ValueError("auth_fault_after must not be negative")
        if self.limit_message is not None and not isinstance(self.limit_message, str):
            raise ValueError(f"limit_message must be a string or None, not {self.limit_message!r}")
        if self.bedrock_token_mismatch not in TOKEN_MISMATCH_CHOICES:
            raise ValueError(f"bedrock_token_mismatch must be one of {TOKEN_MISMATCH_CHOICES}")
        if not (self.account_id.isdigit() and len(self.account_id) == 12):
            raise ValueError("account_id must be 12 digits")

    def rate(self, op_class: str) -> float | None:
        """The request rate of a class (``create``, ``get``, ``list``); None means unlimited."""
        rate: float | None = getattr(self, f"{op_class}_rate")
        return rate or None

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (validated); lists are accepted for (min, max) pairs."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {', '.join(sorted(unknown))}")
        for name in _PAIRS & set(changes):
            changes[name] = _pair(name, changes[name])
        return dataclasses.replace(self, **changes)

    def replace_from_json(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Like :meth:`replace`, for values read from JSON (no clock)."""
        bad = set(changes) & _NOT_SERIALIZABLE
        if bad:
            raise ValueError(f"cannot be set over HTTP: {', '.join(sorted(bad))}")
        return self.replace(**changes)

    def as_json(self) -> dict[str, Any]:
        """Every setting except the clock, as JSON-ready values."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in dataclasses.fields(self)
            if f.name not in _NOT_SERIALIZABLE
        }


def _pair(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (float(value[0]), float(value[1]))
    raise ValueError(f"{name} must be a (min, max) pair, not {value!r}")
