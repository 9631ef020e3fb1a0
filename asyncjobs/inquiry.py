"""Telling a throttle from a full quota when the service answers both with one error.

Personalize refuses a create with ``LimitExceededException`` both when requests come too
fast and when the running-jobs quota is full, with message texts AWS does not document.
The scheduler decides from what it knows instead, never from the words. ``held`` is how
many created, unfinished jobs of the quota key are ours when a create is refused.

- The first such refusal for a quota key opens an *inquiry*. The pace is cut as for a
  throttle (the commoner cause while a pace is still being learned), the key claims no
  more jobs, and the refused job is sent again after a silence: it is the probe.
- A create of that key sent after the refusal and accepted, the probe's included, closes the
  inquiry as ``THROTTLED``: the quota had room at the same occupancy, so the pace was the
  cause. (A create already on its way when the refusal came proves nothing: the service may
  have taken it first.) If one of ours had finished by then (``held`` fell; the scheduler
  looks, with one List, before it takes the pace for the cause: a job may end unseen between
  sweeps), the room may be that job's: ``UNCLEAR``, and the pace settles just below the one
  that drew the refusal (it may have been the pace's, but a full cut for a refusal that likely
  was the quota's slows every later create). If the pace was not holding
  creates back when the refusal came (the slots were), the pace is not suspected at all: no cut,
  and an accepted create is ``UNCLEAR`` too.
- The probe refused again closes it as ``QUOTA_FULL``: a create sent after a silence is still
  refused, so the quota is full. The cap drops to what runs and the job waits; the pace's
  provisional cut is undone.
- A refusal at an occupancy that was refused before, with no create of the key accepted above
  it since (counted after the same look), is a second strike: ``QUOTA_FULL`` at once. Jobs
  shorter than the silence free their slots before the probe goes out; the quota still shows
  by refusing at the same level.
- Other jobs of the key refused while an inquiry is open wait for its verdict and follow it.
- A probe that finds the key's cap already filled by created jobs when its turn comes (another
  worker sharing the quota found it full and shared the cap meanwhile) is not sent: the
  inquiry closes as ``QUOTA_FULL``, as if its own probe had been refused.

One open inquiry per key; its state is plain data, so the rules above are tested as a table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import anyio


class Verdict(enum.Enum):
    THROTTLED = "throttled"
    QUOTA_FULL = "quota full"
    UNCLEAR = "unclear"


class Role(enum.Enum):
    """What a refused job does next."""

    #: It opened an inquiry: it is the probe, to be sent again at the cut pace.
    PROBE = "probe"
    #: It was the probe and was refused again: the verdict is ``QUOTA_FULL``.
    DECIDED = "decided"
    #: A second strike at an occupancy refused before: ``QUOTA_FULL`` without an inquiry.
    FULL = "full"
    #: Another job of a key under inquiry: it waits for the verdict.
    WAIT = "wait"


@dataclass(eq=False)
class Inquiry:
    key: str
    #: The job whose second create decides.
    probe: str
    #: Our created, unfinished jobs of the key when the inquiry opened.
    held: int = 0
    #: Refused creates of the key while the inquiry was open, the first included.
    refusals: int = 1
    #: The pace's mark for the provisional throttle, to undo it if the quota was the cause.
    pace_mark: int | None = None
    #: Whether the pace could be the cause: it was being learned, or holding creates back. A
    #: refusal while creates went out slower than the pace allows (the slots held them back)
    #: cannot be found to be the pace's by an accepted create: the room may be a freed slot.
    pace_suspected: bool = True
    verdict: Verdict | None = None
    decided: anyio.Event = field(default_factory=anyio.Event)


class Inquiries:
    """The open inquiries of a run, by quota key."""

    def __init__(self) -> None:
        self._open: dict[str, Inquiry] = {}
        #: The lowest occupancy refused per key, until a create of the key is accepted above it.
        self._refused_at: dict[str, int] = {}
        #: Creates sent so far, and how many had been sent when each key was last refused: a
        #: create already on its way then may have reached the service before the refused one,
        #: so its acceptance says nothing about the occupancy that was refused.
        self._sends = 0
        self._sends_at_refusal: dict[str, int] = {}

    def sending(self) -> int:
        """A create is about to be sent: its number, for :meth:`accepted`."""
        self._sends += 1
        return self._sends

    def is_open(self, key: str) -> bool:
        return key in self._open

    def get(self, key: str) -> Inquiry | None:
        """The open inquiry of ``key``, if any."""
        return self._open.get(key)

    def refused(self, key: str, job_id: str, held: int) -> tuple[Role, Inquiry]:
        """A create of ``job_id`` (of quota key ``key``, ``held`` of ours running) was refused
        with the ambiguous error."""
        self._sends_at_refusal[key] = self._sends
        inquiry = self._open.get(key)
        if inquiry is None:
            inquiry = Inquiry(key, job_id, held)
            if held >= self._refused_at.get(key, held + 1):
                self._close(inquiry, Verdict.QUOTA_FULL)
                return Role.FULL, inquiry
            self._refused_at[key] = held
            self._open[key] = inquiry
            return Role.PROBE, inquiry
        inquiry.refusals += 1
        if inquiry.probe == job_id:
            self._close(inquiry, Verdict.QUOTA_FULL)
            return Role.DECIDED, inquiry
        return Role.WAIT, inquiry

    def accepted(self, key: str, held: int, *, sent: int | None = None) -> Inquiry | None:
        """A create of ``key`` (number ``sent`` from :meth:`sending`) was accepted while
        ``held`` others of ours ran: an open inquiry there was about the pace, unless one of
        ours has finished since it opened (``held`` fell). A create sent before the key's last
        refusal proves nothing either way."""
        if self._too_early(key, sent):
            return None
        if held >= self._refused_at.get(key, held + 1):
            del self._refused_at[key]  # the quota has room above the level once refused
        inquiry = self._open.get(key)
        if inquiry is not None:
            self._close(inquiry, Verdict.THROTTLED if self._pace_shown(inquiry, held) else Verdict.UNCLEAR)
        return inquiry

    def would_acquit_the_quota(self, key: str, held: int, *, sent: int | None = None) -> bool:
        """Whether :meth:`accepted` would now find the quota not at fault for ``key``'s last
        refusal: close its inquiry as ``THROTTLED``, or clear the strike at the level refused.
        Either rests on ``held``; the caller may first look whether one of ours ended unseen
        (``held`` would fall): the room the create found may be that job's."""
        if self._too_early(key, sent):
            return False
        inquiry = self._open.get(key)
        if inquiry is not None and self._pace_shown(inquiry, held):
            return True
        return held >= self._refused_at.get(key, held + 1)

    def _too_early(self, key: str, sent: int | None) -> bool:
        return sent is not None and sent <= self._sends_at_refusal.get(key, 0)

    @staticmethod
    def _pace_shown(inquiry: Inquiry, held: int) -> bool:
        return inquiry.pace_suspected and held >= inquiry.held

    def answered_by_cap(self, job_id: str) -> Inquiry | None:
        """The probe ``job_id`` is not sent because the key's cap is full (found by another
        worker sharing the quota): the quota was full, as a refused probe would have said."""
        return self._close_probe(job_id, Verdict.QUOTA_FULL)

    def abandoned(self, job_id: str) -> Inquiry | None:
        """The probe ``job_id`` will not be sent again (the run stops, or another error came):
        nothing was learned, so the cap stays as it is and the waiting jobs try again."""
        return self._close_probe(job_id, Verdict.UNCLEAR)

    def _close_probe(self, job_id: str, verdict: Verdict) -> Inquiry | None:
        """Close the open inquiry whose probe is ``job_id`` (if any) with ``verdict``."""
        for inquiry in self._open.values():
            if inquiry.probe == job_id:
                self._close(inquiry, verdict)
                return inquiry
        return None

    def _close(self, inquiry: Inquiry, verdict: Verdict) -> None:
        inquiry.verdict = verdict
        if verdict is Verdict.QUOTA_FULL:
            self._refused_at.pop(inquiry.key, None)  # the cap comes down to it
        self._open.pop(inquiry.key, None)
        inquiry.decided.set()
