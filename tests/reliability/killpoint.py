"""Run ``asyncjobs`` and SIGKILL it at an exact point of its journal's life.

    python -m tests.reliability.killpoint WHEN:WHAT[:N] -- ASYNCJOBS-ARGS...

``WHAT`` is ``ingest`` or a lifecycle event name (``claim``, ``created``, ``retry``,
``defer``, ``observe_running``, ``observe_failed``, ``resubmit``...). ``WHEN`` is
``before`` (the process dies as the N-th such change is handed to the journal: it is
not committed) or ``after`` (it dies right after the N-th one was committed). The
process kills itself with SIGKILL: no handler, ``finally`` or shielded write runs,
exactly as with ``kill -9`` from outside, but at a moment chosen by the test rather
than by chance. ``N`` defaults to 1.

``before:created`` is the nastiest moment: the service has returned the ARN and the
journal has not recorded it yet.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from asyncjobs.journal.base import AddResult, Change
from asyncjobs.journal.sqlite import SQLiteJournal
from asyncjobs.model import Job, JobSpec


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(when: str, what: str, nth: int = 1) -> None:
    """Patch the SQLite journal so that the process dies at ``when``:``what``:``nth``."""
    if when not in ("before", "after"):
        raise SystemExit(f"killpoint: WHEN must be before or after, not {when!r}")
    seen = 0

    def hit(n: int) -> bool:
        nonlocal seen
        seen += n
        return n > 0 and seen >= nth

    if what == "ingest":
        add_specs = SQLiteJournal.add_specs

        async def patched_add(self: SQLiteJournal, specs: Iterable[JobSpec]) -> AddResult:
            if when == "before" and hit(1):
                specs = list(specs)  # read and validate the whole campaign first
                _die()
            result = await add_specs(self, specs)
            if when == "after" and hit(1):
                _die()
            return result

        SQLiteJournal.add_specs = patched_add  # type: ignore[method-assign]
        return

    transition_many = SQLiteJournal.transition_many

    async def patched(self: SQLiteJournal, changes: Sequence[Change]) -> list[Job]:
        n = sum(1 for change in changes if str(change.event) == what)
        if when == "before" and hit(n):
            _die()
        result = await transition_many(self, changes)
        if when == "after" and hit(n):
            _die()
        return result

    SQLiteJournal.transition_many = patched  # type: ignore[method-assign]


def main(argv: list[str]) -> Any:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit(__doc__)
    when, what, *rest = argv[0].split(":")
    arm(when, what, int(rest[0]) if rest else 1)
    from asyncjobs.cli import main as cli_main

    return cli_main(argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
