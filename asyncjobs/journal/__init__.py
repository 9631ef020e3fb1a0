"""Journals: where a campaign's specs, states and events are kept."""

from __future__ import annotations

import os
from typing import Literal, overload

from .base import AddResult, Change, EventRecord, Journal
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
    path: str | os.PathLike[str],
    *,
    campaign: str | None = None,
    create: bool = True,
    readonly: Literal[False] = False,
) -> SQLiteJournal: ...


@overload
async def open_journal(path: str | os.PathLike[str], *, readonly: Literal[True]) -> ReadOnlyJournal: ...


async def open_journal(
    path: str | os.PathLike[str], *, campaign: str | None = None, create: bool = True, readonly: bool = False
) -> SQLiteJournal | ReadOnlyJournal:
    """Open the SQLite journal at ``path`` (created with mode 0600 when absent).

    With ``readonly=True``: a snapshot of an existing journal that takes no lock and writes
    nothing, so it can be read while a run holds it (see :class:`ReadOnlyJournal`).
    """
    if readonly:
        return await ReadOnlyJournal.open(path)
    return await SQLiteJournal.open(path, campaign=campaign, create=create)
