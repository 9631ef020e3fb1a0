"""Which job kinds this worker sweeps on a shared journal: those whose sweep lease it holds.

One worker at a time sweeps each job kind, for every worker, so that N workers read no more than
one would. That worker holds the kind's lease in the journal
(:meth:`~asyncjobs.journal.base.Journal.try_lease_sweep`), and :meth:`SweepLeases.keep`, a task of
its own beside the sweeps, renews it every :data:`RENEW_SECONDS`:

- **No two sweepers.** While its holder lives and wants to sweep the kind, the lease never lapses,
  however long the poll policy waits between sweeps or a sweep takes: another worker never holds
  it meanwhile.
- **A dead holder is replaced quickly.** A killed worker gives nothing up; its lease lapses
  within :data:`LEASE_SECONDS` of its last renewal, and every worker that wants the kind asks for
  it every :data:`RENEW_SECONDS`. So another worker holds the kind, and sweeps it at once if it is
  due, within about ``LEASE_SECONDS + RENEW_SECONDS`` of the death, whatever ``--poll-interval``.
- **A holder that no longer wants a kind lets it go.** A kind not asked for in ``let_go_after``
  seconds is no longer renewed, and lapses.

A worker believes it holds a lease until the moment it sent its last successful take or renewal,
plus the lease: the database counts the lease from a later moment, so the worker never believes
it holds a lease that the database has already let lapse.
"""

from __future__ import annotations

import math

import anyio

from ..journal import Journal
from .reporting import Clock
from .state import Signal

#: Seconds a kind's sweep lease lasts unless its holder renews it.
LEASE_SECONDS = 6.0
#: Seconds between renewals (and, for a kind held by another worker, between asks).
RENEW_SECONDS = LEASE_SECONDS / 3


class SweepLeases:
    """This worker's sweep leases on a shared journal: asked for by :meth:`holds`, kept by :meth:`keep`."""

    def __init__(self, journal: Journal, clock: Clock, *, let_go_after: float) -> None:
        self._journal = journal
        self._clock = clock
        self._let_go_after = let_go_after
        self._wanted: dict[str, float] = {}  # kind -> when a sweep of it was last due here
        self._held_until: dict[str, float] = {}  # kind -> until when this worker surely holds it
        self._new_kind = Signal()

    def holds(self, kind: str) -> bool:
        """Whether this worker sweeps ``kind`` now. Asking says that a sweep of it is due here:
        the lease is taken (or renewed) by :meth:`keep`, not by this call."""
        now = self._clock()
        if kind not in self._wanted:
            self._new_kind.set()  # ask for it now rather than at the next renewal
        self._wanted[kind] = now
        return self._held_until.get(kind, -math.inf) > now

    async def keep(self) -> None:
        """Take and renew the leases of the kinds wanted, until cancelled (the run's end)."""
        while True:
            # a round is a few quick statements: the run's end cancels the wait, not a statement
            # (which would cost the journal its connection, and the leases their release at close)
            with anyio.CancelScope(shield=True):
                await self.renew()
            await self._new_kind.wait(RENEW_SECONDS)

    async def renew(self) -> None:
        """One round: take or renew each wanted kind's lease; let go of the kinds no longer wanted."""
        for kind, wanted_at in list(self._wanted.items()):
            sent = self._clock()
            if sent - wanted_at > self._let_go_after:
                del self._wanted[kind]  # not renewed: the lease lapses by itself
                self._held_until.pop(kind, None)
            elif await self._journal.try_lease_sweep(kind, LEASE_SECONDS):
                self._held_until[kind] = sent + LEASE_SECONDS
            else:
                self._held_until.pop(kind, None)
