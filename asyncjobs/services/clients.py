"""Opening the AWS clients a campaign talks through, and the adapters around them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ..model import Service
from .base import ServiceAdapter


@dataclass(frozen=True, slots=True)
class Clients:
    """The adapter of each service, the region their clients talk to, and the session they came from."""

    adapters: dict[Service, ServiceAdapter]
    region: str
    session: Any


async def open_clients(
    stack: contextlib.AsyncExitStack,
    session: Any,
    *,
    region: str | None,
    endpoint_url: str | None,
    verify: bool | str | None,
    max_pool_connections: int,
) -> Clients:
    """Bedrock and Personalize clients from ``session`` (an ``aioboto3.Session``; the default
    credential chain if None), closed with ``stack``.

    botocore's own retries are off: the scheduler paces and retries creates itself, and a
    retry it does not see would be a create it cannot reconcile.
    """
    from botocore.config import Config

    from .bedrock import BedrockAdapter
    from .personalize import PersonalizeAdapter

    if session is None:
        import aioboto3

        session = aioboto3.Session()
    region = region or session.region_name or "us-east-1"
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max_pool_connections,
        user_agent_extra="asyncjobs",
    )
    kwargs: dict[str, Any] = {"region_name": region, "config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if verify is not None:
        kwargs["verify"] = verify
    bedrock = await stack.enter_async_context(session.client("bedrock", **kwargs))
    personalize = await stack.enter_async_context(session.client("personalize", **kwargs))
    both_kinds = PersonalizeAdapter(personalize)
    return Clients(
        {
            Service.BEDROCK: BedrockAdapter(bedrock),
            Service.PERSONALIZE: both_kinds,
            Service.PERSONALIZE_SEGMENT: both_kinds,
        },
        region,
        session,
    )


def by_service(adapters: dict[Service, ServiceAdapter]) -> dict[Service, ServiceAdapter]:
    """Given adapters, each under every service it serves (one adapter may serve several)."""
    return {service: adapter for adapter in adapters.values() for service in adapter.services}
