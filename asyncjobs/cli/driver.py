"""Driving one run of a campaign (``run`` and ``demo``): journal, ingest, run, progress and signals.

A job's path through the command reads downward from here: the journal is opened (created for
a new campaign), the campaign file is ingested into it all or nothing, and the campaign runs
with a progress display while the signal watcher decides how a stop is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import structlog

from .. import display
from ..errors import AsyncJobsError, InputError, JournalError
from ..journal import Journal, files, open_journal
from ..model import JobSpec
from ..records.expand import RecordsOptions
from ..scheduler import Campaign, Progress, Settings, Summary
from .errors import EXIT_USAGE, NOTHING_SENT, Failure, Halted, Interrupted, innermost
from .options import Globals, JournalLocation
from .output import interactive, note, stderr_console
from .signals import Interrupts, watching

#: How often the plain progress line is written when stderr is not a terminal.
LINE_INTERVAL = 5.0

log = structlog.get_logger("asyncjobs.cli")


@dataclass
class RunOptions:
    """What ``asyncjobs run`` (and the demo) was asked to do."""

    #: A SQLite file, or a PostgreSQL URI (shown only through :func:`.options.shown`).
    journal: JournalLocation
    source: str | None
    campaign_name: str | None
    settings: Settings
    wait: bool = True
    resume_hint: str = ""
    #: Progress as ``asyncjobs.progress`` log events (``--log-format json``) instead of text lines.
    structured: bool = False
    #: A PostgreSQL journal: how long the run rides a database outage before it stops (exit 3).
    outage_seconds: float = 60.0


def campaign_factory(
    g: Globals,
    settings: Settings,
    session: Any,
    endpoint_url: str | None = None,
    records: RecordsOptions | None = None,
    metrics: Any = None,
) -> Callable[[Journal], Campaign]:
    """How to make the campaign on a journal once it is open, with the session and options given."""

    def make(journal: Journal) -> Campaign:
        return Campaign(
            journal,
            session=session,
            region=g.region,
            endpoint_url=endpoint_url or g.endpoint_url,
            verify=g.verify,
            settings=settings,
            metrics=metrics,  # a prometheus_client.CollectorRegistry (run --metrics-port)
            records=records,
        )

    return make


async def drive(
    options: RunOptions,
    make_campaign: Callable[[Journal], Campaign],
    interrupts: Interrupts | None = None,
) -> Summary:
    """Open the journal, ingest, run with progress and signal handling.

    Input errors leave no journal behind when this invocation created it.

    After the first signal no create is sent, whenever it comes: the ingest is abandoned
    (rolled back) or, if it had committed, kept for a resume; the boundary between ingest
    and run checks for the signal; and the stop event handed to the run is set from the
    start if the signal came while the run was starting, so it sends nothing.
    """
    path = options.journal
    # a shared database is never removed: other workers may be joining the same campaign
    created = isinstance(path, Path) and not path.exists()
    if options.source is None and created:
        raise Failure(f"no journal at {path}: give a CAMPAIGN file to start one", EXIT_USAGE)
    interrupts = interrupts or Interrupts()
    async with watching(interrupts) as tg:
        journal = await _open_for_run(options)
        campaign = await _ingested(journal, make_campaign, options, interrupts, created=created)
        try:
            # set at once if the signal comes (or came) before or while the run starts: the
            # run then begins stopped and sends nothing, not even a repeat of an unsettled create
            stop = anyio.Event()
            interrupts.on_first(
                stop.set, "stopping: no new submissions; creates in flight are finishing and being journaled"
            )
            summary = await _run_with_progress(campaign, options.wait, stop, tg, options.structured)
        except BaseException as exc:
            error = innermost(exc)
            # Campaign.run() hands the summary of a run it ends on an error to the error itself
            if (
                isinstance(error, AsyncJobsError)
                and error.summary is not None
                and not isinstance(error, InputError)
            ):
                raise Halted(error, error.summary) from error
            raise
        finally:
            await journal.aclose()
    return summary


async def _open_for_run(options: RunOptions) -> Journal:
    path, campaign_name = options.journal, options.campaign_name
    try:
        if isinstance(path, Path):
            return await open_journal(path, campaign=campaign_name, create=True)
        try:
            from ..journal.postgres import PostgresJournal
        except ImportError as exc:
            raise Failure(
                f"a PostgreSQL journal needs the psycopg driver ({exc.name} is missing): "
                "pip install 'asyncjobs[postgres]'",
                EXIT_USAGE,
            ) from None
        # the lease a job takes when it is sent again (a retry) is the run's, as a claim's is
        return await PostgresJournal.open(
            path,
            campaign=campaign_name,
            create=True,
            lease_seconds=options.settings.lease_seconds,
            outage_seconds=options.outage_seconds,
        )
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc


async def _ingested(
    journal: Journal,
    make_campaign: Callable[[Journal], Campaign],
    options: RunOptions,
    interrupts: Interrupts,
    *,
    created: bool,
) -> Campaign:
    """The campaign, with ``options.source`` ingested; on any error the journal is closed, and
    removed if this invocation ``created`` it and there is nothing in it to resume."""
    try:
        campaign = make_campaign(journal)
        with anyio.CancelScope() as ingesting:
            interrupts.on_first(ingesting.cancel, "stopping before anything is submitted")
            if options.source is not None:
                await ingest(campaign, options.source, interrupts)
            await journal.refresh()  # a shared journal: the specs another worker ingested count too
            if journal.counts().total == 0:
                raise InputError(f"{options.source or journal.path}: the campaign has no jobs")
        # the ingest may have ended in its thread after the signal, uncancelled: look again
        interrupts.check()
        if not created and options.campaign_name not in (None, journal.campaign):
            note(f"the journal keeps its campaign name {journal.campaign!r}; --campaign-name is ignored")
        return campaign
    except BaseException as exc:
        await journal.aclose()
        interrupted = isinstance(innermost(exc), Interrupted)
        journaled = journal.counts().total > 0
        if created and isinstance(options.journal, Path) and not (interrupted and journaled):
            # rejected input, or an ingest the signal rolled back: there is nothing to resume
            remove_journal(options.journal)
        if interrupted:  # an ingest that committed before the signal was seen is kept: it resumes
            raise _interrupted_before_run(options, journaled=journaled) from None
        if isinstance(exc, JournalError):  # e.g. a spec changed under the same id: nothing was sent
            raise Failure(exc.message, EXIT_USAGE) from exc
        raise


async def ingest(campaign: Campaign, source: str, interrupts: Interrupts | None = None) -> int:
    """Validate and journal every spec of ``source`` (all or nothing); returns how many were new.

    With ``interrupts``, the first signal abandons the ingest: the campaign is read in the
    journal's worker thread, where no cancellation reaches, so the reader itself looks at
    the signal before each spec and raises :class:`~asyncjobs.cli.errors.Interrupted`, and
    the load rolls back.
    """
    from ..campaign import read_campaign
    from ..journal.base import ShardStore

    # records lines are run only where the journal keeps their shards (to upload and collect them)
    records = campaign.records_options if isinstance(campaign.journal, ShardStore) else None
    specs: Iterable[JobSpec] = read_campaign(source, records=records)
    if interrupts is not None:
        specs = _until_interrupted(specs, interrupts)
    result = await campaign.add(specs)
    log.info("asyncjobs.campaign.ingested", added=result.added, existing=result.existing)
    return result.added


def _until_interrupted(specs: Iterable[JobSpec], interrupts: Interrupts) -> Iterator[JobSpec]:
    for spec in specs:
        if interrupts.seen:
            raise Interrupted(NOTHING_SENT)
        yield spec


def remove_journal(path: Path) -> None:
    """Remove a journal this invocation created (input rejected: leave nothing behind)."""
    for file in (path, *(files.sibling(path, suffix) for suffix in ("-wal", "-shm", files.LOCK_SUFFIX))):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


def _interrupted_before_run(options: RunOptions, *, journaled: bool) -> Interrupted:
    """How to go on after a signal that came before the run: resume, or start again."""
    if journaled:
        return Interrupted(f"{NOTHING_SENT}; resume with: {options.resume_hint}")
    return Interrupted(f"{NOTHING_SENT}; nothing was journaled: run the same command again to start")


async def _run_with_progress(
    campaign: Campaign, wait: bool, stop: anyio.Event, tg: anyio.abc.TaskGroup, structured: bool
) -> Summary:
    """Run the campaign with a live display on a terminal, else progress lines (log events if JSON)."""
    progress_scope = anyio.CancelScope()

    def report(progress: Progress) -> None:
        if structured:
            log.info("asyncjobs.progress", **display.progress_fields(progress))
        else:
            note(display.progress_line(progress))

    async def show() -> None:
        with progress_scope:
            if interactive():
                await display.live_progress(campaign.progress, stderr_console())
            else:
                await display.line_progress(campaign.progress, report, interval=LINE_INTERVAL)

    tg.start_soon(show)
    try:
        return await campaign.run(wait=wait, stop=stop)
    finally:
        progress_scope.cancel()
        await anyio.lowlevel.checkpoint()  # let the display draw its last frame
