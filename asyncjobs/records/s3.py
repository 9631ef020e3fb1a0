"""The one S3 client a run (or ``asyncjobs results``) moves records through.

Opened from the run's session, region and endpoint, as the service clients are
(:mod:`asyncjobs.services.clients`), so one ``--endpoint-url`` serves S3 too. Unlike the
create calls, S3 calls here are idempotent (the same bytes to the same key, reads), so
botocore's standard retries stay on.
"""

from __future__ import annotations

import contextlib
from typing import Any


async def open_s3(
    stack: contextlib.AsyncExitStack,
    session: Any = None,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    verify: bool | str | None = None,
) -> Any:
    """An aioboto3 S3 client, closed with ``stack``; ``session`` None: the default credential chain."""
    from botocore.config import Config

    if session is None:
        import aioboto3

        session = aioboto3.Session()
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="asyncjobs",
    )
    kwargs: dict[str, Any] = {"region_name": region or session.region_name or "us-east-1", "config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if verify is not None:
        kwargs["verify"] = verify
    return await stack.enter_async_context(session.client("s3", **kwargs))
