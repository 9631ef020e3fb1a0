"""Specs as journal rows: the encoding an ingest does before storing anything (no I/O).

The row is ``(id, service, quota_key, request, digest, given_name, job_name, source, ingest,
updated_at)``: the request encoded once (sorted keys) and hashed as those bytes, the job name
of the first attempt derived from the campaign name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import orjson

from ..errors import CampaignError
from ..model import JobSpec, spec_digest
from ..naming import job_name

T = TypeVar("T")

ID, SOURCE, JOB_NAME, QUOTA_KEY, DIGEST = 0, 7, 6, 2, 4


def encode(batch: list[JobSpec], campaign: str, ingest: int) -> list[tuple[Any, ...]]:
    """The rows of ``batch``; raises CampaignError on an id repeated within the batch."""
    rows: list[tuple[Any, ...]] = []
    seen: dict[str, str | None] = {}
    now = time.time()
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    for spec in batch:
        spec_id = spec.id
        if spec_id in seen:
            raise CampaignError(
                f"duplicate id {spec_id!r} (first at {seen[spec_id]})",
                source=spec.source or "<specs>",
                field="id",
            )
        seen[spec_id] = spec.source
        service = str(spec.service)
        raw = dumps(spec.request, option=sort)
        given = spec.request.get("jobName")
        rows.append(
            (
                spec_id,
                service,
                spec.quota_key,
                raw.decode(),
                spec_digest(service, raw),
                given,
                job_name(campaign, spec_id, 1, given if isinstance(given, str) else None),
                spec.source or "<specs>",
                ingest,
                now,
            )
        )
    return rows


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
