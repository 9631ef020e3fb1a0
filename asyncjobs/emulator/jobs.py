"""An emulated job and its lifecycle, computed from the clock: no I/O, no background task.

Each job carries a *schedule*, the list of ``(start time, status)`` it goes through,
drawn once when it is created from an RNG seeded by ``(seed, kind, jobName,
occurrence)``. Its status at any moment is the last entry that has started, so the
same seed and config give the same statuses whatever order requests arrive in, and a
resubmission under a new name gets a new draw. Stopping a job rewrites the rest of
its schedule.

Bedrock::

    Submitted -> Validating -> Scheduled -> InProgress -> Completed | PartiallyCompleted | Failed
                                      \\-> Expired (not started within the timeout)
    (any active status) -> Stopping -> Stopped

Personalize::

    CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE | CREATE FAILED
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import EmulatorConfig
from .jobdata import Plan

BEDROCK = "bedrock"
PERSONALIZE = "personalize"
PERSONALIZE_SEGMENT = "personalize-segment"
KINDS = (BEDROCK, PERSONALIZE, PERSONALIZE_SEGMENT)

BEDROCK_TERMINAL = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})
BEDROCK_STATUSES = (
    "Submitted",
    "InProgress",
    "Completed",
    "Failed",
    "Stopping",
    "Stopped",
    "PartiallyCompleted",
    "Expired",
    "Validating",
    "Scheduled",
)
PERSONALIZE_TERMINAL = frozenset({"ACTIVE", "CREATE FAILED"})

_BEDROCK_FAILURES = (
    "The input data failed validation: the number of records is below the minimum of 100.",
    "Internal error: the job could not be completed. Retry the job.",
    "Access denied when reading the input from Amazon S3. Check the service role's permissions.",
)
_PERSONALIZE_FAILURES = (
    "Input data is invalid: the input file contains a malformed JSON line.",
    "Insufficient privileges for accessing data in Amazon S3.",
    "An internal error occurred. Try again.",
)
_PARTIAL_MESSAGE = "Some records were not processed before the job's timeout."
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(slots=True)
class EmuJob:
    """One job as the emulator stores it."""

    seq: int
    kind: str
    name: str
    #: Bedrock: the 12-character job id; Personalize: the job name.
    job_id: str
    arn: str
    region: str
    quota_key: str
    #: The create call's members, as received.
    request: dict[str, Any]
    token: str | None
    submit_time: float
    #: ``(start time, status)`` in time order; the first entry starts at submit_time.
    schedule: list[tuple[float, str]]
    #: The failure (or partial-completion) message once the job reaches its outcome.
    message: str | None = None
    expiration_time: float | None = None
    stop_time: float | None = None
    #: Bedrock: the effective timeoutDurationInHours (the request's or the default).
    timeout_hours: int | None = None
    #: The status that means "running" (Personalize's is configurable, so each job keeps its own).
    running_status: str = "InProgress"
    #: The job's tags, key to value, in the order they were first set.
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    #: What the job reads from and writes to the emulator's S3; None if it touches no S3.
    plan: Plan | None = None

    @property
    def terminal(self) -> frozenset[str]:
        return BEDROCK_TERMINAL if self.kind == BEDROCK else PERSONALIZE_TERMINAL

    def entry_at(self, now: float) -> tuple[float, str]:
        """The schedule entry in force at ``now`` (the first one if ``now`` is earlier)."""
        current = self.schedule[0]
        for entry in self.schedule[1:]:
            if entry[0] > now:
                break
            current = entry
        return current

    def status_at(self, now: float) -> str:
        return self.entry_at(now)[1]

    @property
    def end_time(self) -> float:
        """When the job reaches its terminal status (every schedule ends with one)."""
        return self.schedule[-1][0]

    def end_time_at(self, now: float) -> float | None:
        """When the job reached its terminal status, if it has by ``now``."""
        start, status = self.entry_at(now)
        return start if status in self.terminal else None

    def start_time_at(self, now: float) -> float | None:
        """When the job began running, if it has by ``now``."""
        for start, status in self.schedule:
            if start > now:
                return None
            if status == self.running_status:
                return start
        return None

    def message_at(self, now: float) -> str | None:
        """The failure message, once the outcome that carries it is reached."""
        status = self.status_at(now)
        return self.message if status in {"Failed", "PartiallyCompleted", "CREATE FAILED"} else None

    def stop(self, now: float, stop_seconds: float) -> None:
        """Bedrock: go to Stopping now and to Stopped ``stop_seconds`` later."""
        kept = [entry for entry in self.schedule if entry[0] <= now]
        self.schedule = [*kept, (now, "Stopping"), (now + stop_seconds, "Stopped")]
        self.stop_time = now

    def fail_early(self, message: str) -> None:
        """Fail when the phase that checks the input ends: Validating (Bedrock) or pending (Personalize).

        The job never runs, so it ends where it would have started the next phase.
        """
        checking = "Validating" if self.kind == BEDROCK else self.schedule[0][1]
        index = next(i for i, (_, status) in enumerate(self.schedule) if status == checking)
        end = self.schedule[index + 1][0]
        failed = "Failed" if self.kind == BEDROCK else "CREATE FAILED"
        self.schedule = [*self.schedule[: index + 1], (end, failed)]
        self.message = message

    def end_as(self, status: str, message: str | None) -> None:
        """Replace the outcome (the last entry) of the schedule, keeping its time."""
        self.schedule[-1] = (self.schedule[-1][0], status)
        self.message = message

    @property
    def outcome(self) -> str:
        """The status the job ends in, as its schedule stands."""
        return self.schedule[-1][1]

    def to_json(self) -> dict[str, Any]:
        """Every field, as JSON-ready values (the schedule's entries become lists)."""
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "schedule": [[start, status] for start, status in self.schedule],
            "plan": None if self.plan is None else self.plan.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmuJob:
        """The job :meth:`to_json` wrote; ValueError (or TypeError) if ``data`` is not one."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, Mapping) or set(data) != names:
            raise ValueError("not an emulator job record")
        texts = ("kind", "name", "job_id", "arn", "region", "quota_key", "running_status")
        if (
            not all(isinstance(data[name], str) for name in texts)
            or data["kind"] not in KINDS
            or not isinstance(data["seq"], int)
            or not isinstance(data["request"], dict)
        ):
            raise ValueError(f"job {data.get('arn')!r}: a field has the wrong type")
        schedule = [(float(start), str(status)) for start, status in data["schedule"]]
        if not schedule:
            raise ValueError(f"job {data['arn']!r}: an empty schedule")
        if not isinstance(data["tags"], dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in data["tags"].items()
        ):
            raise ValueError(f"job {data['arn']!r}: tags must map strings to strings")
        plan = None if data["plan"] is None else Plan.from_json(data["plan"])
        return cls(**{**data, "schedule": schedule, "tags": dict(data["tags"]), "plan": plan})


def job_rng(config: EmulatorConfig, kind: str, name: str, occurrence: int) -> random.Random:
    """The RNG that draws one job's id, durations and outcome."""
    return random.Random(f"{config.seed}/{kind}/{name}/{occurrence}")


def _uniform(rng: random.Random, pair: tuple[float, float], scale: float) -> float:
    return rng.uniform(*pair) * scale


def draw_bedrock(
    config: EmulatorConfig, name: str, occurrence: int, submit_time: float, timeout_hours: int
) -> tuple[str, list[tuple[float, str]], str | None, float]:
    """A Bedrock job's id, schedule, outcome message and expiration time."""
    rng = job_rng(config, BEDROCK, name, occurrence)
    scale = config.time_scale
    job_id = "".join(rng.choice(_ID_ALPHABET) for _ in range(12))
    submitted, validating, scheduled = (_uniform(rng, config.bedrock_phase_seconds, scale) for _ in range(3))
    running = _uniform(rng, config.job_seconds, scale)
    outcome_draw, expire_draw, message_draw = rng.random(), rng.random(), rng.random()
    timeout = timeout_hours * 3600 * scale

    t_validating = submit_time + submitted
    t_scheduled = t_validating + validating
    schedule = [(submit_time, "Submitted"), (t_validating, "Validating"), (t_scheduled, "Scheduled")]
    message: str | None = None
    if expire_draw < config.expire_rate or scheduled > timeout:
        schedule.append((t_scheduled + timeout, "Expired"))
    else:
        t_running = t_scheduled + scheduled
        schedule.append((t_running, "InProgress"))
        if outcome_draw < config.fail_rate:
            outcome = "Failed"
            message = _BEDROCK_FAILURES[int(message_draw * len(_BEDROCK_FAILURES))]
        elif outcome_draw < config.fail_rate + config.partial_rate:
            outcome = "PartiallyCompleted"
            message = _PARTIAL_MESSAGE
        else:
            outcome = "Completed"
        schedule.append((t_running + running, outcome))
    return job_id, schedule, message, submit_time + timeout


def draw_personalize(
    config: EmulatorConfig, kind: str, name: str, occurrence: int, submit_time: float
) -> tuple[list[tuple[float, str]], str | None]:
    """A Personalize job's schedule and failure reason."""
    rng = job_rng(config, kind, name, occurrence)
    scale = config.time_scale
    pending = _uniform(rng, config.personalize_pending_seconds, scale)
    running = _uniform(rng, config.job_seconds, scale)
    outcome_draw, message_draw = rng.random(), rng.random()
    t_running = submit_time + pending
    failed = outcome_draw < config.fail_rate
    schedule = [
        (submit_time, config.personalize_pending_status),
        (t_running, config.personalize_running_status),
        (t_running + running, "CREATE FAILED" if failed else "ACTIVE"),
    ]
    message = _PERSONALIZE_FAILURES[int(message_draw * len(_PERSONALIZE_FAILURES))] if failed else None
    return schedule, message
