"""The lifecycle table, walked pair by pair."""

from __future__ import annotations

import itertools

import pytest

from asyncjobs.errors import IllegalTransition
from asyncjobs.lifecycle import OBSERVE, TRANSITIONS, Event, allowed, apply
from asyncjobs.model import ACTIVE_STATES, FINAL_STATES, JobState

EXPECTED = {
    (JobState.PENDING, Event.CLAIM): JobState.SUBMITTING,
    (JobState.PENDING, Event.CANCEL): JobState.CANCELLED,
    (JobState.SUBMITTING, Event.CREATED): JobState.SUBMITTED,
    (JobState.SUBMITTING, Event.DEFER): JobState.PENDING,
    (JobState.SUBMITTING, Event.RETRY): JobState.SUBMITTING,
    (JobState.SUBMITTING, Event.REJECT): JobState.REJECTED,
    (JobState.SUBMITTED, Event.OBSERVE_RUNNING): JobState.RUNNING,
    (JobState.RUNNING, Event.OBSERVE_SUCCEEDED): JobState.SUCCEEDED,
    (JobState.RUNNING, Event.OBSERVE_PARTIAL): JobState.PARTIAL,
    (JobState.SUBMITTED, Event.OBSERVE_FAILED): JobState.FAILED,
    (JobState.RUNNING, Event.OBSERVE_STOPPED): JobState.STOPPED,
    (JobState.SUBMITTED, Event.OBSERVE_EXPIRED): JobState.EXPIRED,
    (JobState.RUNNING, Event.OBSERVE_SUBMITTED): JobState.RUNNING,
    (JobState.FAILED, Event.RESUBMIT): JobState.PENDING,
    (JobState.EXPIRED, Event.RESUBMIT): JobState.PENDING,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(JobState, Event)))
def test_every_pair_is_in_the_table_or_raises(state: JobState, event: Event) -> None:
    if event in TRANSITIONS[state]:
        assert allowed(state, event)
        assert apply(state, event) is TRANSITIONS[state][event]
        if (state, event) in EXPECTED:
            assert apply(state, event) is EXPECTED[(state, event)]
    else:
        assert not allowed(state, event)
        with pytest.raises(IllegalTransition, match=f"cannot {event} a job that is {state}"):
            apply(state, event)


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize("state", sorted(FINAL_STATES - {JobState.FAILED, JobState.EXPIRED}))
def test_final_states_are_terminal(state: JobState) -> None:
    assert TRANSITIONS[state] == {}


@pytest.mark.parametrize("state", sorted(ACTIVE_STATES))
def test_no_active_job_can_be_cancelled_without_a_remote_answer(state: JobState) -> None:
    # an active job may exist remotely; it is stopped or settled, never just marked cancelled
    assert not allowed(state, Event.CANCEL)


def test_every_observable_state_has_an_event() -> None:
    for state, event in OBSERVE.items():
        assert apply(JobState.SUBMITTED, event) in (state, JobState.SUBMITTED)
