"""Sweep leases on a shared journal (:mod:`asyncjobs.scheduler.sweeps`): one holder per job kind
while it lives, another soon after it dies, whatever the poll interval.

The journal is a fake at the seam we own: a lease table with the PostgreSQL journal's rule (a lease
is taken when it is free, lapsed or one's own), on the same simulated clock as the workers.
"""

from __future__ import annotations

from typing import cast

import anyio

from asyncjobs.journal.base import Journal
from asyncjobs.scheduler.sweeps import LEASE_SECONDS, RENEW_SECONDS, SweepLeases

KIND = "bedrock"
STEP = 0.25  # simulated seconds between two looks of each worker's tracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseTable:
    """``asyncjobs_sweeps``: kind -> (owner, expires)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rows: dict[str, tuple[str, float]] = {}

    def journal_of(self, worker: str) -> Journal:
        table = self

        class WorkerJournal:
            async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
                owner, expires = table.rows.get(kind, (worker, 0.0))
                if owner != worker and expires > table.clock.now:
                    return False
                table.rows[kind] = (worker, table.clock.now + seconds)
                return True

        return cast(Journal, WorkerJournal())


class Worker:
    """A worker's tracker (asking for the kind whenever a sweep of it is due) and its lease keeper."""

    def __init__(self, name: str, table: LeaseTable, *, let_go_after: float = 90.0) -> None:
        self.name = name
        self.clock = table.clock
        self.leases = SweepLeases(table.journal_of(name), table.clock, let_go_after=let_go_after)
        self.renewed_at = -1e9

    async def look(self, *, due: bool = True) -> bool:
        """One look of the tracker, and the keeper's renewal when it is time for one."""
        holds = self.leases.holds(KIND) if due else False
        if self.clock.now - self.renewed_at >= RENEW_SECONDS:
            await self.leases.renew()
            self.renewed_at = self.clock.now
        return holds


async def holders_over(seconds: float, clock: Clock, workers: list[Worker], **due: bool) -> list[set[str]]:
    """Who believes it holds the kind at each step, for ``seconds`` of simulated time."""
    seen = []
    for _ in range(int(seconds / STEP)):
        clock.now += STEP
        seen.append({w.name for w in workers if await w.look(due=due.get(w.name, True))})
    return seen


async def test_one_worker_holds_a_kind_for_as_long_as_it_lives() -> None:
    clock = Clock()
    table = LeaseTable(clock)
    a, b = Worker("a", table), Worker("b", table)
    await a.look()  # a asks first

    seen = await holders_over(120.0, clock, [a, b])

    assert all(holders == {"a"} for holders in seen[1:]), seen  # never b, never both


async def test_a_dead_holders_kind_is_taken_up_within_a_lease_and_a_renewal() -> None:
    clock = Clock()
    table = LeaseTable(clock)
    a, b = Worker("a", table), Worker("b", table)
    await a.look()
    await holders_over(30.0, clock, [a, b])
    died = clock.now  # a is SIGKILLed: it renews nothing more, and gives nothing up
    lapses = table.rows[KIND][1]

    seen = await holders_over(30.0, clock, [b])

    taken = died + STEP * (next(i for i, holders in enumerate(seen) if "b" in holders) + 1)
    assert taken <= died + LEASE_SECONDS + RENEW_SECONDS + STEP
    assert taken >= lapses  # never two holders: b's lease began once a's had lapsed
    assert all("b" in holders for holders in seen[seen.index({"b"}) :])


async def test_a_kind_its_holder_no_longer_sweeps_is_let_go() -> None:
    clock = Clock()
    table = LeaseTable(clock)
    a, b = Worker("a", table, let_go_after=20.0), Worker("b", table)
    await a.look()
    await holders_over(10.0, clock, [a, b])

    # a lives on but has nothing of the kind due any more (its run ends without waiting, say)
    seen = await holders_over(60.0, clock, [a, b], a=False)

    assert {"b"} in seen
    first = seen.index({"b"})
    assert STEP * first <= 20.0 + LEASE_SECONDS + RENEW_SECONDS + STEP
    assert all(holders == {"b"} for holders in seen[first:])


async def test_the_runs_end_cancels_the_wait_between_renewals_never_a_renewal() -> None:
    sent = anyio.Event()
    answer = anyio.Event()
    renewed: list[str] = []

    class SlowJournal:
        async def try_lease_sweep(self, kind: str, seconds: float) -> bool:
            sent.set()
            await answer.wait()
            renewed.append(kind)
            return True

    leases = SweepLeases(cast(Journal, SlowJournal()), Clock(), let_go_after=90.0)
    leases.holds(KIND)
    async with anyio.create_task_group() as tg:
        tg.start_soon(leases.keep)
        await sent.wait()
        tg.cancel_scope.cancel()  # the run ends while the statement is out
        answer.set()

    assert renewed == [KIND]  # its answer was read: the journal's connection is left whole
