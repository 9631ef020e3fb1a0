"""One write transaction on a journal's SQLite connection, and what its errors mean to a user.

A full disk, a read-only file or an I/O error is :class:`~asyncjobs.errors.JournalUnwritable`
(the run stops and can resume once writes work again); any other SQLite error is
:class:`~asyncjobs.errors.JournalError`. Both name the journal.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import JournalError, JournalUnwritable

_UNWRITABLE_CODES = (
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CANTOPEN,
)
#: The same errors told by their message, for an error that carries no SQLite error code.
_UNWRITABLE_WORDS = ("readonly", "read-only", "disk is full", "disk i/o", "unable to open")


def is_unwritable(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the journal cannot be written (rather than that a statement is wrong)."""
    if getattr(exc, "sqlite_errorcode", None) in _UNWRITABLE_CODES:
        return True
    text = str(exc).lower()
    return any(w in text for w in _UNWRITABLE_WORDS)


def write_error(path: Path, exc: sqlite3.Error) -> JournalError:
    """The error to raise for a failed write to the journal at ``path``."""
    if is_unwritable(exc):
        return JournalUnwritable(f"journal {path} cannot be written: {exc}")
    return JournalError(f"journal {path}: {exc}")


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends it by itself on some errors
    (a full disk), and a failing ROLLBACK must not hide the error that caused it."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any error; SQLite
    errors become JournalUnwritable (read-only file, full disk) or JournalError."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    except sqlite3.Error as exc:
        raise write_error(path, exc) from exc
