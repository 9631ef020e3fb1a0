"""``asyncjobs check``: validate a campaign file as ``run`` would, and send nothing."""

from __future__ import annotations

from collections import Counter

import click

from .. import display
from ..errors import CampaignError
from ..records.expand import RecordsOptions
from .errors import EXIT_OK, EXIT_USAGE, report_error
from .logs import setup
from .options import global_options, records_options
from .output import emit


@click.command("check")
@click.argument("campaign_file", metavar="CAMPAIGN")
@records_options
@global_options
@click.pass_context
def check_command(
    ctx: click.Context, campaign_file: str, records_per_job: int, min_records_per_job: int | None
) -> int:
    """Validate CAMPAIGN (JSON Lines, or - for stdin) as `run` would, and send nothing.

    Every bad line is reported on stderr as FILE:LINE: FIELD: REASON (duplicate ids
    and job names included), and the exit code is 2. When every line is good, the
    jobs per service and per quota key are printed. Needs no credentials and no journal.
    """
    g = setup(ctx)
    from ..campaign import check_campaign

    try:
        bad = 0
        services: Counter[str] = Counter()
        keys: Counter[str] = Counter()
        records = RecordsOptions(records_per_job=records_per_job, min_records_per_job=min_records_per_job)
        for item in check_campaign(campaign_file, records=records):
            if isinstance(item, CampaignError):
                bad += 1
                click.echo(display.safe_text(str(item)), err=True)
            else:
                services[str(item.service)] += 1
                keys[item.quota_key] += 1
    except BaseException as exc:
        return report_error(g, exc)
    if bad:
        return EXIT_USAGE
    doc = {
        "campaign": "<stdin>" if campaign_file == "-" else campaign_file,
        "jobs": services.total(),
        "services": dict(sorted(services.items())),
        "quota_keys": dict(sorted(keys.items())),
    }
    emit(g, doc, display.check_renderable)
    return EXIT_OK
