"""One worker among several on a shared journal (PostgreSQL): leases, take-over and a mirror.

Each worker claims its own jobs (the journal's :meth:`~asyncjobs.journal.base.Journal.claim`
keeps every quota key's cap across all of them) and holds a lease on each claimed job until
its create is settled. This part of a run keeps that going:

- **Heartbeat**: the leases of this worker's ``submitting`` jobs are renewed every third of
  their length, so they expire only when the worker is gone.
- **Take-over**: a job whose lease expired (its worker died between the claim and the ARN
  being journaled) is leased to this worker and reconciled by repeating the same create with
  the same token and name, as a single-process resume does: nothing is created twice.
- **Mirror**: every worker's active jobs hold slots here and the created ones are tracked, so
  that the one worker holding a kind's sweep lease sweeps them all (:mod:`.tracker`) and every
  worker sees the campaign end; the counts are recounted and the paces and caps another worker
  learned are taken up, and a slow start of the shared pace that another worker doubled is kept
  up with.
- **Wake-ups**: the mirror is read again as soon as another worker commits a change that frees
  a slot or saves a pace or cap (:meth:`~asyncjobs.journal.base.Journal.changes`: PostgreSQL's
  LISTEN/NOTIFY), and a pace or cap this worker changes is saved at once, so that the workers
  slow down together after a throttle instead of each drawing its own, and claim under a
  quota's cap once one of them has found it instead of each being refused to find it. The
  periodic mirror stays, for what no notification tells (claims, and anything missed while the
  listener reconnects).

With a journal that one process holds (SQLite) there is nothing to share: the part returns at once.
"""

from __future__ import annotations

import anyio

from ..errors import JournalError
from .parts import RunPart
from .state import SLOW_START_FRESH

#: Seconds between mirrors of the shared journal (counts, active jobs, paces, caps) and take-over
#: checks, when no other worker's change wakes this worker sooner.
MIRROR_INTERVAL = 1.0
#: Seconds before listening again for other workers' changes after the listener failed.
LISTEN_RETRY = 5.0


class Workers(RunPart):
    """Heartbeat, take-over and the mirror of a shared journal, for as long as the run goes on."""

    async def run(self) -> None:
        if not self._state.shared:
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen)
            await self._keep_up()
            tg.cancel_scope.cancel()

    async def _keep_up(self) -> None:
        state, control = self._state, self._control
        journal, lease = state.journal, state.settings.lease_seconds
        beat_at = check_at = 0.0
        while not control.stopping:
            now = state.clock()
            if now >= beat_at:
                await journal.heartbeat(lease_seconds=lease)
                beat_at = now + lease / 3
            if now >= check_at:
                for job in await journal.take_over_expired(lease_seconds=lease):
                    self._reporter.emit("job.taken_over", job, detail="its worker's lease expired")
                    state.taken_over(job)
                check_at = now + MIRROR_INTERVAL
            await self._save_learned()
            await self.mirror()
            with control.cut_short_by_stop():
                await state.wake_workers.wait(check_at - state.clock())

    async def _listen(self) -> None:
        """Wake the mirror whenever another worker frees a slot or saves a pace or cap."""
        state, control = self._state, self._control
        told = False  # of the failure: once until listening works again
        while not control.stopping:
            try:
                async for _ in state.journal.changes():
                    told = False
                    state.wake_workers.set()
                return  # a journal no other worker shares
            except JournalError as exc:  # the periodic mirror goes on meanwhile
                if not told:
                    self._reporter.emit("journal.listen_failed", level="warning", detail=exc.message)
                    told = True
            await control.pause(LISTEN_RETRY)

    async def _save_learned(self) -> None:
        """A pace or cap this worker learned, or a pace its slow start doubled to, saved for the
        others now (not at the next periodic save)."""
        state = self._state
        if paces := state.changed_paces():
            await state.journal.save_paces(paces)
            state.paces_saved(paces)
        if state.changed_slow_starts():
            # another worker's doubling may have taken the shared pace further meanwhile: the
            # last save is what every worker reads, and a lower one would undo it
            state.keep_up_slow_starts(await state.journal.slow_starts(within=SLOW_START_FRESH))
            if rising := state.changed_slow_starts():
                await state.journal.save_slow_starts(rising)
                state.slow_starts_saved(rising)
        if caps := state.changed_caps():
            await state.journal.save_caps(caps)
            state.caps_saved(caps)

    async def mirror(self) -> None:
        """Bring this worker's view in line with every worker's changes."""
        state = self._state
        await state.journal.refresh()
        state.mirror(await state.journal.active())
        # a pace learned ends a slow start: taken up first, it is not doubled past
        state.adopt_paces(await state.journal.paces())
        if state.slow_starting():  # the first seconds of a run, mostly: no read after
            state.keep_up_slow_starts(await state.journal.slow_starts(within=SLOW_START_FRESH))
        await state.take_up_caps()
