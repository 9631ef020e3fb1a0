"""``asyncjobs run``: submit a campaign and track every job to the end; and what a run reports."""

from __future__ import annotations

from collections.abc import Iterable

import click

from .. import display
from ..errors import AsyncJobsError, InputError, ServiceError
from ..model import UNSUCCESSFUL_STATES, JobState
from ..records.expand import RecordsOptions
from ..scheduler import Settings, Summary
from .driver import RunOptions, campaign_factory, drive
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNSUCCESSFUL, Failure, Halted, run_async
from .logs import setup
from .options import Globals, JournalLocation, global_options, journal_option, records_options, shown
from .output import emit, note, shell_command
from .serve_metrics import DEFAULT_HOST, linger, metrics_server
from .session import session_for, warn_if_unverified


@click.command("run")
@click.argument("campaign_file", metavar="[CAMPAIGN]", required=False)
@journal_option
@click.option(
    "--campaign-name",
    metavar="NAME",
    help=(
        "Name of a new campaign (default: the journal's file name); in a PostgreSQL journal, the "
        "campaign to run or join (may be left out when the database holds one)."
    ),
)
@click.option(
    "--create-rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Ceiling on create calls per second, per service (default: discover).",
)
@click.option(
    "--max-running",
    "max_running",
    multiple=True,
    metavar="KEY=N",
    help="Cap running jobs of a quota key, model id or service; repeatable.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest gap between status sweeps.",
)
@click.option(
    "--resubmit-failed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Extra attempts for failed or expired jobs.",
)
@records_options
@click.option(
    "--retry-failed-records",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Rounds of resubmitting records that failed, in new shards.",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="PostgreSQL journal: how long a dead worker's claimed jobs wait before another takes them over.",
)
@click.option(
    "--outage-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="PostgreSQL journal: how long to ride a database outage before stopping (exit 3, resumable).",
)
@click.option("--no-wait", is_flag=True, help="Exit once every job is submitted; resume later to track them.")
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://HOST:PORT/metrics while the run works (0: a free port).",
)
@click.option(
    "--metrics-host",
    default=DEFAULT_HOST,
    show_default=True,
    metavar="HOST",
    help="Address for --metrics-port (no authentication: keep it on loopback).",
)
@click.option(
    "--metrics-linger",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="After the run, keep serving its final metrics this long (a signal ends it sooner).",
)
@global_options
@click.pass_context
def run_command(
    ctx: click.Context,
    campaign_file: str | None,
    journal: JournalLocation,
    campaign_name: str | None,
    create_rate: float | None,
    max_running: tuple[str, ...],
    poll_interval: float,
    resubmit_failed: int,
    records_per_job: int,
    min_records_per_job: int | None,
    retry_failed_records: int,
    lease_seconds: float,
    outage_seconds: float,
    no_wait: bool,
    metrics_port: int | None,
    metrics_host: str,
    metrics_linger: float,
) -> int:
    """Submit CAMPAIGN (JSON Lines, or - for stdin) and track every job to the end.

    Re-running with the same --journal resumes; CAMPAIGN may then be left out. Several
    workers may run one campaign together on a shared PostgreSQL journal.
    """
    g = setup(ctx)
    warn_if_unverified(g)
    settings = Settings(
        create_rate=create_rate,
        max_running=parse_max_running(max_running),
        poll_interval=poll_interval,
        min_poll_interval=min(Settings().min_poll_interval, poll_interval),
        resubmit_failed=resubmit_failed,
        retry_failed_records=retry_failed_records,
        lease_seconds=lease_seconds,
    )
    records = RecordsOptions(records_per_job=records_per_job, min_records_per_job=min_records_per_job)
    options = RunOptions(
        journal=journal,
        source=campaign_file,
        campaign_name=campaign_name,
        settings=settings,
        wait=not no_wait,
        resume_hint=shell_command(*g.connection_argv(), "run", *journal_argv(journal, campaign_name)),
        structured=g.log_format == "json",
        outage_seconds=outage_seconds,
    )

    async def main() -> int:
        session = await session_for(g, campaign_file)
        with metrics_server(metrics_host, metrics_port) as registry:
            try:
                summary = await drive(
                    options, campaign_factory(g, settings, session, metrics=registry, records=records)
                )
            except Halted as halted:
                report_halt(g, halted, options)
                raise
            except AsyncJobsError as exc:
                if isinstance(exc, InputError):
                    raise
                # the run had started and every change is journaled: say how to resume, then the cause
                note(
                    f"the campaign stopped on an error; once it is fixed, resume with: {options.resume_hint}"
                )
                raise Failure(exc.describe() if isinstance(exc, ServiceError) else exc.message) from exc
            code = report_run(g, summary, options)
            if registry is not None and metrics_linger > 0:
                await linger(metrics_linger)
        return code

    return run_async(g, main)


def journal_argv(journal: JournalLocation, campaign_name: str | None) -> list[str]:
    """``--journal`` (a URI's password as ``***``) and, for a shared journal, ``--campaign-name``."""
    argv = ["--journal", shown(journal)]
    if isinstance(journal, str) and campaign_name is not None:
        argv += ["--campaign-name", campaign_name]
    return argv


def parse_max_running(values: Iterable[str]) -> dict[str, int]:
    """``--max-running KEY=N`` options as caps per key (a later one for the same key wins)."""
    caps: dict[str, int] = {}
    for value in values:
        key, sep, number = value.rpartition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=N", param_hint="--max-running")
        try:
            n = int(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: N must be an integer", param_hint="--max-running") from None
        if n < 1:
            raise click.BadParameter(f"{value!r}: N must be at least 1", param_hint="--max-running")
        caps[key] = n
    return caps


def run_exit_code(summary: Summary, *, wait: bool = True) -> int:
    """130 when stopped before the end (a signal that came after the last job ended changes nothing).

    A run that waited never exits 0 with an unfinished job, whatever the engine said.
    """
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if wait and not summary.counts.done:
        return EXIT_UNSUCCESSFUL
    return EXIT_OK if summary.ok else EXIT_UNSUCCESSFUL


def report_run(g: Globals, summary: Summary, options: RunOptions) -> int:
    """Print the summary, the notes a person needs, and return the exit code."""
    code = run_exit_code(summary, wait=options.wait)
    emit(g, summary.to_dict(), display.summary_renderable)
    counts = summary.counts
    if code == EXIT_INTERRUPTED:
        note(f"interrupted; nothing is lost. Resume with: {options.resume_hint}")
        return code
    if not options.wait and not counts.done:
        note(f"submitted; track the campaign with: {options.resume_hint}")
    bad = {str(s): counts[s] for s in JobState if s in UNSUCCESSFUL_STATES and counts[s]}
    if bad:
        details = ", ".join(f"{n} {s}" for s, n in bad.items())
        states = ",".join(bad)
        see = shell_command(
            "status", *journal_argv(options.journal, options.campaign_name), "--state", states
        )
        note(f"finished with {details}; see: {see}")
    if counts[JobState.PARTIAL]:
        note(f"{counts[JobState.PARTIAL]} job(s) only partially completed (counted as succeeded)")
    return code


def report_halt(g: Globals, halted: Halted, options: RunOptions) -> None:
    """Before the error line: the summary so far (with the error) and how to resume."""
    emit(g, halted.document(), display.summary_renderable)
    note(f"the campaign stopped on an error; once it is fixed, resume with: {options.resume_hint}")
