"""The create-error decisions, walked as a table: every error class, with the counters that matter."""

from __future__ import annotations

import pytest

from asyncjobs.errors import (
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
from asyncjobs.inquiry import Role
from asyncjobs.scheduler.decisions import Action, Attempts, Decision, decide

FRESH = Attempts()
MAYBE = Attempts(maybe_created=True)
RETRIES = 3

TABLE: list[tuple[ServiceError, Attempts, Role | None, Decision]] = [
    # throttles slow the pace and count up; nothing else changes
    (Throttled("slow"), FRESH, None, Decision(Action.THROTTLED, Attempts(throttles=1))),
    (Throttled("slow"), Attempts(throttles=4, transient=1), None, Decision(Action.THROTTLED, Attempts(5, 1))),
    # a full quota gives the job back, unless it may exist: then look first
    (CapacityExceeded("full"), FRESH, None, Decision(Action.DEFER, FRESH, quota_full=True)),
    (CapacityExceeded("full"), MAYBE, None, Decision(Action.RECONCILE, MAYBE, quota_full=True)),
    # Personalize's ambiguous refusal follows the inquiry's role
    (LimitExceeded("?"), FRESH, Role.PROBE, Decision(Action.PROBE, FRESH)),
    (LimitExceeded("?"), FRESH, Role.WAIT, Decision(Action.FOLLOW, FRESH)),
    (LimitExceeded("?"), FRESH, Role.FULL, Decision(Action.DEFER, FRESH, quota_full=True)),
    (
        LimitExceeded("?"),
        FRESH,
        Role.DECIDED,
        Decision(Action.DEFER, FRESH, quota_full=True, closes_inquiry=True),
    ),
    (
        LimitExceeded("?"),
        MAYBE,
        Role.DECIDED,
        Decision(Action.RECONCILE, MAYBE, quota_full=True, closes_inquiry=True),
    ),
    # a 5xx may have created the job; after the last retry the job is parked, still claimed
    (Transient("5xx"), FRESH, None, Decision(Action.RETRY, Attempts(transient=1, maybe_created=True))),
    (Transient("5xx"), Attempts(transient=2), None, Decision(Action.RETRY, Attempts(0, 3, True))),
    (Transient("5xx"), Attempts(transient=3), None, Decision(Action.PARK, Attempts(0, 4, True))),
    (AlreadyExists("taken"), FRESH, None, Decision(Action.ADOPT, FRESH)),
    (Fatal("expired"), MAYBE, None, Decision(Action.HALT, MAYBE)),
    (Fatal("expired"), FRESH, None, Decision(Action.HALT, FRESH)),
    (Rejected("bad"), FRESH, None, Decision(Action.REJECT, FRESH)),
]


@pytest.mark.parametrize(("error", "attempts", "role", "expected"), TABLE)
def test_decision(error: ServiceError, attempts: Attempts, role: Role | None, expected: Decision) -> None:
    assert decide(error, attempts, transient_retries=RETRIES, role=role) == expected


def test_a_create_error_without_a_rule_is_not_decided() -> None:
    with pytest.raises(TypeError, match="NotFound"):
        decide(NotFound("gone"), FRESH, transient_retries=RETRIES)
