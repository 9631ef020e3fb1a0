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
  worker sees the campaign end; the counts are recounted and the paces another worker learned
  are taken up.

With a journal that one process holds (SQLite) there is nothing to share: the part returns at once.
"""

from __future__ import annotations

from .parts import RunPart

#: Seconds between mirrors of the shared journal (counts, active jobs, paces) and take-over checks.
MIRROR_INTERVAL = 1.0


class Workers(RunPart):
    """Heartbeat, take-over and the mirror of a shared journal, for as long as the run goes on."""

    async def run(self) -> None:
        state, control = self._state, self._control
        if not state.shared:
            return
        journal, lease = state.journal, state.settings.lease_seconds
        beat_at = 0.0
        while not control.stopping:
            now = state.clock()
            if now >= beat_at:
                await journal.heartbeat(lease_seconds=lease)
                beat_at = now + lease / 3
            for job in await journal.take_over_expired(lease_seconds=lease):
                self._reporter.emit("job.taken_over", job, detail="its worker's lease expired")
                state.taken_over(job)
            await self.mirror()
            await control.pause(MIRROR_INTERVAL)

    async def mirror(self) -> None:
        """Bring this worker's view in line with every worker's changes."""
        state = self._state
        await state.journal.refresh()
        state.mirror(await state.journal.active())
        state.adopt_paces(await state.journal.paces())
