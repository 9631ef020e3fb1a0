"""``asyncjobs status``: counts per state and one row per job, read from the journal.

``--watch`` redraws the counts until the campaign is complete (:mod:`.watch`); ``--job ID
--events`` shows one job's history (:mod:`.history`).

A SQLite journal that a run holds is read as a read-only snapshot (the run goes on undisturbed);
while that run bulk-loads a new campaign, status says how far the load has got instead of the rows.
A PostgreSQL journal is always read as a read-only snapshot (:mod:`asyncjobs.journal.pg_readonly`):
status never writes to it, so it can run from any host while workers work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import anyio
import click

from .. import display
from ..errors import JournalError, JournalLocked
from ..journal import Journal, JournalView, Loading, ReadOnlyJournal, files, open_journal
from ..model import Job, JobState
from .errors import EXIT_OK, EXIT_USAGE, Failure, run_async
from .history import history_document, history_renderable
from .logs import setup
from .options import JournalLocation, campaign_name_option, global_options, journal_option, shown
from .output import emit, note
from .watch import watch_status

#: Seconds between redraws of ``status --watch`` without a value.
WATCH_INTERVAL = 2.0


@click.command("status")
@journal_option
@campaign_name_option
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only jobs in this state; repeatable or comma-separated (" + ", ".join(JobState) + ").",
)
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    is_flag=False,
    flag_value=WATCH_INTERVAL,
    default=None,
    metavar="[SECONDS]",
    help=f"Redraw the counts and quota keys every SECONDS (default {WATCH_INTERVAL:g}) until the campaign "
    "is complete; with --output json, one JSON document per line.",
)
@click.option("--job", "job_id", metavar="ID", help="Only the job with this id.")
@click.option(
    "--events", is_flag=True, help="With --job: the job's history (every state change, retry, error)."
)
@global_options
@click.pass_context
def status_command(
    ctx: click.Context,
    journal: JournalLocation,
    campaign_name: str | None,
    states: tuple[str, ...],
    watch: float | None,
    job_id: str | None,
    events: bool,
) -> int:
    """Counts per state, and one row per job: id, service, state, ARN, attempts, last error."""
    g = setup(ctx)
    wanted = _parse_states(states)
    if events and job_id is None:
        raise click.UsageError("--events needs --job ID")
    if watch is not None and (job_id is not None or wanted):
        raise click.UsageError("--watch shows the whole campaign: it takes no --job or --state")

    async def main() -> int:
        if watch is not None:
            return await watch_status(g, journal, watch, campaign_name)
        if events:
            assert job_id is not None
            emit(g, await history_document(journal, job_id, campaign_name), history_renderable)
            return EXIT_OK
        doc = await status_document(journal, wanted, job_id, campaign_name)
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


async def status_document(
    path: JournalLocation,
    states: Sequence[JobState],
    job_id: str | None = None,
    campaign_name: str | None = None,
) -> dict[str, Any]:
    """``{"campaign", "journal", "total", "counts", "jobs"}`` for ``asyncjobs status`` (``jobs``:
    only ``job_id``'s row, if given).

    While a run bulk-loads a new campaign, ``"loading": {"pid", "jobs", "stage"}`` says how far it has got.
    """
    try:
        journal = await open_for_status(path, campaign_name)
        try:
            if job_id is None:
                rows = [job_row(job) async for job in journal.jobs(states or None)]
            else:
                job = await journal.get(job_id)
                if job is None:
                    raise Failure(f"{shown(path)}: no job with id {job_id!r}", EXIT_USAGE)
                rows = [job_row(job)] if not states or job.state in states else []
        finally:
            await journal.aclose()
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    doc: dict[str, Any] = {
        "campaign": journal.campaign,
        "journal": shown(path),
        "total": journal.counts().total,
        "counts": journal.counts().as_dict(),
        "jobs": rows,
    }
    loading = journal.loading if isinstance(journal, ReadOnlyJournal) else None
    if loading is not None:
        _note_loading(loading)
        doc["loading"] = {"pid": loading.pid, "jobs": loading.jobs, "stage": loading.stage}
    return doc


async def open_for_status(path: JournalLocation, campaign_name: str | None = None) -> Journal | JournalView:
    """A SQLite journal, or a read-only snapshot of it when a run holds it; a read-only snapshot
    of a PostgreSQL journal's campaign (it needs no lock to be read while workers run)."""
    if isinstance(path, str):
        return await open_journal(path, campaign=campaign_name, readonly=True)
    # the journal may have been planted or changed by another user: refuse it before reading it
    await anyio.to_thread.run_sync(files.check_all, path, "read")
    try:
        return await open_journal(path, create=False)
    except JournalLocked as exc:
        note(f"{exc.message}; showing a read-only snapshot")
        return await open_journal(path, readonly=True)


def job_row(job: Job) -> dict[str, Any]:
    """What status shows of a job, in its columns' order."""
    return {
        "id": job.id,
        "service": str(job.service),
        "state": str(job.state),
        "arn": job.arn,
        "attempts": job.attempt,
        "last_error": job.last_error,
        "job_name": job.job_name,
        "remote_status": job.remote_status,
    }


def _note_loading(loading: Loading) -> None:
    """A bulk load's jobs appear all at once when it commits: say how far it has got meanwhile."""
    if loading.jobs is None:
        so_far = "how far it has got is not known"
    elif loading.stage == "indexing":
        so_far = f"{loading.jobs} jobs read, now indexing them"
    else:
        so_far = f"{loading.jobs} jobs so far"
    by = f" by pid {loading.pid}" if loading.pid is not None else ""
    note(f"the campaign is being loaded into the journal{by} ({so_far}); its jobs show once the load is done")
