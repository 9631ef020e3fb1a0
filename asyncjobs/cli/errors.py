"""How the command fails: exit codes, the exceptions that carry them, and the one-line error report.

Exit codes (``run``; the others use 0, 2, 3 and 130 the same way):

- 0: every job succeeded (``partial`` counts as success; ``status`` shows which);
- 1: the campaign finished with failed, stopped, expired or rejected jobs;
- 2: a usage or input error; nothing was submitted;
- 3: the run stopped on an error (e.g. the journal became unwritable); resumable;
- 130: interrupted by SIGINT or SIGTERM; resumable.

Every error ends as one line, ``asyncjobs: error: <message>`` (a traceback too with ``--debug``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import click

from .. import display
from ..errors import AsyncJobsError, InputError, ServiceError
from ..scheduler import Summary
from .options import Globals
from .output import PROG, note

EXIT_OK = 0
EXIT_UNSUCCESSFUL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130

#: Why a run that a signal stopped early sent nothing (the start of what it says next).
NOTHING_SENT = "interrupted before anything was submitted"


class Failure(Exception):
    """Stop the command with ``asyncjobs: error: <message>`` and ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Halted(Failure):
    """The run stopped on an error after it started (exit 3): the cause, and the summary so far."""

    def __init__(self, error: AsyncJobsError, summary: Summary) -> None:
        super().__init__(error.describe() if isinstance(error, ServiceError) else error.message)
        self.error = error
        self.summary = summary

    def document(self) -> dict[str, Any]:
        """The run's summary document, with ``error``: ``{"code", "message"}``."""
        code = self.error.code if isinstance(self.error, ServiceError) else None
        return {
            **self.summary.to_dict(),
            "error": {"code": code or type(self.error).__name__, "message": self.error.message},
        }


class Interrupted(Exception):
    """A signal arrived before anything was submitted; the message says what to do next."""


def run_async(g: Globals, main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` under anyio; turn errors into one line and an exit code."""

    async def entry() -> int:
        return await main()

    try:
        return anyio.run(entry)
    except BaseException as exc:
        return report_error(g, exc)


def report_error(g: Globals, exc: BaseException) -> int:
    """Say what went wrong in one line on stderr, and return the exit code it calls for."""
    leaf = innermost(exc)
    if isinstance(leaf, SystemExit):
        raise leaf
    if isinstance(leaf, Interrupted):
        note(str(leaf))
        return EXIT_INTERRUPTED
    if isinstance(leaf, KeyboardInterrupt):
        note("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(leaf, Failure):
        message, code = str(leaf), leaf.code
    elif isinstance(leaf, InputError):
        message, code = leaf.message, EXIT_USAGE
    elif isinstance(leaf, AsyncJobsError):
        message, code = leaf.message, EXIT_ERROR
    elif isinstance(leaf, click.ClickException):
        raise leaf
    else:
        message, code = f"{type(leaf).__name__}: {leaf}", EXIT_ERROR
    if g.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"{PROG}: error: {display.safe_text(message)}", err=True)
    if not g.debug and code == EXIT_ERROR and not isinstance(leaf, AsyncJobsError | Failure):
        click.echo(f"{PROG}: (run with --debug for the traceback)", err=True)
    return code


def innermost(exc: BaseException) -> BaseException:
    """The error that matters inside (nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        if not inner:
            return exc
        preferred = [e for e in inner if isinstance(e, AsyncJobsError | Failure)]
        exc = (preferred or inner)[0]
    return exc
