"""The emulator's knobs: one frozen dataclass, every field documented, with defaults.

Where AWS documents a value (running-job quotas, the Bedrock timeout range) the
default follows it. Where AWS documents nothing (control-plane request rates,
phase durations, the token-mismatch behaviour) the default is a plausible choice,
and the field says so. Durations are seconds of the emulator's clock and are all
multiplied by :attr:`EmulatorConfig.time_scale`.

Every field is type- and range-checked when a config is made, whichever way it came
(Python, the command line, ``POST /_emulator/config``): a bad value raises ValueError
naming the field, and numbers are normalized to floats where the field is a float.
Bools are not numbers here, and numbers must be finite. Durations and latency have
upper bounds, so a request can never be held for an absurd time and every computed
time stays representable (a ``datetime`` ends in the year 9999).
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TokenMismatch = Literal["original", "conflict", "validation"]
TOKEN_MISMATCH_CHOICES: tuple[TokenMismatch, ...] = ("original", "conflict", "validation")
AuthFault = Literal["access-denied", "expired-token"]
AUTH_FAULT_CHOICES: tuple[AuthFault, ...] = ("access-denied", "expired-token")
OutputOrder = Literal["shuffled", "input"]
OUTPUT_ORDER_CHOICES: tuple[OutputOrder, ...] = ("shuffled", "input")
RecordErrorsStatus = Literal["PartiallyCompleted", "Completed"]
RECORD_ERRORS_STATUS_CHOICES: tuple[RecordErrorsStatus, ...] = ("PartiallyCompleted", "Completed")

#: Fields that can't be set from JSON (``POST /_emulator/config``) or the command line.
_NOT_SERIALIZABLE = frozenset({"clock"})

#: The most latency added to one request: botocore's default read timeout; a test needs far less.
MAX_LATENCY_SECONDS = 60.0
#: The longest job phase (and Stopping): 168 hours, the longest Bedrock job timeout.
MAX_DURATION_SECONDS = 168 * 3600.0
#: The largest time_scale: even the longest duration, scaled, stays well inside a datetime.
MAX_TIME_SCALE = 100.0
#: The longest list lag; real List results trail by seconds.
MAX_LIST_LAG_SECONDS = 3600.0
#: The longest limit_message: Bedrock's ``message`` member allows 2048 characters.
MAX_MESSAGE_LENGTH = 2048
#: The longest configurable status string.
MAX_STATUS_LENGTH = 256

#: A region as it appears in an ARN (the Bedrock job ARN's pattern).
_REGION = re.compile(r"[a-z0-9-]{1,20}")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_RATES = ("create_rate", "get_rate", "list_rate")
_PROBABILITIES = ("fail_rate", "partial_rate", "expire_rate", "error_rate", "drop_rate", "record_error_rate")
#: The (min, max) pairs and the largest value each may hold.
_PAIRS = {
    "job_seconds": MAX_DURATION_SECONDS,
    "bedrock_phase_seconds": MAX_DURATION_SECONDS,
    "personalize_pending_seconds": MAX_DURATION_SECONDS,
    "latency": MAX_LATENCY_SECONDS,
}


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
    #: them. None: a distinct text for each (a rate message, and one naming the quota). At most
    #: 2048 characters.
    limit_message: str | None = None

    # -- lifecycle (each duration at most 168 hours, the longest Bedrock job timeout)
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
    #: durations it trails. 0 = no lag; at most 3600.
    list_lag: float = 0.0
    #: Multiplies every duration above, and the Bedrock job timeout (at most 100).
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

    # -- job data: what jobs read from and write to the emulator's S3 (only jobs whose input bucket
    # exists there; see asyncjobs.emulator.jobdata)
    #: Bedrock's "Minimum number of records per batch inference job" quota (100 for most models, not
    #: adjustable): a job with fewer input records fails validation.
    bedrock_min_records: int = 100
    #: Bedrock's "Records per batch inference job" quota (50,000 by default): a job with more fails.
    bedrock_max_records: int = 50_000
    #: Probability that a Bedrock record ends with an ``error`` object instead of a ``modelOutput``,
    #: drawn per record from an RNG seeded by ``(seed, job ARN)``. (Personalize documents no
    #: per-line errors, so its lines never fail.)
    record_error_rate: float = 0.0
    #: How a Bedrock job drawn Completed ends when some of its records failed. AWS documents
    #: PartiallyCompleted as "not all records processed in time" and says nothing of record errors;
    #: the Step Functions sample treats both statuses as done, and so must a client.
    record_errors_status: RecordErrorsStatus = "PartiallyCompleted"
    #: The order of the lines of an output file: ``shuffled`` (seeded; AWS does not promise input
    #: order, so a client must join on recordId) or ``input``.
    output_order: OutputOrder = "shuffled"

    # -- faults, drawn per request from an RNG seeded by ``seed``
    #: Probability of a 500 (InternalServerException for Bedrock, InternalFailure for Personalize).
    error_rate: float = 0.0
    #: Probability that the connection is closed with no response. For create calls, half of the
    #: drops happen after the job was created.
    drop_rate: float = 0.0
    #: (min, max) seconds of latency added to every API request (wall-clock seconds, not scaled;
    #: at most 60).
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
        _integer("seed", self.seed)
        _text("region", self.region, pattern=_REGION)
        _text("account_id", self.account_id, pattern=_ACCOUNT_ID)
        for name in _RATES:
            if getattr(self, name) is not None:
                self._normalize(name, _number(name, getattr(self, name), low=0, high=math.inf))
        for name in ("bedrock_max_running", "personalize_max_running"):
            _integer(name, getattr(self, name), low=1)
        if self.limit_message is not None:
            _text("limit_message", self.limit_message, max_length=MAX_MESSAGE_LENGTH, empty=True)
        for name, high in _PAIRS.items():
            self._normalize(name, _pair(name, getattr(self, name), high))
        self._normalize("stop_seconds", _number("stop_seconds", self.stop_seconds, 0, MAX_DURATION_SECONDS))
        self._normalize("list_lag", _number("list_lag", self.list_lag, 0, MAX_LIST_LAG_SECONDS))
        self._normalize(
            "time_scale", _number("time_scale", self.time_scale, 0, MAX_TIME_SCALE, low_open=True)
        )
        for name in _PROBABILITIES:
            self._normalize(name, _number(name, getattr(self, name), 0, 1))
        if self.fail_rate + self.partial_rate > 1.0:
            raise ValueError("fail_rate + partial_rate must not exceed 1")
        _integer("bedrock_default_timeout_hours", self.bedrock_default_timeout_hours, low=24, high=168)
        _integer("bedrock_min_records", self.bedrock_min_records, low=1)
        _integer("bedrock_max_records", self.bedrock_max_records, low=self.bedrock_min_records)
        _choice("record_errors_status", self.record_errors_status, RECORD_ERRORS_STATUS_CHOICES)
        _choice("output_order", self.output_order, OUTPUT_ORDER_CHOICES)
        for name in ("personalize_pending_status", "personalize_running_status"):
            _text(name, getattr(self, name), max_length=MAX_STATUS_LENGTH)
        _choice("bedrock_token_mismatch", self.bedrock_token_mismatch, TOKEN_MISMATCH_CHOICES)
        if self.auth_fault is not None:
            _choice("auth_fault", self.auth_fault, AUTH_FAULT_CHOICES, none=True)
        _integer("auth_fault_after", self.auth_fault_after, low=0)

    def _normalize(self, name: str, value: object) -> None:
        """Store the checked value (a float for an int given, a tuple for a list) in a frozen field."""
        object.__setattr__(self, name, value)

    def rate(self, op_class: str) -> float | None:
        """The request rate of a class (``create``, ``get``, ``list``); None means unlimited."""
        rate: float | None = getattr(self, f"{op_class}_rate")
        return rate or None

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (validated); a (min, max) pair may be a list or one number."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {', '.join(sorted(unknown))}")
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


def _number(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float if it is a finite number (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {_shown(value)}")
    if number < low or (low_open and number == low) or number > high:
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        limit = "" if math.isinf(high) else f" and at most {high:g}"
        raise ValueError(f"{name} must be {bound}{limit}, not {_shown(value)}")
    return number


def _integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {_shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {span}, not {_shown(value)}")


def _text(
    name: str,
    value: object,
    *,
    max_length: int | None = None,
    pattern: re.Pattern[str] | None = None,
    empty: bool = False,
) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {_shown(value)}")
    if not value and not empty:
        raise ValueError(f"{name} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{name} must be at most {max_length} characters, not {len(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ValueError(f"{name} must match {pattern.pattern}, not {_shown(value)}")


def _choice(name: str, value: object, choices: tuple[str, ...], *, none: bool = False) -> None:
    if not (isinstance(value, str) and value in choices):
        allowed = f"None or one of {choices}" if none else f"one of {choices}"
        raise ValueError(f"{name} must be {allowed}, not {_shown(value)}")


def _pair(name: str, value: object, high: float) -> tuple[float, float]:
    """``(min, max)`` from a pair (tuple or list) or one number for both, with 0 <= min <= max <= high."""
    if isinstance(value, list | tuple) and len(value) == 2:
        low_value, high_value = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        low_value = high_value = value
    else:
        raise ValueError(f"{name} must be a (min, max) pair of numbers, not {_shown(value)}")
    low = _number(name, low_value, 0, high)
    top = _number(name, high_value, 0, high)
    if low > top:
        raise ValueError(f"{name} must be (min, max) with min <= max, not {_shown(value)}")
    return low, top


def _shown(value: object) -> str:
    """``value`` for an error message, shortened: a rejected value may be a megabyte of JSON."""
    try:
        return reprlib.repr(value)
    except ValueError:  # an int too long to convert to text at all
        return "a number too long to show"
