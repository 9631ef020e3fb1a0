"""``asyncjobs results``: a campaign's records lines joined back, one result per input record.

It reads a read-only snapshot of the journal (nothing is written to it), so it can run beside a
``run`` that holds a SQLite journal or workers on a PostgreSQL one: a shard whose outputs that run
has not collected yet has its records reported failed, and a later ``results`` writes them whole.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import display
from ..errors import JournalError
from ..records.collected import campaign_results
from .errors import EXIT_OK, EXIT_USAGE, Failure, run_async
from .logs import setup
from .options import JournalLocation, campaign_name_option, global_options, journal_option, shown
from .output import emit
from .session import make_session, require_credentials, warn_if_unverified


@click.command("results")
@journal_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Folder for the results files, DIR/<id>.jsonl.",
)
@click.option("--id", "ids", multiple=True, metavar="ID", help="Only this records line; repeatable.")
@campaign_name_option
@global_options
@click.pass_context
def results_command(
    ctx: click.Context,
    journal: JournalLocation,
    out_dir: Path,
    ids: tuple[str, ...],
    campaign_name: str | None,
) -> int:
    """Write DIR/<id>.jsonl for each records line: one line per input record, in input order.

    Bedrock lines hold {"recordId", "modelOutput"} or {"recordId", "error"}; Personalize
    lines {"input", "output"} or {"input", "error"}. Prints the records succeeded and failed
    per id, and the token counts from Bedrock's manifests. Reads the journal without writing
    to it: it may run while a run holds the journal (outputs not yet collected count as failed).
    """
    g = setup(ctx)
    warn_if_unverified(g)

    async def main() -> int:
        session = make_session(g)
        await require_credentials(session)
        try:
            summaries = await campaign_results(
                journal,
                out_dir,
                ids=ids or None,
                campaign=campaign_name,
                session=session,
                region=g.region,
                endpoint_url=g.endpoint_url,
                verify=g.verify,
            )
        except JournalError as exc:
            raise Failure(exc.message, EXIT_USAGE) from exc
        except KeyError as exc:
            raise Failure(f"{shown(journal)}: no records line with id {exc.args[0]!r}", EXIT_USAGE) from exc
        doc = {
            "journal": shown(journal),
            "out": str(out_dir),
            "lines": [
                {
                    "id": s.id,
                    "path": str(s.path),
                    "records": s.records,
                    "succeeded": s.succeeded,
                    "failed": s.failed,
                    "missing": s.missing,
                    "tokens": s.tokens,
                }
                for s in summaries
            ],
        }
        emit(g, doc, display.results_renderable)
        return EXIT_OK

    return run_async(g, main)
