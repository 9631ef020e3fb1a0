"""``asyncjobs status``: counts per state and one row per job, read from the journal."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import click

from .. import display
from ..errors import JournalError, JournalLocked, JournalSchemaError
from ..journal import files, open_journal
from ..model import JobState, StateCounts
from .errors import EXIT_OK, EXIT_USAGE, Failure, run_async
from .logs import setup
from .options import global_options, journal_option
from .output import emit, note


@click.command("status")
@journal_option
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only jobs in this state; repeatable or comma-separated (" + ", ".join(JobState) + ").",
)
@global_options
@click.pass_context
def status_command(ctx: click.Context, journal: Path, states: tuple[str, ...]) -> int:
    """Counts per state, and one row per job: id, service, state, ARN, attempts, last error."""
    g = setup(ctx)
    wanted = _parse_states(states)

    async def main() -> int:
        doc = await status_document(journal, wanted)
        emit(g, doc, display.status_renderable)
        return EXIT_OK

    return run_async(g, main)


def _parse_states(values: Iterable[str]) -> list[JobState]:
    wanted: list[JobState] = []
    for value in values:
        for name in filter(None, (v.strip().lower() for v in value.split(","))):
            try:
                wanted.append(JobState(name))
            except ValueError:
                raise click.BadParameter(
                    f"{name!r} is not one of {', '.join(JobState)}", param_hint="--state"
                ) from None
    return wanted


@dataclass(frozen=True)
class JobRow:
    id: str
    service: str
    state: str
    arn: str | None
    attempts: int
    last_error: str | None
    job_name: str
    remote_status: str | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


async def status_document(path: Path, states: Sequence[JobState]) -> dict[str, Any]:
    """``{"campaign", "journal", "total", "counts", "jobs"}`` for ``asyncjobs status``.

    While a run bulk-loads a new campaign, ``"loading": {"pid", "jobs", "stage"}`` says how far it has got.
    """
    try:
        # the journal may have been planted or changed by another user: refuse it before reading it
        await anyio.to_thread.run_sync(_check_journal_files, path)
        journal = await open_journal(path, create=False)
    except JournalLocked as exc:
        note(f"{exc.message}; showing a read-only snapshot")
        return await anyio.to_thread.run_sync(_read_only_status, path, states)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    try:
        rows = [
            JobRow(
                j.id,
                str(j.service),
                str(j.state),
                j.arn,
                j.attempt,
                j.last_error,
                j.job_name,
                j.remote_status,
            )
            async for j in journal.jobs(states or None)
        ]
        return _status_doc(journal.campaign, str(path), journal.counts(), rows)
    finally:
        await journal.aclose()


def _status_doc(campaign: str | None, path: str, counts: StateCounts, rows: list[JobRow]) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "journal": path,
        "total": counts.total,
        "counts": counts.as_dict(),
        "jobs": [row.as_dict() for row in rows],
    }


def _check_journal_files(path: Path) -> os.stat_result | None:
    """:func:`asyncjobs.journal.files.check_all` for reading: the database's status, if any."""
    return files.check_all(path, "read")


#: How long a snapshot read waits for a writer's lock (a commit, a journal-mode switch) before it
#: reports what it can: a bulk load holds the lock for as long as it takes.
_SNAPSHOT_WAIT = 2.0


def _read_only_status(path: Path, states: Sequence[JobState]) -> dict[str, Any]:
    """Read a journal that another process holds, without its lock (SQLite WAL readers don't block).

    A stop-gap until the journal offers a read-only open; it reads the schema-1 tables. The files
    are checked as a run checks them; while a run bulk-loads a new campaign (readers wait until it
    commits), what its lock record says about the load is reported instead.
    """
    try:
        found = _check_journal_files(path)
        if found is None:
            raise JournalError(f"{path}: no such journal")
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=_SNAPSHOT_WAIT)
    except sqlite3.Error as exc:
        raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
    try:
        files.check_same(path, (found.st_dev, found.st_ino), "read")  # SQLite opened it by name
        conn.execute("BEGIN")  # one snapshot for the counts and the rows
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != 1:
            raise JournalSchemaError(f"{path}: journal schema version {version} is not supported here")
        (campaign,) = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        counts = StateCounts(
            {JobState(s): n for s, n in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}
        )
        sql = "SELECT id, service, state, arn, attempt, last_error, job_name, remote_status FROM jobs"
        args = [str(s) for s in states]
        if args:
            sql += f" WHERE state IN ({','.join('?' * len(args))})"
        rows = [JobRow(*row) for row in conn.execute(sql + " ORDER BY seq", args)]
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:  # not waiting on a writer
            raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
        return _loading_status(path, _holder(path), None)
    except sqlite3.Error as exc:
        raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    finally:
        conn.close()
    doc = _status_doc(str(campaign), str(path), counts, rows)
    held = _holder(path)
    if held is not None and held.loading is not None:  # read before the load took the database
        return _loading_status(path, held, doc)
    return doc


def _holder(path: Path) -> files.LockRecord | None:
    try:
        return files.holder(path)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    except OSError:  # only the progress of a load is missing
        return None


def _loading_status(path: Path, held: files.LockRecord | None, doc: dict[str, Any] | None) -> dict[str, Any]:
    """What status can say while a run bulk-loads a new campaign: its jobs appear all at once when
    the load commits, and until then readers wait on its lock; the lock record says how far it got."""
    loading = dict(held.loading or {}) if held is not None else {}
    jobs, stage = loading.get("jobs"), loading.get("stage")
    if not isinstance(jobs, int):
        so_far = "how far it has got is not known"
    elif stage == "indexing":
        so_far = f"{jobs} jobs read, now indexing them"
    else:
        so_far = f"{jobs} jobs so far"
    by = f" by pid {held.pid}" if held is not None else ""
    note(f"the campaign is being loaded into the journal{by} ({so_far}); its jobs show once the load is done")
    if doc is None:
        campaign = loading.get("campaign")
        doc = _status_doc(campaign if isinstance(campaign, str) else None, str(path), StateCounts({}), [])
    doc["loading"] = {"pid": held.pid if held is not None else None, "jobs": jobs, "stage": stage}
    return doc
