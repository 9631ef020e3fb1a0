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
from .readonly import Loading, ReadOnlyJournal
from .sqlite import SQLiteJournal

__all__ = [
    "AddResult",
    "Change",
    "EventRecord",
    "Journal",
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
async def open_journal(path: str | os.PathLike[str], *, readonly: Literal[True]) -> ReadOnlyJournal: ...


async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, create: bool = True, readonly: bool = False
) -> Journal | ReadOnlyJournal:
    """Open the journal at ``path``: a SQLite file (created with mode 0600 when absent), or a
    campaign in a PostgreSQL database given by a ``postgresql://`` URI (see
    :mod:`asyncjobs.journal.postgres`; ``campaign`` may be left out when it holds one).

    With ``readonly=True`` (SQLite): a snapshot of an existing journal that takes no lock and
    writes nothing, so it can be read while a run holds it (see :class:`ReadOnlyJournal`).
    """
    if is_postgres(path):
        if readonly:  # the engine's wiring decides what a read-only PostgreSQL view is (phase 2)
            raise JournalError("a read-only view of a PostgreSQL journal is not available yet")
        try:
            from .postgres import PostgresJournal
        except ImportError as exc:
            raise JournalError(
                f"a PostgreSQL journal needs the psycopg driver ({exc.name} is missing): "
                "pip install 'asyncjobs[postgres]'"
            ) from None
        return await PostgresJournal.open(str(path), campaign=campaign, create=create)
    if readonly:
        return await ReadOnlyJournal.open(path)
    return await SQLiteJournal.open(path, campaign=campaign, create=create)
