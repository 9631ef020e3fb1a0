"""Journals: where a campaign's specs, states and events are kept."""

from __future__ import annotations

import os

from .base import AddResult, Change, EventRecord, Journal
from .sqlite import SQLiteJournal

__all__ = ["AddResult", "Change", "EventRecord", "Journal", "SQLiteJournal", "open_journal"]


async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, create: bool = True
) -> SQLiteJournal:
    """Open the SQLite journal at ``path`` (created with mode 0600 when absent)."""
    return await SQLiteJournal.open(path, campaign=campaign, create=create)
