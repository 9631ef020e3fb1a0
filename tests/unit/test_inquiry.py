"""Telling a throttle from a full quota when both come as one error: the rules as a table."""

from __future__ import annotations

from asyncjobs.inquiry import Inquiries, Role, Verdict


async def test_the_first_refusal_opens_an_inquiry_and_its_job_is_the_probe() -> None:
    inquiries = Inquiries()
    role, inquiry = inquiries.refused("k", "a", 2)
    assert (role, inquiry.probe, inquiry.verdict) == (Role.PROBE, "a", None)
    assert inquiries.is_open("k") and not inquiries.is_open("other")


async def test_the_probe_refused_again_means_the_quota_is_full() -> None:
    inquiries = Inquiries()
    _, first = inquiries.refused("k", "a", 2)
    role, inquiry = inquiries.refused("k", "a", 2)
    assert role is Role.DECIDED and inquiry is first
    assert (inquiry.verdict, inquiry.refusals, inquiry.decided.is_set()) == (Verdict.QUOTA_FULL, 2, True)
    assert not inquiries.is_open("k")


async def test_an_accepted_create_of_the_key_means_the_pace_was_the_cause() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a", 2)
    role, waiting = inquiries.refused("k", "b", 2)
    assert role is Role.WAIT and not waiting.decided.is_set()
    assert inquiries.accepted("other", 0) is None
    closed = inquiries.accepted("k", 2)
    assert closed is waiting
    assert (closed.verdict, closed.refusals, closed.decided.is_set()) == (Verdict.THROTTLED, 2, True)
    assert inquiries.accepted("k", 3) is None, "nothing open any more"


async def test_a_probe_that_leaves_unsent_decides_nothing_against_the_quota() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a", 2)
    assert inquiries.abandoned("b") is None
    left = inquiries.abandoned("a")
    assert left is not None and left.verdict is Verdict.UNCLEAR
    assert not inquiries.is_open("k")
    role, again = inquiries.refused("k", "c", 1)
    assert role is Role.PROBE and again is not left, "a refusal at a lower occupancy opens a new inquiry"


async def test_a_probe_the_shared_cap_keeps_unsent_finds_the_quota_full() -> None:
    """Another worker found the key's cap while the probe waited: the probe is not sent, and the
    refusal it was to decide is the quota's."""
    inquiries = Inquiries()
    inquiries.refused("k", "a", 2)
    assert inquiries.answered_by_cap("b") is None  # not the probe
    answered = inquiries.answered_by_cap("a")
    assert answered is not None and answered.verdict is Verdict.QUOTA_FULL
    assert answered.decided.is_set() and not inquiries.is_open("k")
    assert inquiries.answered_by_cap("a") is None  # closed once


async def test_keys_are_inquired_into_apart() -> None:
    inquiries = Inquiries()
    inquiries.refused("k1", "a", 2)
    role, _ = inquiries.refused("k2", "b", 2)
    assert role is Role.PROBE
    inquiries.refused("k1", "a", 2)
    assert not inquiries.is_open("k1") and inquiries.is_open("k2")


async def test_room_found_after_one_of_ours_finished_proves_nothing() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a", 3)
    closed = inquiries.accepted("k", 2)
    assert closed is not None and closed.verdict is Verdict.UNCLEAR


async def test_a_create_sent_before_the_refusal_proves_nothing() -> None:
    """Two creates on their way at once: the first is taken and fills the quota, the second is
    refused. The first one's acceptance, arriving after the refusal, says nothing of the pace."""
    inquiries = Inquiries()
    first, second = inquiries.sending(), inquiries.sending()
    inquiries.refused("k", "b", 1)  # the second create's answer came first
    assert inquiries.accepted("k", 1, sent=first) is None
    assert inquiries.is_open("k"), "still open: the probe decides"
    probe = inquiries.sending()
    assert second < probe
    closed = inquiries.accepted("k", 1, sent=probe)
    assert closed is not None and closed.verdict is Verdict.THROTTLED


async def test_a_second_refusal_at_the_same_occupancy_is_a_full_quota() -> None:
    """Jobs shorter than the probe's silence free their slots before it goes out; the quota
    still shows by refusing again at the occupancy it refused before."""
    inquiries = Inquiries()
    inquiries.refused("k", "a", 2)
    inquiries.accepted("k", 1)  # the probe went through after one of ours ended: unclear
    role, inquiry = inquiries.refused("k", "b", 2)
    assert (role, inquiry.verdict) == (Role.FULL, Verdict.QUOTA_FULL)
    assert not inquiries.is_open("k")
    role, _ = inquiries.refused("k", "c", 2)
    assert role is Role.PROBE, "the cap came down to it: a later refusal is a new question"


async def test_a_create_accepted_above_the_refused_occupancy_clears_the_strike() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a", 2)
    inquiries.accepted("k", 2)  # 3 running now: 2 was not the quota
    role, _ = inquiries.refused("k", "b", 2)
    assert role is Role.PROBE


async def test_the_quota_is_acquitted_only_by_an_acceptance_at_the_level_refused() -> None:
    """What the scheduler checks with a look first (one of ours may have ended unseen): an
    acceptance that would close the inquiry as the pace's, or clear the strike at the level
    refused. Below that level, or sent before the refusal, an acceptance acquits nothing."""
    inquiries = Inquiries()
    assert not inquiries.would_acquit_the_quota("k", 5)  # nothing refused
    early = inquiries.sending()
    inquiries.refused("k", "a", 2)
    assert not inquiries.would_acquit_the_quota("k", 2, sent=early)
    assert not inquiries.would_acquit_the_quota("k", 1)  # one of ours ended: the room may be its
    assert inquiries.would_acquit_the_quota("k", 2)  # would be THROTTLED
    closed = inquiries.accepted("k", 1)
    assert closed is not None and closed.verdict is Verdict.UNCLEAR
    assert not inquiries.would_acquit_the_quota("k", 1)
    assert inquiries.would_acquit_the_quota("k", 2)  # would clear the strike at 2
    inquiries.accepted("k", 2)
    assert not inquiries.would_acquit_the_quota("k", 2)  # cleared: nothing left to acquit
