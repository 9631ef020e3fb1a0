"""Signals: the command, never the library, decides what SIGINT and SIGTERM do.

The first signal stops the command gracefully (what "gracefully" means depends on the phase
it is in); a second one exits at once with 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import anyio
import anyio.abc

from .errors import EXIT_INTERRUPTED, NOTHING_SENT, Interrupted, innermost
from .output import note


class Interrupts:
    """SIGINT/SIGTERM handling for one command (the library never installs handlers).

    The first signal is recorded (:attr:`received`) and calls the current phase's
    ``on_first`` action (set the stop event, or cancel work that has sent nothing yet);
    a second one exits at once with 130.

    Recording it matters as much as acting on it: an action can miss its target (a
    cancellation cannot reach the journal's worker thread), so every phase boundary
    asks :meth:`check`, and a phase that begins after the signal gets its action at once.
    """

    def __init__(self, before_exit: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self._on_first: Callable[[], None] = lambda: None
        self._message = "interrupted"
        self._before_exit = before_exit

    @property
    def seen(self) -> bool:
        """Whether the first signal has come (read from the journal's thread too: a plain attribute)."""
        return self.received is not None

    def on_first(self, action: Callable[[], None], message: str) -> None:
        """What the first signal does from now on; done at once if it has already come."""
        self._on_first = action
        self._message = message
        if self.seen:
            action()

    def check(self) -> None:
        """A phase boundary: raise :class:`~asyncjobs.cli.errors.Interrupted` if the first signal has come."""
        if self.seen:
            raise Interrupted(NOTHING_SENT)

    async def watch(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        handled = {signal.SIGINT, signal.SIGTERM}
        held = False
        try:
            with anyio.open_signal_receiver(*handled) as signals:
                try:
                    task_status.started()
                    async for signum in signals:
                        if self.received is not None:
                            self.exit_now(signum)
                        self.received = signum
                        note(f"{signal.Signals(signum).name}: {self._message} (signal again to exit at once)")
                        self._on_first()
                finally:
                    if self.received is not None:
                        # a second signal between the receiver's end and the handlers below would
                        # meet Python's defaults (KeyboardInterrupt): keep it pending meanwhile
                        signal.pthread_sigmask(signal.SIG_BLOCK, handled)
                        held = True
        finally:
            if self.received is not None:  # the promise holds until the process ends
                for signum in handled:
                    signal.signal(signum, self._second_signal)
            if held:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)

    def _second_signal(self, signum: int, _: object) -> None:
        self.exit_now(signum)

    @staticmethod
    def settle() -> None:
        """The process is about to exit anyway: a late second signal is ignored, not met by
        the defaults Python restores while it shuts down (which would kill it with -SIGINT)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if getattr(handler, "__func__", None) is Interrupts._second_signal:
                signal.signal(signum, signal.SIG_IGN)

    def exit_now(self, signum: int) -> NoReturn:
        note(f"{signal.Signals(signum).name} again: exiting now")
        if self._before_exit is not None:
            self._before_exit()
        _restore_terminal()
        os._exit(EXIT_INTERRUPTED)


def _restore_terminal() -> None:
    """Before a hard exit: flush, and show the cursor again (the live display hides it)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()  # may be the live display's proxy: its buffered lines go out first
        stderr = sys.__stderr__
        if stderr is not None:
            if stderr.isatty():
                stderr.write("\x1b[?25h\n")
            stderr.flush()


@contextlib.asynccontextmanager
async def watching(interrupts: Interrupts) -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group with the signal watcher running; cancelled on exit.

    An error raised inside comes out as itself, not wrapped in an exception group.
    """
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(interrupts.watch)
            try:
                yield tg
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = innermost(group)
        if leaf is group:
            raise
        raise leaf from None
