"""How a run ends: when its work is done, on the caller's stop, or on a fatal error (a halt).

A graceful stop is an event: claiming and retry loops end, waits for a turn are cut
short, and creates already sent finish and are journaled. Only the caller's own
cancellation is a hard stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio
from anyio.abc import TaskGroup

from ..errors import Fatal
from ..model import JobState
from .reporting import Reporter
from .state import RunState


class Control:
    """One run's stop: who asked, what waits on it, and the fatal error that caused it, if any."""

    def __init__(self, state: RunState, reporter: Reporter, caller_stop: anyio.Event | None) -> None:
        self._state = state
        self._reporter = reporter
        self._caller_stop = caller_stop
        self._stop = anyio.Event()
        self._waiting: set[anyio.CancelScope] = set()
        self._on_stop: list[Callable[[], None]] = []
        #: True once the run stops; it never becomes False again.
        self.stopping = False
        #: The error that halted the run, raised by the run once everything is journaled.
        self.fatal: Fatal | None = None

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the run begins to stop (to wake what waits for work)."""
        self._on_stop.append(callback)

    def stop_asked(self) -> bool:
        """Whether the run stops; the caller's stop counts at once, before the watcher has
        turned it into a stop, so no create goes out in between."""
        return self.stopping or (self._caller_stop is not None and self._caller_stop.is_set())

    async def pause(self, seconds: float) -> bool:
        """Sleep, unless the run is stopping; True if the sleep was cut short by a stop."""
        with anyio.move_on_after(max(0.0, seconds)):
            await self._stop.wait()
        return self.stopping

    @contextmanager
    def cut_short_by_stop(self) -> Iterator[anyio.CancelScope]:
        """A scope that a stop cancels: for waits and reads that a stop need not wait for."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                yield scope
            finally:
                self._waiting.discard(scope)

    async def interruptible(self, wait: Callable[[], Awaitable[object]]) -> bool:
        """Await ``wait()`` unless the run stops first; True if it completed."""
        with self.cut_short_by_stop() as scope:
            await wait()
        return not scope.cancelled_caught

    def halt(self, error: Fatal) -> None:
        """The service cannot be used as configured: stop gracefully, then raise ``error``."""
        if self.fatal is None:
            self.fatal = error
            self._reporter.emit("campaign.halted", level="error", detail=error.describe())
        self.begin_stop()

    def begin_stop(self) -> None:
        """Stop claiming and retrying; creates already sent finish and are journaled."""
        self.stopping = True
        self._stop.set()
        for scope in list(self._waiting):
            scope.cancel()
        for callback in self._on_stop:
            callback()
        self._state.notify()
        self._state.wake_track.set()

    async def watch(self, wait: bool, tg: TaskGroup) -> None:
        """End the run when everything is final (or submitted, without ``wait``), or on the stop.

        While work is still pending it looks every 0.2 s; once everything is claimed, on
        every change, so a run ends as soon as its last job allows.
        """
        stop, state = self._caller_stop, self._state
        if stop is not None:
            tg.start_soon(self._relay, stop)
        while not self.stopping:
            counts = state.journal.counts()
            if stop is not None and stop.is_set():
                self._reporter.emit("campaign.stopping", reason="stop requested")
                break
            if counts.done and not state.any_due_later() and not state.collecting:
                break
            if not wait and counts[JobState.PENDING] == 0 and counts[JobState.SUBMITTING] == 0:
                break
            state.watch_armed = counts[JobState.PENDING] == 0
            await state.wake_watch.wait(0.2)
        state.watch_armed = False
        self.begin_stop()

    async def _relay(self, stop: anyio.Event) -> None:
        """Wake the watcher as soon as the caller's ``stop`` is set (until the run ends)."""
        with self.cut_short_by_stop():
            if not self.stopping:
                await stop.wait()
                self._state.wake_watch.set()
