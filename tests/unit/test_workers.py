"""One worker's view of a shared journal: the mirror of every worker's jobs, and shared paces."""

from __future__ import annotations

import dataclasses
import random
from typing import cast

from asyncjobs.journal.base import Journal
from asyncjobs.journal.single import SingleProcessWorker
from asyncjobs.limits import AdaptiveRate
from asyncjobs.model import Job, JobState, Service
from asyncjobs.scheduler import Settings
from asyncjobs.scheduler.state import RunState

KEY = "bedrock:m1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(job_id: str, state: JobState, seq: int = 0) -> Job:
    return Job(job_id, seq, Service.BEDROCK, KEY, state, 1, f"n-{job_id}", "t", {}, "d", arn=f"arn:{job_id}")


class SQLiteStandIn(SingleProcessWorker):
    """A journal one process holds (only its type matters here)."""


def shared_state() -> RunState:
    """A run's state on a journal that is not a single process's (another worker may share it)."""
    return RunState(cast(Journal, object()), Settings(), Clock(), random.Random(0), None)


def test_a_journal_other_workers_may_share_is_mirrored() -> None:
    state = shared_state()
    assert state.shared

    state.mirror([job("a", JobState.SUBMITTING), job("b", JobState.SUBMITTED), job("c", JobState.RUNNING)])

    assert state.in_use(KEY) == 3  # every worker's active jobs hold a slot
    assert set(state.tracked.jobs) == {"b", "c"}  # the created ones are tracked (one worker sweeps all)
    assert state.created_in(KEY) == 2


def test_the_mirror_drops_what_ended_and_keeps_what_this_worker_is_sending() -> None:
    state = shared_state()
    state.mirror([job("b", JobState.SUBMITTED), job("c", JobState.RUNNING)])
    mine = job("m", JobState.SUBMITTING)
    state.take_slots(KEY, [mine])
    state.handed_over(mine)  # claimed by this worker, its create not yet returned

    state.mirror([job("c", JobState.RUNNING)])  # another worker saw b end; m's claim not yet read

    assert set(state.tracked.jobs) == {"c"}
    assert state.in_use(KEY) == 2  # c, and m which this worker is sending


def test_every_workers_claimed_jobs_count_as_waiting_for_their_create() -> None:
    """The tracker does not sweep a full key while any of its slots waits for a create: the
    campaign's create rate, not the quota, holds it up. So other workers' claims count too."""
    state = shared_state()
    mine, journaling, orphan = (job(i, JobState.SUBMITTING) for i in ("m", "j", "o"))
    state.take_slots(KEY, [mine])
    state.handed_over(mine)  # this worker's, its create not yet returned
    state.taken_over(orphan)  # this worker's now, its create due again
    with state.journaling(journaling):  # this worker's create returned: its ARN is being journaled
        state.mirror(
            [
                mine,
                orphan,
                journaling,
                job("x", JobState.SUBMITTING),  # claimed by other workers
                job("y", JobState.SUBMITTING),
                job("c", JobState.RUNNING),  # created
            ]
        )
        assert state.unsent_in(KEY) == 3  # m, x and y: each once
        assert state.unsent_in("bedrock:other") == 0

    state.mirror([job("c", JobState.RUNNING), job("x", JobState.SUBMITTED)])  # m's and y's claims ended

    assert state.unsent_in(KEY) == 1  # m: this worker's own count, until its create returns
    state.sent(mine)
    assert state.unsent_in(KEY) == 0


def test_another_workers_old_claim_is_not_taken_for_one_waiting_for_the_rate() -> None:
    """A claim left for longer than a live worker takes to send it is likelier a dead worker's,
    held until its lease expires: it does not hold the key's sweeps back meanwhile."""
    state = shared_state()
    claimed_at = 5000.0

    def claim(job_id: str) -> Job:
        return dataclasses.replace(job(job_id, JobState.SUBMITTING), updated_at=claimed_at)

    state.mirror([claim("x"), job("c", JobState.RUNNING)], wall=claimed_at + 1.0)
    assert state.unsent_in(KEY) == 1
    state.mirror([claim("x"), job("c", JobState.RUNNING)], wall=claimed_at + 30.0)
    assert state.unsent_in(KEY) == 0
    assert state.in_use(KEY) == 2  # it still holds its slot


def test_the_mirror_keeps_a_tracked_job_that_did_not_change() -> None:
    state = shared_state()
    tracked = job("b", JobState.SUBMITTED)
    state.mirror([tracked])

    state.mirror([job("b", JobState.SUBMITTED)])  # the same job, read again

    assert state.tracked.get("b") is tracked  # a sweep holding it still records what it saw


def test_a_job_taken_over_is_reconciled_at_once_and_one_lost_is_forgotten() -> None:
    state = shared_state()
    orphan = job("o", JobState.SUBMITTING)

    state.taken_over(orphan)

    due, _ = state.due(state.clock())
    assert due == [orphan]
    assert state.in_use(KEY) == 1
    state.forget(orphan)
    assert state.in_use(KEY) == 0


def test_a_pace_another_worker_learned_is_taken_up() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    assert rate.slow_start and rate.learned is None

    rate.adopt(2.5)

    assert rate.rate == 2.5
    assert not rate.slow_start
    assert rate.learned == 2.5  # kept as this worker's learned pace too


def test_paces_read_from_the_journal_are_adopted_once() -> None:
    state = shared_state()
    rate = state.rate(Service.BEDROCK)

    state.adopt_paces({"bedrock:default": 1.5})

    assert rate.rate == 1.5
    assert state.changed_paces() == {}  # not saved back: it came from the journal


def test_a_pace_read_before_this_worker_sends_to_its_service_is_where_it_starts() -> None:
    state = shared_state()
    state.adopt_paces({"bedrock:default": 1.5})  # no Bedrock create sent here yet

    rate = state.rate(Service.BEDROCK)

    assert (rate.rate, rate.slow_start) == (1.5, False)  # no slow start of its own from 1/s
    assert state.changed_paces() == {}


def test_a_pace_this_worker_changes_wakes_the_workers_part_to_share_it() -> None:
    state = shared_state()
    rate = state.rate(Service.BEDROCK)
    assert not state.wake_workers.is_set()

    rate.on_throttle()  # slow start ends: the pace is learned

    assert state.wake_workers.is_set()  # saved for the other workers now, not at the next save
    assert state.changed_paces() == {"bedrock:default": rate.rate}


def test_a_journal_no_other_worker_shares_is_not_woken_by_a_pace() -> None:
    state = RunState(cast(Journal, SQLiteStandIn()), Settings(), Clock(), random.Random(0), None)
    assert not state.shared

    state.rate(Service.BEDROCK).on_throttle()

    assert not state.wake_workers.is_set()


def test_a_slow_start_doubling_is_shared_and_another_workers_is_kept_up_with() -> None:
    state = shared_state()
    assert not state.slow_starting()  # no create pace yet
    rate = state.rate(Service.BEDROCK)
    assert state.slow_starting()
    assert state.changed_slow_starts() == {}  # at its first pace: nothing to tell
    rate.held_back()
    cast(Clock, state.clock).now += 1.0
    rate.on_success()  # a second at 1/s, held back by the pace: doubled
    assert state.changed_slow_starts() == {"bedrock:default": 2.0}
    state.slow_starts_saved({"bedrock:default": 2.0})
    assert state.changed_slow_starts() == {}

    state.keep_up_slow_starts({"bedrock:default": 4.0})  # another worker doubled it twice

    assert (rate.rate, rate.slow_start) == (4.0, True)
    assert state.changed_slow_starts() == {}  # not saved back: it came from the journal
    assert state.changed_paces() == {}  # nothing learned of the limit yet

    rate.on_throttle()  # this worker's slow start ends: a pace to share, no slow start now
    assert state.changed_slow_starts() == {}
    assert not state.slow_starting()
    assert state.changed_paces() == {"bedrock:default": rate.rate}
    state.keep_up_slow_starts({"bedrock:default": 8.0})  # a later doubling of a worker not yet told
    assert rate.rate == 1.9


PERSONALIZE_KEY = "personalize:us-east-1:batch-inference"


def test_a_cap_this_worker_finds_wakes_the_workers_part_to_share_it() -> None:
    state = shared_state()
    cap = state.cap(PERSONALIZE_KEY)
    assert state.changed_caps() == {}  # the believed default: nothing found yet

    cap.exceeded(3, state.clock(), state.rng)

    assert state.wake_workers.is_set()
    assert state.changed_caps() == {PERSONALIZE_KEY: 3}
    state.caps_saved({PERSONALIZE_KEY: 3})
    assert state.changed_caps() == {}


def test_a_cap_another_worker_found_is_taken_up_once_and_not_saved_back() -> None:
    state = shared_state()
    state.adopt_caps({PERSONALIZE_KEY: 3})
    cap = state.cap(PERSONALIZE_KEY)
    assert cap.cap == 3 and cap.lowered_at == state.clock()
    assert state.changed_caps() == {}  # it came from the journal

    cap.probe(state.clock() + 61.0, after=60.0)  # this worker probes above it: 4, to share
    assert state.changed_caps() == {PERSONALIZE_KEY: 4}
    state.caps_saved({PERSONALIZE_KEY: 4})
    state.adopt_caps({PERSONALIZE_KEY: 4})  # read back: its own
    assert cap.cap == 4

    cap.exceeded(2, state.clock(), state.rng)  # found lower here, not yet saved
    state.adopt_caps({PERSONALIZE_KEY: 4})  # the journal as it was: nothing new in it
    assert cap.cap == 2 and state.changed_caps() == {PERSONALIZE_KEY: 2}


def test_of_a_cap_found_here_and_another_found_meanwhile_the_lower_stands() -> None:
    state = shared_state()
    cap = state.cap(PERSONALIZE_KEY)
    cap.exceeded(2, state.clock(), state.rng)  # found here, not yet saved
    state.adopt_caps({PERSONALIZE_KEY: 3})  # another worker's, saved meanwhile
    assert cap.cap == 2 and state.changed_caps() == {PERSONALIZE_KEY: 2}  # to be saved over it

    state.caps_saved({PERSONALIZE_KEY: 2})
    cap.probe(state.clock() + 61.0, after=60.0)  # a probe here: 3, not yet saved
    state.adopt_caps({PERSONALIZE_KEY: 1})  # another worker was refused at 1 meanwhile
    assert cap.cap == 1 and state.changed_caps() == {}


def test_a_journal_no_other_worker_shares_is_not_woken_by_a_cap() -> None:
    state = RunState(cast(Journal, SQLiteStandIn()), Settings(), Clock(), random.Random(0), None)

    state.cap(PERSONALIZE_KEY).exceeded(3, 0.0, state.rng)

    assert not state.wake_workers.is_set()
