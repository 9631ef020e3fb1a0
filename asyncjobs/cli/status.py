"""``asyncjobs status``: counts per state and one row per job, read from the journal.

A journal that a run holds is read as a read-only snapshot (the run goes on undisturbed); while
that run bulk-loads a new campaign, status says how far the load has got instead of the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import anyio
import click

from .. import display
from ..errors import JournalError, JournalLocked
from ..journal import Journal, Loading, ReadOnlyJournal, files, open_journal
from ..model import Job, JobState
from .errors import EXIT_OK, EXIT_USAGE, Failure, run_async
from .logs import setup
from .options import JournalLocation, campaign_name_option, global_options, journal_option, shown
from .output import emit, note


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
@global_options
@click.pass_context
def status_command(
    ctx: click.Context, journal: JournalLocation, campaign_name: str | None, states: tuple[str, ...]
) -> int:
    """Counts per state, and one row per job: id, service, state, ARN, attempts, last error."""
    g = setup(ctx)
    wanted = _parse_states(states)

    async def main() -> int:
        doc = await status_document(journal, wanted, campaign_name)
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
    path: JournalLocation, states: Sequence[JobState], campaign_name: str | None = None
) -> dict[str, Any]:
    """``{"campaign", "journal", "total", "counts", "jobs"}`` for ``asyncjobs status``.

    While a run bulk-loads a new campaign, ``"loading": {"pid", "jobs", "stage"}`` says how far it has got.
    """
    try:
        journal = await _open(path, campaign_name)
        try:
            rows = [_row(job) async for job in journal.jobs(states or None)]
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


async def _open(path: JournalLocation, campaign_name: str | None) -> Journal | ReadOnlyJournal:
    """The journal, or a read-only snapshot of it when a run holds it.

    A PostgreSQL journal needs no lock to be read while workers run: it is opened as one more
    worker that claims nothing, takes no lease and writes nothing but its recount."""
    if isinstance(path, str):
        return await open_journal(path, campaign=campaign_name, create=False)
    # the journal may have been planted or changed by another user: refuse it before reading it
    await anyio.to_thread.run_sync(files.check_all, path, "read")
    try:
        return await open_journal(path, create=False)
    except JournalLocked as exc:
        note(f"{exc.message}; showing a read-only snapshot")
        return await open_journal(path, readonly=True)


def _row(job: Job) -> dict[str, Any]:
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
