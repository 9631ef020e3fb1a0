"""Run ``asyncjobs`` and SIGKILL it (or signal it) at an exact point of its journal's life.

    python -m tests.reliability.killpoint [--signal NAME] WHEN:WHAT[:N] -- ASYNCJOBS-ARGS...

``WHAT`` is ``ingest``, ``startup`` or a lifecycle event name (``claim``, ``created``,
``retry``, ``defer``, ``observe_running``, ``observe_failed``, ``resubmit``...). ``WHEN``
is ``before`` (the process dies as the N-th such change is handed to the journal: it is
not committed) or ``after`` (it dies right after the N-th one was committed). The
process kills itself with SIGKILL: no handler, ``finally`` or shielded write runs,
exactly as with ``kill -9`` from outside, but at a moment chosen by the test rather
than by chance. ``N`` defaults to 1.

``before:created`` is the nastiest moment: the service has returned the ARN and the
journal has not recorded it yet.

Two more moments:

- ``during:ingest:N``: as the ingest reads the N-th spec of the campaign, in the journal's
  worker thread, halfway through the all-or-nothing load;
- ``before:startup`` / ``after:startup``: as ``Campaign.run`` starts, once its AWS clients
  are open, before or after it reads the journal's unfinished jobs.
- ``before:upload:N`` / ``after:upload:N``: the N-th records shard is in S3, and the journal
  has not yet marked it uploaded (before) or has (after);
- ``before:collect:N`` / ``after:collect:N``: the N-th shard job that ended well has its outputs
  found, not yet journaled (before) or journaled (after).

With ``--signal NAME`` (``TERM``, ``INT``) the process sends itself that signal at the
moment instead, and carries on, as if ``kill -TERM`` had come from outside right then.
At ``during:ingest`` the ingest then reads on only once the command has said it saw the
signal, as a long campaign would still be being read: the moment does not depend on
which thread happens to run first.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from asyncjobs.journal.base import AddResult, Change
from asyncjobs.journal.sqlite import SQLiteJournal
from asyncjobs.model import Job, JobSpec


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _sender(name: str) -> Callable[[], None]:
    """Send the process ``name``, and return once the command has noted it (at most 30 s)."""
    import asyncjobs.cli.signals as signals  # where the command notes a signal it has seen

    signum = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    noted = threading.Event()
    note = signals.note

    def noting(message: str) -> None:
        note(message)
        if message.startswith(signum.name):
            noted.set()

    signals.note = noting

    def send() -> None:
        os.kill(os.getpid(), signum)
        if threading.current_thread() is not threading.main_thread():
            noted.wait(30)  # in the journal's thread: the event loop handles the signal meanwhile

    return send


def arm(when: str, what: str, nth: int = 1, fire: Callable[[], None] = _die) -> None:
    """Patch the SQLite journal so that ``fire`` runs (default: the process dies) at
    ``when``:``what``:``nth``."""
    if when not in ("before", "after") and (when, what) != ("during", "ingest"):
        raise SystemExit(f"killpoint: WHEN must be before or after (or during:ingest), not {when!r}")
    seen = 0

    def hit(n: int) -> bool:
        nonlocal seen
        if seen >= nth:
            return False  # fire once: a signal sent again would be a second signal
        seen += n
        return n > 0 and seen >= nth

    if what == "ingest":
        add_specs = SQLiteJournal.add_specs

        def tripwire(specs: Iterable[JobSpec]) -> Iterator[JobSpec]:
            for spec in specs:
                if hit(1):
                    fire()
                yield spec

        async def patched_add(self: SQLiteJournal, specs: Iterable[JobSpec]) -> AddResult:
            if when == "before" and hit(1):
                specs = list(specs)  # read and validate the whole campaign first
                fire()
            if when == "during":
                specs = tripwire(specs)
            result = await add_specs(self, specs)
            if when == "after" and hit(1):
                fire()
            return result

        SQLiteJournal.add_specs = patched_add  # type: ignore[method-assign]
        return

    if what in ("upload", "collect"):
        method = "mark_uploaded" if what == "upload" else "record_output"
        original = getattr(SQLiteJournal, method)

        async def patched_shard_write(self: SQLiteJournal, *args: Any) -> None:
            if when == "before" and hit(1):
                fire()
            await original(self, *args)
            if when == "after" and hit(1):
                fire()

        setattr(SQLiteJournal, method, patched_shard_write)
        return

    if what == "startup":
        active = SQLiteJournal.active

        async def patched_active(self: SQLiteJournal) -> list[Job]:
            if when == "before" and hit(1):
                fire()
            result = await active(self)
            if when == "after" and hit(1):
                fire()
            return result

        SQLiteJournal.active = patched_active  # type: ignore[method-assign]
        return

    transition_many = SQLiteJournal.transition_many

    async def patched(self: SQLiteJournal, changes: Sequence[Change]) -> list[Job]:
        n = sum(1 for change in changes if str(change.event) == what)
        if when == "before" and hit(n):
            fire()
        result = await transition_many(self, changes)
        if when == "after" and hit(n):
            fire()
        return result

    SQLiteJournal.transition_many = patched  # type: ignore[method-assign]


def main(argv: list[str]) -> Any:
    fire = _die
    if argv[:1] == ["--signal"] and len(argv) > 1:
        fire = _sender(argv[1])
        argv = argv[2:]
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit(__doc__)
    when, what, *rest = argv[0].split(":")
    arm(when, what, int(rest[0]) if rest else 1, fire)
    from asyncjobs.cli import main as cli_main

    return cli_main(argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
