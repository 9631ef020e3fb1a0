"""The journal's lock file, ``<journal>.lock``: one process at a time, and what it is doing.

An exclusive ``flock`` on it is held while the journal is open; a second process gets
:class:`~asyncjobs.errors.JournalLocked`, naming the holder's pid. The file also carries the
holder's record (its pid, and how far a bulk load has got, which ``status`` shows while the load
holds the database). The record is written only into a lock file created here or one that is
empty or holds an earlier record: a file of anything else is locked, never truncated.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from ..errors import JournalError, JournalLocked
from . import files


class JournalLock:
    """The held lock of one journal. Take it with :meth:`acquire`; give it back with :meth:`release`."""

    def __init__(self, fd: int, *, record: bool) -> None:
        self.fd = fd
        #: Whether the lock file holds our record (else it is only locked, never written).
        self.record = record

    @classmethod
    def acquire(cls, path: Path) -> JournalLock:
        """Lock the journal at ``path``, or raise JournalLocked if another process holds it."""
        lock_path = files.sibling(path, files.LOCK_SUFFIX)
        try:
            fd, created = files.open_private(lock_path)
        except OSError as exc:
            raise JournalError(f"{path}: cannot open the lock file {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError):
                found = files.read_record(fd)[1]
                holder = "" if found is None else f" (pid {found.pid})"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JournalLocked(
                    f"journal {path} is in use by another asyncjobs process{holder}"
                ) from None
            raise JournalError(f"{path}: cannot lock the journal: {exc.strerror}") from exc
        rewritable = created
        with contextlib.suppress(OSError):
            rewritable = rewritable or files.read_record(fd)[0]
            if rewritable:
                files.write_record(fd, files.LockRecord(os.getpid()))
        return cls(fd, record=rewritable)

    def note_loading(self, campaign: str, jobs: int | None, stage: str = "inserting") -> None:
        """Record how far a bulk load has got (None: the load is over).

        Readers wait while the load holds the database (a rollback journal, written under an
        exclusive lock) and its rows appear all at once at the commit, so ``status`` reports this.
        """
        if not self.record:
            return
        loading = None if jobs is None else {"campaign": campaign, "jobs": jobs, "stage": stage}
        with contextlib.suppress(OSError):
            files.write_record(self.fd, files.LockRecord(os.getpid(), loading))

    def release(self, *, clear_record: bool = True) -> None:
        """Close the file, which drops the ``flock``; first empty our record, unless told not to."""
        if self.record and clear_record:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
        os.close(self.fd)
