"""``asyncjobs cancel``: stop a campaign's Bedrock jobs and cancel every job not yet submitted."""

from __future__ import annotations

from pathlib import Path

import click

from .. import display
from ..errors import JournalError
from ..journal import Journal, open_journal
from ..scheduler import Settings
from .driver import campaign_factory
from .errors import EXIT_OK, EXIT_USAGE, Failure, run_async
from .logs import setup
from .options import JournalLocation, campaign_name_option, global_options, journal_option
from .output import emit, note, shell_command
from .run import journal_argv
from .session import make_session, require_credentials, warn_if_unverified


@click.command("cancel")
@journal_option
@campaign_name_option
@global_options
@click.pass_context
def cancel_command(ctx: click.Context, journal: JournalLocation, campaign_name: str | None) -> int:
    """Cancel a campaign: stop its Bedrock jobs and cancel every job not yet submitted.

    Personalize batch jobs cannot be stopped: they run to the end, and a later
    `asyncjobs run --journal PATH` tracks them.
    """
    g = setup(ctx)
    warn_if_unverified(g)

    async def main() -> int:
        session = make_session(g)
        await require_credentials(session)
        try:
            if isinstance(journal, Path):
                opened: Journal = await open_journal(journal, create=False)
            else:
                opened = await open_journal(journal, campaign=campaign_name, create=False)
        except JournalError as exc:
            raise Failure(exc.message, EXIT_USAGE) from exc
        try:
            summary = await campaign_factory(g, Settings(), session)(opened).cancel()
        finally:
            await opened.aclose()
        emit(g, summary.to_dict(), display.summary_renderable)
        if summary.unstoppable:
            track = shell_command(*g.connection_argv(), "run", *journal_argv(journal, campaign_name))
            note(
                f"{summary.unstoppable} Personalize job(s) cannot be stopped and keep running; "
                f"track them with: {track}"
            )
        return EXIT_OK

    return run_async(g, main)
