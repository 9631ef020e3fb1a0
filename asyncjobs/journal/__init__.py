"""Journals: where a campaign's specs, states and events are kept.

A path means a SQLite file (one process); a ``postgresql://`` or ``postgres://`` URI means a
campaign in a PostgreSQL database that several workers share (the optional
``asyncjobs[postgres]`` extra).
"""

from __future__ import annotations

import os
from typing import Literal, overload

from ..errors import JournalError
from .base import AddResult, Change, EventRecord, Journal
from .location import is_postgres
from .readonly import JournalView, Loading, ReadOnlyJournal
from .sqlite import SQLiteJournal

__all__ = [
    "AddResult",
    "Change",
    "EventRecord",
    "Journal",
    "JournalView",
    "Loading",
    "ReadOnlyJournal",
    "SQLiteJournal",
    "open_journal",
]


@overload
async def open_journal(
    path: os.PathLike[str],
    *,
    campaign: str | None = None,
    create: bool = True,
    readonly: Literal[False] = False,
) -> SQLiteJournal: ...


@overload
async def open_journal(
    path: str,
    *,
    campaign: str | None = None,
    create: bool = True,
    readonly: Literal[False] = False,
) -> Journal: ...


@overload
async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, readonly: Literal[True]
) -> JournalView: ...


async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, create: bool = True, readonly: bool = False
) -> Journal | JournalView:
    """Open the journal at ``path``: a SQLite file (created with mode 0600 when absent), or a
    campaign in a PostgreSQL database given by a ``postgresql://`` URI (see
    :mod:`asyncjobs.journal.postgres`; ``campaign`` may be left out when it holds one).

    With ``readonly=True``: a snapshot of an existing journal (:class:`JournalView`) that takes no
    lock or lease and writes nothing, so it can be read while a run holds it or workers work on it
    (:class:`ReadOnlyJournal` for a SQLite file, whose ``campaign`` is the file's own;
    :class:`~asyncjobs.journal.pg_readonly.PostgresSnapshot` for a PostgreSQL campaign).
    """
    if is_postgres(path):
        try:
            from .pg_readonly import PostgresSnapshot
            from .postgres import PostgresJournal
        except ImportError as exc:
            raise JournalError(
                f"a PostgreSQL journal needs the psycopg driver ({exc.name} is missing): "
                "pip install 'asyncjobs[postgres]'"
            ) from None
        if readonly:
            return await PostgresSnapshot.open(str(path), campaign=campaign)
        return await PostgresJournal.open(str(path), campaign=campaign, create=create)
    if readonly:
        return await ReadOnlyJournal.open(path)
    return await SQLiteJournal.open(path, campaign=campaign, create=create)
