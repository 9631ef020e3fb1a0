"""``asyncjobs status --watch``: the counts and the quota-key table, redrawn until the campaign is complete.

Each refresh reads a fresh read-only snapshot of the journal (a SQLite file or a PostgreSQL
campaign: :class:`~asyncjobs.journal.JournalView`): it takes no lock or lease and writes nothing,
so it works beside a ``run`` that holds the journal, or workers that share it, and never keeps
one from starting. On a terminal with ``--output table`` the table is redrawn in place (rich
Live); with ``--output json`` each refresh is one JSON document on one line.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import click
import jmespath
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import display
from ..errors import JournalError
from ..journal import open_journal
from ..model import JobState, StateCounts
from .errors import EXIT_OK, EXIT_USAGE, Failure, Interrupted
from .options import Globals, JournalLocation, shown
from .output import stdout_console
from .signals import Interrupts, watching

#: A campaign is complete when no job is in one of these states.
UNFINISHED = (JobState.PENDING, JobState.SUBMITTING, JobState.SUBMITTED, JobState.RUNNING)


#: Reads one snapshot's document (:func:`watch_document` of one journal and campaign).
Snapshot = Callable[[], Awaitable[dict[str, Any]]]


async def watch_status(
    g: Globals, path: JournalLocation, interval: float, campaign: str | None = None
) -> int:
    """Show the campaign every ``interval`` seconds until it is complete (0) or a signal (130);
    ``campaign`` names it in a PostgreSQL journal that holds several."""
    interrupts = Interrupts()
    snapshot = functools.partial(watch_document, path, campaign)

    async with watching(interrupts):
        with anyio.CancelScope() as scope:
            interrupts.on_first(scope.cancel, "stopping the watch")
            if g.output_format == "json":
                await _json_lines(g, snapshot, interval)
            elif sys.stdout.isatty():
                await _live(g, snapshot, interval)
            else:
                await _frames(g, snapshot, interval)
    if interrupts.seen:
        raise Interrupted("interrupted")
    return EXIT_OK


async def _json_lines(g: Globals, snapshot: Snapshot, interval: float) -> None:
    while True:
        doc = await snapshot()
        value = doc if g.query is None else jmespath.search(g.query, doc)
        click.echo(json.dumps(value, ensure_ascii=False))
        if doc["complete"]:
            return
        await anyio.sleep(interval)


async def _frames(g: Globals, snapshot: Snapshot, interval: float) -> None:
    """Table output into a file or pipe: one table per refresh, one after the other."""
    console = stdout_console()
    while True:
        doc = await snapshot()
        console.print(_frame(g, doc))
        if doc["complete"]:
            return
        await anyio.sleep(interval)


async def _live(g: Globals, snapshot: Snapshot, interval: float) -> None:
    doc = await snapshot()
    with Live(_frame(g, doc), console=stdout_console(), auto_refresh=False, transient=False) as live:
        while not doc["complete"]:
            await anyio.sleep(interval)
            doc = await snapshot()
            live.update(_frame(g, doc), refresh=True)


def _frame(g: Globals, doc: Mapping[str, Any]) -> RenderableType:
    """The table of ``doc``, or of what ``--query`` picks from it (as ``emit`` shows it)."""
    if g.query is None:
        return watch_renderable(doc)
    return display.generic_renderable(jmespath.search(g.query, doc))


async def watch_document(path: JournalLocation, campaign: str | None = None) -> dict[str, Any]:
    """``{"campaign", "journal", "time", "total", "counts", "keys", "complete"}`` of one snapshot.

    ``keys`` is one ``{"key", "pending", "active", "final"}`` per quota key (``active``:
    submitting, submitted or running). ``complete``: there are jobs, no load is under way,
    and none is pending, submitting, submitted or running.
    """
    try:
        journal = await open_journal(path, campaign=campaign, readonly=True)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    try:
        counts = journal.counts()
        by_key = journal.counts_by_key()
        loading = journal.loading is not None
        campaign = journal.campaign
    finally:
        await journal.aclose()
    return {
        "campaign": campaign,
        "journal": shown(path),
        "time": time.time(),
        "total": counts.total,
        "counts": counts.as_dict(),
        "keys": [_key_row(key, by_key[key]) for key in sorted(by_key)],
        "loading": loading,
        "complete": counts.total > 0 and not loading and not any(counts[s] for s in UNFINISHED),
    }


def _key_row(key: str, counts: StateCounts) -> dict[str, Any]:
    active = counts[JobState.SUBMITTING] + counts[JobState.SUBMITTED] + counts[JobState.RUNNING]
    final = sum(n for state, n in counts.counts.items() if state.is_final)
    return {"key": key, "pending": counts[JobState.PENDING], "active": active, "final": final}


def watch_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """One frame: the campaign, the counts per state and the quota-key table."""
    when = time.strftime("%H:%M:%S", time.localtime(doc["time"]))
    state = "complete" if doc["complete"] else "loading" if doc["loading"] else "in progress"
    head = Text.assemble(
        ("campaign ", "bold"),
        display.plain(doc.get("campaign")),
        f"   {doc['total']} jobs, {state}   ",
        (when, "dim"),
    )
    keys = Table(box=None, pad_edge=False, header_style="bold")
    for title in ("quota key", "pending", "active", "final"):
        keys.add_column(title, justify="left" if title == "quota key" else "right")
    for row in doc["keys"]:
        keys.add_row(display.plain(row["key"]), str(row["pending"]), str(row["active"]), str(row["final"]))
    return Group(head, display.counts_table(doc["counts"]), Text(""), keys)
