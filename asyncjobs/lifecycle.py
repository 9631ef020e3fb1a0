"""The job lifecycle: every allowed state change, in one table, with no I/O.

The scheduler and the journal both go through :func:`apply`; neither decides a
transition on its own. ``TRANSITIONS[state][event]`` is the next state; any pair
not in the table raises :class:`~asyncjobs.errors.IllegalTransition`.

::

    pending ──claim──▶ submitting ──created──▶ submitted ──observe_running──▶ running
       ▲                  │  │                     │                             │
       └──────defer───────┘  └─reject─▶ rejected   └──────observe_<final>────────┴─▶ succeeded
                                                                   | partial | failed | stopped | expired
    pending ──cancel──▶ cancelled          failed | expired ──resubmit──▶ pending (next attempt)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .errors import IllegalTransition
from .model import JobState


class Event(enum.StrEnum):
    """What happened to a job."""

    CLAIM = "claim"  # the intent to create is about to be journaled
    CREATED = "created"  # the service returned (or we reconciled) the job's ARN
    DEFER = "defer"  # the service certainly did not create it (quota full): wait for a slot
    RETRY = "retry"  # a create attempt was throttled or failed transiently; it will be tried again
    REJECT = "reject"  # the service refused the request for good
    CANCEL = "cancel"  # the campaign was cancelled before the job was created
    OBSERVE_SUBMITTED = "observe_submitted"
    OBSERVE_RUNNING = "observe_running"
    OBSERVE_SUCCEEDED = "observe_succeeded"
    OBSERVE_PARTIAL = "observe_partial"
    OBSERVE_FAILED = "observe_failed"
    OBSERVE_STOPPED = "observe_stopped"
    OBSERVE_EXPIRED = "observe_expired"
    RESUBMIT = "resubmit"  # a failed or expired job gets a new attempt


P, SG, SD, R = JobState.PENDING, JobState.SUBMITTING, JobState.SUBMITTED, JobState.RUNNING

_OBSERVED_FINAL: Mapping[Event, JobState] = {
    Event.OBSERVE_SUCCEEDED: JobState.SUCCEEDED,
    Event.OBSERVE_PARTIAL: JobState.PARTIAL,
    Event.OBSERVE_FAILED: JobState.FAILED,
    Event.OBSERVE_STOPPED: JobState.STOPPED,
    Event.OBSERVE_EXPIRED: JobState.EXPIRED,
}

TRANSITIONS: Mapping[JobState, Mapping[Event, JobState]] = {
    P: {Event.CLAIM: SG, Event.CANCEL: JobState.CANCELLED},
    SG: {
        Event.CREATED: SD,
        Event.DEFER: P,
        Event.RETRY: SG,
        Event.REJECT: JobState.REJECTED,
        # a reconciliation that finds the job may find it already running or finished
        Event.OBSERVE_SUBMITTED: SD,
        Event.OBSERVE_RUNNING: R,
        **_OBSERVED_FINAL,
    },
    SD: {
        Event.OBSERVE_SUBMITTED: SD,
        Event.OBSERVE_RUNNING: R,
        **_OBSERVED_FINAL,
    },
    R: {
        Event.OBSERVE_RUNNING: R,
        # Bedrock reports Scheduled/Submitted only before InProgress; a late, stale
        # list page may still say so: keep the job running.
        Event.OBSERVE_SUBMITTED: R,
        **_OBSERVED_FINAL,
    },
    JobState.FAILED: {Event.RESUBMIT: P},
    JobState.EXPIRED: {Event.RESUBMIT: P},
    JobState.SUCCEEDED: {},
    JobState.PARTIAL: {},
    JobState.STOPPED: {},
    JobState.REJECTED: {},
    JobState.CANCELLED: {},
}

#: The event that reports a job observed in each normalised remote state.
OBSERVE: Mapping[JobState, Event] = {
    SD: Event.OBSERVE_SUBMITTED,
    R: Event.OBSERVE_RUNNING,
    **{state: event for event, state in _OBSERVED_FINAL.items()},
}


def apply(state: JobState, event: Event) -> JobState:
    """The state after ``event``; raises IllegalTransition if the table has no such change."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(f"cannot {event} a job that is {state}") from None


def allowed(state: JobState, event: Event) -> bool:
    return event in TRANSITIONS[state]
