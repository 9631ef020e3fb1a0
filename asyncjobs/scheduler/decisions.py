"""What to do after a create call failed: a pure function of the error and the job's counters.

No I/O, no clock and no logging: :func:`decide` maps the error class the adapter raised
(see :mod:`asyncjobs.errors`), how often this job has met throttles and transient errors,
whether an earlier create of it may have landed, and, for Personalize's ambiguous
``LimitExceededException``, the role :class:`~asyncjobs.inquiry.Inquiries` gave it, to
one :class:`Decision`. The submit worker carries the decision out. The rules, as a table:

==========================  ======================  ========================================
error                       condition               action
==========================  ======================  ========================================
Throttled                                           THROTTLED: slow the pace, back off, resend
CapacityExceeded            nothing may be created  DEFER: lower the cap, give the slot back
CapacityExceeded            maybe created           RECONCILE: lower the cap, look first
LimitExceeded               role DECIDED or FULL    as CapacityExceeded (DECIDED closes it)
LimitExceeded               role PROBE              PROBE: hold the pace, resend after a silence
LimitExceeded               role WAIT               FOLLOW: wait for the open inquiry's verdict
Transient                   retries left            RETRY: back off, resend (maybe created now)
Transient                   no retries left         PARK: resend later, the job stays claimed
AlreadyExists                                       ADOPT: find the job the name belongs to
Fatal                                               HALT (the slot is given back unless maybe
                                                    created)
Rejected                                            REJECT: the job ends rejected
==========================  ======================  ========================================

Other errors (``NotFound`` from a create) have no decision: they are not in
:data:`DECIDED_ERRORS`, and end the run as the bug they would be.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ..errors import (
    AlreadyExists,
    CapacityExceeded,
    Fatal,
    LimitExceeded,
    Rejected,
    ServiceError,
    Throttled,
    Transient,
)
from ..inquiry import Role
from ..metrics import CreateOutcome

#: The errors of a create call that :func:`decide` has a rule for.
DECIDED_ERRORS: tuple[type[ServiceError], ...] = (
    Throttled,
    CapacityExceeded,
    LimitExceeded,
    Transient,
    AlreadyExists,
    Fatal,
    Rejected,
)


class Action(enum.Enum):
    THROTTLED = "throttled"
    DEFER = "defer"
    RECONCILE = "reconcile"
    PROBE = "probe"
    FOLLOW = "follow"
    RETRY = "retry"
    PARK = "park"
    ADOPT = "adopt"
    HALT = "halt"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Attempts:
    """What one job's creates have met so far in this run."""

    #: Creates refused by the request rate.
    throttles: int = 0
    #: Creates that failed with a 5xx or a broken connection.
    transient: int = 0
    #: An earlier create (before a crash, or one that failed ambiguously) may have landed:
    #: the job must not be given back unseen.
    maybe_created: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: The counters after this error (the backoff of a retry grows with them).
    attempts: Attempts
    #: The service said the quota is full: lower the believed cap.
    quota_full: bool = False
    #: The job was the probe of a Personalize inquiry, now decided: let held creates go.
    closes_inquiry: bool = False

    @property
    def outcome(self) -> CreateOutcome:
        """The failed create as ``asyncjobs_create_calls_total`` counts it. A Personalize
        ``LimitExceeded`` not yet found to mean a full quota (PROBE, FOLLOW) counts as
        throttled: the engine holds the pace and sends it again, as after a throttle."""
        return _OUTCOMES[self.action]


_OUTCOMES = {
    Action.THROTTLED: CreateOutcome.THROTTLED,
    Action.PROBE: CreateOutcome.THROTTLED,
    Action.FOLLOW: CreateOutcome.THROTTLED,
    Action.DEFER: CreateOutcome.QUOTA,
    Action.RECONCILE: CreateOutcome.QUOTA,
    Action.RETRY: CreateOutcome.TRANSIENT,
    Action.PARK: CreateOutcome.TRANSIENT,
    Action.ADOPT: CreateOutcome.EXISTS,
    Action.HALT: CreateOutcome.REJECTED,
    Action.REJECT: CreateOutcome.REJECTED,
}


def decide(
    error: ServiceError, attempts: Attempts, *, transient_retries: int, role: Role | None = None
) -> Decision:
    """The action after ``error`` (``role``: what the inquiry made of a ``LimitExceeded``)."""
    if isinstance(error, Throttled):
        return Decision(Action.THROTTLED, replace(attempts, throttles=attempts.throttles + 1))
    if isinstance(error, CapacityExceeded) or (
        isinstance(error, LimitExceeded) and role in (Role.DECIDED, Role.FULL)
    ):
        action = Action.RECONCILE if attempts.maybe_created else Action.DEFER
        return Decision(action, attempts, quota_full=True, closes_inquiry=role is Role.DECIDED)
    if isinstance(error, LimitExceeded):
        # sent before an inquiry of its key opened, or the one that opened it
        return Decision(Action.PROBE if role is Role.PROBE else Action.FOLLOW, attempts)
    if isinstance(error, Transient):
        counted = replace(attempts, transient=attempts.transient + 1, maybe_created=True)
        return Decision(Action.PARK if counted.transient > transient_retries else Action.RETRY, counted)
    if isinstance(error, AlreadyExists):
        return Decision(Action.ADOPT, attempts)
    if isinstance(error, Fatal):
        return Decision(Action.HALT, attempts)
    if isinstance(error, Rejected):
        return Decision(Action.REJECT, attempts)
    raise TypeError(f"no decision for a create that failed with {type(error).__name__}")
