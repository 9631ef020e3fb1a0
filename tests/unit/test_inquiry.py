"""Telling a throttle from a full quota when both come as one error: the rules as a table."""

from __future__ import annotations

from asyncjobs.inquiry import Inquiries, Role, Verdict


async def test_the_first_refusal_opens_an_inquiry_and_its_job_is_the_probe() -> None:
    inquiries = Inquiries()
    role, inquiry = inquiries.refused("k", "a")
    assert (role, inquiry.probe, inquiry.verdict) == (Role.PROBE, "a", None)
    assert inquiries.is_open("k") and not inquiries.is_open("other")


async def test_the_probe_refused_again_means_the_quota_is_full() -> None:
    inquiries = Inquiries()
    _, first = inquiries.refused("k", "a")
    role, inquiry = inquiries.refused("k", "a")
    assert role is Role.DECIDED and inquiry is first
    assert (inquiry.verdict, inquiry.refusals, inquiry.decided.is_set()) == (Verdict.QUOTA_FULL, 2, True)
    assert not inquiries.is_open("k")


async def test_an_accepted_create_of_the_key_means_the_pace_was_the_cause() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a")
    role, waiting = inquiries.refused("k", "b")
    assert role is Role.WAIT and not waiting.decided.is_set()
    assert inquiries.accepted("other") is None
    closed = inquiries.accepted("k")
    assert closed is waiting
    assert (closed.verdict, closed.refusals, closed.decided.is_set()) == (Verdict.THROTTLED, 2, True)
    assert inquiries.accepted("k") is None, "nothing open any more"


async def test_a_probe_that_leaves_unsent_decides_nothing_against_the_quota() -> None:
    inquiries = Inquiries()
    inquiries.refused("k", "a")
    assert inquiries.abandoned("b") is None
    left = inquiries.abandoned("a")
    assert left is not None and left.verdict is Verdict.THROTTLED
    assert not inquiries.is_open("k")
    role, again = inquiries.refused("k", "c")
    assert role is Role.PROBE and again is not left, "a later refusal opens a new inquiry"


async def test_keys_are_inquired_into_apart() -> None:
    inquiries = Inquiries()
    inquiries.refused("k1", "a")
    role, _ = inquiries.refused("k2", "b")
    assert role is Role.PROBE
    inquiries.refused("k1", "a")
    assert not inquiries.is_open("k1") and inquiries.is_open("k2")
