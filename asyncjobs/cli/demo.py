"""``asyncjobs demo``: a sample campaign against an in-process emulator, with the progress display."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from ..errors import JournalError, JournalLocked
from ..records.collected import campaign_results
from ..records.expand import RecordsOptions
from .driver import RunOptions, campaign_factory, drive
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Failure, Halted, run_async
from .logs import setup
from .options import Globals, global_options
from .output import note, shell_command
from .run import report_halt, report_run
from .session import make_session
from .signals import Interrupts

if TYPE_CHECKING:  # the emulator (an HTTP server) is imported only when the demo runs
    from ..emulator import Emulator


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".asyncjobs-demo"),
    show_default=True,
    help="Where the demo keeps its campaign, journal and emulator state.",
)
@click.option("--fresh", is_flag=True, help="Start over, even if an unfinished demo can be resumed.")
@click.option(
    "--jobs",
    "jobs",
    type=click.IntRange(min=4, max=5000),
    default=300,
    show_default=True,
    help="Jobs in the sample campaign.",
)
@global_options
@click.pass_context
def demo_command(ctx: click.Context, directory: Path, fresh: bool, jobs: int) -> int:
    """Run a sample campaign against an in-process emulator, with the progress display.

    Interrupt it (Ctrl-C) and run it again to see it resume.
    """
    g = setup(ctx)
    return run_async(g, lambda: run_demo(g, directory, fresh=fresh, jobs=jobs))


async def run_demo(g: Globals, directory: Path, *, fresh: bool, jobs: int) -> int:
    """Start the emulator, resume or start the sample campaign, run it with the display."""
    from .. import demo

    if g.endpoint_url or g.profile:
        note("the demo runs against its own in-process emulator; --endpoint-url and --profile are ignored")
    emulator, resuming = await _prepared(directory, fresh=fresh, jobs=jobs)
    state_file = directory / demo.STATE_FILE
    journal = directory / demo.JOURNAL_FILE
    note(
        ("resuming the demo campaign" if resuming else f"starting the demo: {jobs} jobs")
        + f" (campaign {directory / demo.CAMPAIGN_FILE}, journal {journal})"
    )
    settings = demo.demo_settings()
    options = RunOptions(
        journal=journal,
        source=None if resuming else str(directory / demo.CAMPAIGN_FILE),
        campaign_name="demo",
        settings=settings,
        resume_hint=shell_command(
            "demo", *(["--dir", str(directory)] if directory != Path(".asyncjobs-demo") else [])
        ),
        structured=g.log_format == "json",
    )
    session = make_session(g, credentials=demo.CREDENTIALS, region=demo.REGION)
    demo_g = Globals(**{**vars(g), "endpoint_url": None, "profile": None, "region": demo.REGION})
    records = RecordsOptions(records_per_job=demo.RECORDS_PER_JOB)
    async with emulator:
        await _records_bucket(session, emulator.url)  # before the state is saved: then the run starts
        async with anyio.create_task_group() as tg:
            tg.start_soon(demo.autosave, emulator, state_file)
            try:
                summary = await drive(
                    options,
                    campaign_factory(demo_g, settings, session, endpoint_url=emulator.url, records=records),
                    Interrupts(before_exit=lambda: emulator.save_state(state_file)),
                )
            except Halted as halted:
                report_halt(g, halted, options)
                raise
            finally:
                tg.cancel_scope.cancel()
        results = []
        if not summary.interrupted:
            folder = directory / demo.RESULTS_DIR
            demo.private_folder(folder)  # as private as the rest of the demo's files
            results = await campaign_results(journal, folder, session=session, endpoint_url=emulator.url)
            for line in results:
                line.path.chmod(0o600)
    code = report_run(g, summary, options)
    for line in results:
        tokens = ", ".join(f"{k} {v}" for k, v in line.tokens.items())
        note(
            f"results of {line.id!r}: {line.path} ({line.records} records: {line.succeeded} succeeded,"
            f" {line.failed} failed{'; ' + tokens if tokens else ''})"
        )
    stats = emulator.stats()
    note(f"emulator: {_emulator_line(stats)}")
    if code == EXIT_INTERRUPTED:
        return code
    note(f"journal: {journal}; inspect it with: {shell_command('status', '--journal', str(journal))}")
    note(f"run `{shell_command('demo')}` again for a new demo")
    return EXIT_OK  # failed jobs are part of the demo's script


async def _prepared(directory: Path, *, fresh: bool, jobs: int) -> tuple[Emulator, bool]:
    """The demo's folder made ready, and its emulator: whether the demo resumes, with that
    emulator's saved state (a state that cannot be read starts a new demo)."""
    from .. import demo
    from ..emulator import Emulator

    try:
        resuming, why = await demo.prepare(directory, fresh=fresh, jobs=jobs)
    except JournalLocked as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    except JournalError as exc:
        raise Failure(f"{exc.message}; start a new demo with --fresh", EXIT_USAGE) from exc
    emulator = Emulator(demo.emulator_config())
    if resuming and not demo.restore_state(emulator, directory / demo.STATE_FILE):
        demo.reset_folder(directory, jobs)
        resuming, why = False, "the emulator's saved state could not be read; starting a new demo"
    if why:
        note(why)
    return emulator, resuming


async def _records_bucket(session: Any, url: str) -> None:
    """The bucket of the records example, in the emulator's S3 (a resumed demo's has it already)."""
    from botocore.exceptions import ClientError

    from .. import demo

    async with session.client("s3", endpoint_url=url, region_name=demo.REGION) as s3:
        try:
            await s3.create_bucket(Bucket=demo.RECORDS_BUCKET)
        except ClientError as exc:  # already there
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise


def _emulator_line(stats: Mapping[str, Any]) -> str:
    """A one-line digest of the emulator's counters, whatever subset of them it reports."""
    parts = []
    for key in ("jobs_total", "duplicate_jobs", "throttled_total", "quota_rejections_total", "faults"):
        value = stats.get(key)
        if isinstance(value, Mapping):
            value = sum(v for v in value.values() if isinstance(v, int | float))
        if value is not None:
            parts.append(f"{key.removesuffix('_total').replace('_', ' ')} {value}")
    return ", ".join(parts) or "no counters"
