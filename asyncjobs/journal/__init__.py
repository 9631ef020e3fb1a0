"""Journals: where a campaign's specs, states and events are kept.

A path means a SQLite file (one process); a ``postgresql://`` or ``postgres://`` URI means a
campaign in a PostgreSQL database that several workers share (the optional
``asyncjobs[postgres]`` extra).
"""

from __future__ import annotations

import os
from typing import overload

from ..errors import JournalError
from .base import AddResult, Change, EventRecord, Journal
from .location import is_postgres
from .sqlite import SQLiteJournal

__all__ = ["AddResult", "Change", "EventRecord", "Journal", "SQLiteJournal", "open_journal"]


@overload
async def open_journal(
    path: os.PathLike[str], *, campaign: str | None = None, create: bool = True
) -> SQLiteJournal: ...


@overload
async def open_journal(path: str, *, campaign: str | None = None, create: bool = True) -> Journal: ...


async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, create: bool = True
) -> Journal:
    """Open the journal at ``path``: a SQLite file (created with mode 0600 when absent), or a
    campaign in a PostgreSQL database given by a ``postgresql://`` URI (see
    :mod:`asyncjobs.journal.postgres`; ``campaign`` may be left out when it holds one)."""
    if is_postgres(path):
        try:
            from .postgres import PostgresJournal
        except ImportError as exc:
            raise JournalError(
                f"a PostgreSQL journal needs the psycopg driver ({exc.name} is missing): "
                "pip install 'asyncjobs[postgres]'"
            ) from None
        return await PostgresJournal.open(str(path), campaign=campaign, create=create)
    return await SQLiteJournal.open(path, campaign=campaign, create=create)
