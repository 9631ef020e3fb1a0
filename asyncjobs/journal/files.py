"""The journal's files, opened without trusting what someone else may have put at their paths.

A journal may live in a folder other users can write to. Anything found at one of its paths --
the database, SQLite's ``-wal``, ``-shm`` and ``-journal`` files, and asyncjobs' ``.lock`` file --
is used only if it is a regular file (never a symbolic link, which is not followed), has one link,
belongs to the effective user and cannot be written by group or others. That is how ssh treats a
private key, and for the same reason: a planted or loosely shared journal, or a planted WAL or
rollback journal that SQLite would replay into it, lets another user choose the requests that a
resumed run submits. Root is no exception: a file owned by another user is refused, since that
user could have written it. A refusal is a :class:`JournalUnsafe` with one line naming the file.

The files asyncjobs creates itself are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode
0600, whatever the umask; SQLite gives the files it creates next to the database the database's
mode (so 0600 too) and opens them with ``O_NOFOLLOW``.

The database itself is opened by SQLite, by name: it is checked just before and just after, and
must be the same file both times. Never ``open()`` and ``close()`` the database while a SQLite
connection of this process has it open: closing any descriptor of a file drops every POSIX lock
the process holds on it, SQLite's included. Its side files are only ``lstat``-ed, for the same
reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import JournalError, JournalUnsafe

#: The files SQLite may keep next to a database: in WAL mode, and for the rollback journal that a
#: bulk load uses (a leftover one is replayed into the database when it is next opened).
SQLITE_SUFFIXES = ("-wal", "-shm", "-journal")
LOCK_SUFFIX = ".lock"
PRIVATE = 0o600
#: A lock record is a pid line and at most one line of JSON; anything longer is not ours.
_RECORD_MAX = 4096

Verb = Literal["use", "read"]


def sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def journal_paths(path: Path) -> list[Path]:
    """The database, SQLite's files next to it, and the lock file."""
    return [path, *(sibling(path, s) for s in SQLITE_SUFFIXES), sibling(path, LOCK_SUFFIX)]


def unsafe_reason(st: os.stat_result) -> str | None:
    """Why a file with this (``lstat``) status must not be used, or None if it may be."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link; asyncjobs does not follow links to journal files (give the real path)"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    euid = os.geteuid()
    if st.st_uid != euid:
        return (
            f"it is owned by uid {st.st_uid}, not by you (uid {euid});"
            " its owner could have changed what it holds"
        )
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        return (
            f"group or others can write it (mode {mode:04o}); another user could have changed what it holds"
            " (check it, then chmod go-w)"
        )
    if st.st_nlink != 1:  # e.g. a hard link to a file of ours elsewhere, which a write would clobber
        return f"it has {st.st_nlink} hard links; writing it would change another file too"
    return None


def refusal(path: Path, reason: str, verb: Verb = "use") -> JournalUnsafe:
    return JournalUnsafe(f"{path}: refusing to {verb} this journal file: {reason}")


def check(path: Path, verb: Verb = "use") -> os.stat_result | None:
    """The status of the file at ``path`` (not following a link), None if there is none; raises
    :class:`JournalUnsafe` if it must not be used."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JournalError(f"{path}: cannot examine the journal file: {exc.strerror}") from exc
    reason = unsafe_reason(st)
    if reason is not None:
        raise refusal(path, reason, verb)
    return st


def check_all(path: Path, verb: Verb = "use") -> os.stat_result | None:
    """Check every file of the journal at ``path`` that exists; the database's status, if any."""
    found = [check(p, verb) for p in journal_paths(path)]
    return found[0]


def exists(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling link included (it is refused, not created through)."""
    return os.path.lexists(path)


def open_nofollow(path: Path, flags: int, verb: Verb = "use") -> int:
    """Open an existing file without following a link, and check what was opened."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise refusal(path, unsafe_reason(os.lstat(path)) or "it is a symbolic link", verb) from None
        raise
    try:
        reason = unsafe_reason(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    if reason is not None:
        os.close(fd)
        raise refusal(path, reason, verb)
    return fd


def create_private(path: Path) -> int | None:
    """Create ``path`` as a new 0600 file and return its descriptor; None if something is there.

    ``O_EXCL`` fails on any existing name, a dangling link included, so nothing is created
    through a link; the mode is set exactly, since the umask only takes bits away.
    """
    try:
        fd = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, PRIVATE
        )
    except FileExistsError:
        return None
    try:
        os.fchmod(fd, PRIVATE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, flags: int = os.O_RDWR) -> tuple[int, bool]:
    """Open ``path``, creating it (0600) if absent: ``(descriptor, whether it was created now)``."""
    for _ in range(3):  # a file removed between the two opens: try creating it again
        fd = create_private(path)
        if fd is not None:
            return fd, True
        with contextlib.suppress(FileNotFoundError):
            return open_nofollow(path, flags), False
    raise JournalError(f"{path}: the file keeps appearing and disappearing")


def prepare_database(path: Path, *, create: bool) -> tuple[int, int]:
    """Make sure ``path`` is a database file SQLite may open: created 0600 if absent (and
    ``create``), else checked. Returns its ``(st_dev, st_ino)``, to compare once SQLite has it.

    An existing empty file of ours becomes a new journal, so it is made 0600 as if created here.
    Call it only while no SQLite connection of this process has the file open (see the module).
    """
    fd = create_private(path) if create else None
    if fd is None:
        try:
            fd = open_nofollow(path, os.O_RDONLY)
        except FileNotFoundError:
            raise JournalError(f"{path}: no such journal") from None
    try:
        st = os.fstat(fd)
        if st.st_size == 0 and stat.S_IMODE(st.st_mode) != PRIVATE:
            os.fchmod(fd, PRIVATE)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def check_same(path: Path, identity: tuple[int, int], verb: Verb = "use") -> None:
    """After SQLite opened ``path`` by name: it is still the file that was checked."""
    st = check(path, verb)
    if st is None or (st.st_dev, st.st_ino) != identity:
        raise refusal(path, "it was replaced while it was being opened", verb)


# ------------------------------------------------------------------ the lock record
@dataclass(frozen=True)
class LockRecord:
    """What ``<journal>.lock`` says: who holds the journal, and how far a bulk load has got."""

    pid: int
    loading: dict[str, Any] | None = None

    def encode(self) -> bytes:
        text = f"{self.pid}\n"
        if self.loading is not None:
            text += json.dumps({"loading": self.loading}, separators=(",", ":")) + "\n"
        return text.encode()


def parse_record(data: bytes) -> LockRecord | None:
    """The record in ``data``, or None if it is not one asyncjobs wrote."""
    try:
        lines = data.decode().splitlines()
        if not 1 <= len(lines) <= 2 or not lines[0].isdigit():
            return None
        extra = json.loads(lines[1]) if len(lines) == 2 else {"loading": None}
    except (UnicodeDecodeError, ValueError):
        return None
    loading = extra.get("loading") if isinstance(extra, dict) else False
    if loading is not None and not isinstance(loading, dict):
        return None
    return LockRecord(int(lines[0]), loading)


def read_record(fd: int) -> tuple[bool, LockRecord | None]:
    """``(rewritable, record)``: whether the lock file may be overwritten -- it is empty or holds a
    record asyncjobs wrote, so nothing of anyone else's is lost -- and the record, if any."""
    data = os.pread(fd, _RECORD_MAX + 1, 0)
    if not data:
        return True, None
    record = parse_record(data) if len(data) <= _RECORD_MAX else None
    return record is not None, record


def write_record(fd: int, record: LockRecord) -> None:
    """Replace the record; a reader sees the old one or the new one (the first line is unchanged)."""
    data = record.encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def holder(path: Path, verb: Verb = "read") -> LockRecord | None:
    """The record of the journal at ``path`` (for ``status``), or None if there is none to read."""
    try:
        fd = open_nofollow(sibling(path, LOCK_SUFFIX), os.O_RDONLY, verb)
    except FileNotFoundError:
        return None
    try:
        return read_record(fd)[1]
    finally:
        os.close(fd)
