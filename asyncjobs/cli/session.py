"""The AWS session: botocore's credential chain (or ``--profile``), checked before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CampaignError
from .errors import EXIT_USAGE, Failure
from .options import Globals
from .output import note


def warn_if_unverified(g: Globals) -> None:
    """One warning line when TLS certificates will not be checked (``--no-verify-ssl``).

    The AWS CLI's HTTP stack (urllib3) warns on every unverified request; aiohttp, under
    aioboto3, says nothing, so without this line an insecure run looks like any other.
    """
    if g.no_verify_ssl:
        note("warning: TLS certificate verification is off (--no-verify-ssl)")


def make_session(
    g: Globals, *, credentials: Mapping[str, str] | None = None, region: str | None = None
) -> Any:
    """An aioboto3 session: botocore's credential chain and ``--profile``, or fixed ``credentials``."""
    import aioboto3
    from botocore.exceptions import BotoCoreError

    try:
        if credentials is not None:
            return aioboto3.Session(region_name=region or g.region, **credentials)
        return aioboto3.Session(profile_name=g.profile, region_name=region or g.region)
    except BotoCoreError as exc:
        raise Failure(str(exc), EXIT_USAGE) from exc


async def require_credentials(session: Any) -> None:
    """Fail early (exit 2, nothing sent) when the credential chain finds nothing."""
    from botocore.exceptions import BotoCoreError

    try:
        credentials = await session.get_credentials()
    except BotoCoreError as exc:
        raise Failure(f"cannot load AWS credentials: {exc}", EXIT_USAGE) from exc
    if credentials is None:
        raise Failure(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile",
            EXIT_USAGE,
        )


async def session_for(g: Globals, campaign_file: str | None) -> Any:
    """The session for ``run``, its credentials checked; but a bad campaign is reported first.

    What is wrong with the campaign is what to fix first, and it does not depend on
    credentials. Still, the campaign is validated by its one streaming read, the ingest,
    which comes after this check: a second pass beforehand would double the validation
    of a million-line campaign on every run, and stdin can be read only once. So the
    campaign is read here only when the credentials are missing, and its first error
    (duplicates included, as the ingest would find them) wins over theirs.
    """
    try:
        session = make_session(g)
        await require_credentials(session)
    except Failure:
        if campaign_file is not None:
            from ..campaign import check_campaign

            for item in check_campaign(campaign_file):
                if isinstance(item, CampaignError):
                    raise item from None
        raise
    return session
