"""``asyncjobs status --job ID --events``: one job's history from the journal's event log.

Every state change the journal recorded (claims, creates, retries with their errors, what the
service reported, resubmissions) with its time, oldest first. Read like ``status``: beside a
run that holds a SQLite journal, or workers on a PostgreSQL one, from a read-only snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .. import display
from ..errors import JournalError
from ..journal import EventRecord
from .errors import EXIT_USAGE, Failure
from .options import JournalLocation, shown

EVENT_COLUMNS = (
    ("time", "time"),
    ("event", "event"),
    ("from", "from"),
    ("to", "to"),
    ("attempt", "attempt"),
    ("detail", "detail"),
)


async def history_document(
    path: JournalLocation, job_id: str, campaign_name: str | None = None
) -> dict[str, Any]:
    """``{"campaign", "journal", "job", "events"}``; an unknown ``job_id`` is a usage error."""
    from .status import job_row, open_for_status

    try:
        journal = await open_for_status(path, campaign_name)
        try:
            job = await journal.get(job_id)
            events = await journal.events(job_id) if job is not None else []
        finally:
            await journal.aclose()
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    if job is None:
        raise Failure(f"{shown(path)}: no job with id {job_id!r}", EXIT_USAGE)
    return {
        "campaign": journal.campaign,
        "journal": shown(path),
        "job": job_row(job),
        "events": [_event(record) for record in events],
    }


def _event(record: EventRecord) -> dict[str, Any]:
    return {
        "time": dt.datetime.fromtimestamp(record.ts, dt.UTC).isoformat(timespec="milliseconds"),
        "ts": record.ts,
        "event": record.event,
        "from": record.from_state,
        "to": record.to_state,
        "attempt": record.attempt,
        "arn": record.arn,
        "detail": record.detail,
    }


def history_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """The table form: the job's line, then one row per event."""
    job = doc["job"]
    head = Text.assemble(
        ("job ", "bold"),
        display.plain(job["id"]),
        ("   state ", "bold"),
        display.plain(job["state"], display.state_style(str(job["state"]))),
        ("   ARN ", "bold"),
        display.plain(job.get("arn")),
    )
    table = Table(header_style="bold")
    for _, title in EVENT_COLUMNS:
        table.add_column(title, overflow="fold")
    for event in doc["events"]:
        table.add_row(*(display.plain(event.get(key)) for key, _ in EVENT_COLUMNS))
    return Group(head, table)
