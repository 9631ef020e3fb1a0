"""A campaign line with ``records``: one job spec per shard.

::

    {"id": "summaries", "service": "bedrock", "records": "prompts.jsonl",
     "request": {..., "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/staging/"}}}}

expands into :class:`ShardSpec` ``summaries/00001``, ``summaries/00002``... (five digits,
more only past 99,999 shards). The ``/`` is allowed by today's id rules (any printable
string up to 256 characters); it reads as "shard of", and job names slug it away.

Each shard's input is one object under the line's staging prefix (Bedrock's
``inputDataConfig.s3InputDataConfig.s3Uri``, Personalize's ``jobInput.s3DataSource.path``)::

    <prefix><campaign>/<id>/<number>-<sha256 of the shard, 16 hex>.jsonl

The content hash in the key makes the request itself content-addressed: the same file
and options give the same requests (a resumed run and a second worker see the same
specs), a changed file gives different requests, so the journal's ``SpecChanged``
catches it as for any changed spec, and an object a running job reads is never
overwritten with other records. ``<campaign>`` and ``<id>`` are slugs (a hash is added
when slugging altered the id, so ids stay distinct).

A records line gives no ``jobName``: its shards are several jobs, each named by the
engine as any spec without one.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncjobs.errors import CampaignError
from asyncjobs.model import JobSpec, Service
from asyncjobs.naming import campaign_slug, slug
from asyncjobs.records.shards import (
    BEDROCK_MIN_RECORDS,
    DEFAULT_RECORDS_PER_JOB,
    MAX_FILE_BYTES,
    Shard,
    cut_shards,
)


@dataclass(frozen=True, slots=True)
class RecordsOptions:
    """How records lines are expanded (the command's ``--records-per-job`` and friends)."""

    #: The campaign name, part of every shard's key: pass the journal's.
    campaign: str = "campaign"
    records_per_job: int = DEFAULT_RECORDS_PER_JOB
    #: Default: Bedrock's 100; 1 for Personalize, which documents no minimum.
    min_records_per_job: int | None = None
    max_file_bytes: int = MAX_FILE_BYTES

    def minimum(self, service: Service) -> int:
        if self.min_records_per_job is not None:
            return self.min_records_per_job
        return BEDROCK_MIN_RECORDS if service is Service.BEDROCK else 1


@dataclass(frozen=True, slots=True)
class ShardSpec(JobSpec):
    """The spec of one shard's job: a :class:`JobSpec` whose request reads ``input_uri``."""

    shard: Shard = field(kw_only=True)
    #: ``s3://bucket/key`` of the shard's input file (also in ``request``).
    input_uri: str = field(kw_only=True)
    #: The records line's id (``summaries`` for ``summaries/00001``).
    line_id: str = field(kw_only=True)


#: Where each service's request names its input location.
INPUT_PATH: Mapping[Service, tuple[str, ...]] = {
    Service.BEDROCK: ("inputDataConfig", "s3InputDataConfig", "s3Uri"),
    Service.PERSONALIZE: ("jobInput", "s3DataSource", "path"),
    Service.PERSONALIZE_SEGMENT: ("jobInput", "s3DataSource", "path"),
}


def input_location(service: Service) -> str:
    """The request member naming the input, dotted (for messages)."""
    return ".".join(INPUT_PATH[service])


def expand_records_line(
    line_id: str,
    service: Service,
    request: Mapping[str, Any],
    records: str,
    *,
    base_dir: str,
    options: RecordsOptions,
    source: str,
) -> list[ShardSpec]:
    """The shard specs of one records line; :class:`CampaignError` for any problem.

    ``records`` is resolved against ``base_dir`` (the campaign file's folder). ``source``
    is the line's ``file:line``, for messages about the line itself; problems inside the
    records file name that file and its line.
    """
    label, _, lineno = source.rpartition(":")
    at = label or source
    line = int(lineno) if lineno.isdigit() else None
    if not records:
        raise CampaignError("must name a records file", source=at, line=line, field="records")
    if "jobName" in request:
        raise CampaignError(
            "a records line gives no jobName: each of its shards is a job, named by the engine",
            source=at,
            line=line,
            field="request.jobName",
        )
    prefix = _get(request, INPUT_PATH[service])
    if not isinstance(prefix, str) or not prefix.startswith("s3://"):
        field = f"request.{input_location(service)}"
        raise CampaignError("must be an s3:// prefix for the shards", source=at, line=line, field=field)
    if not prefix.endswith("/"):
        prefix += "/"
    path = os.path.abspath(os.path.join(base_dir, records))
    shown = records if os.path.isabs(records) else os.path.normpath(os.path.join(base_dir, records))
    shards = cut_shards(
        path,
        service,
        max_records=options.records_per_job,
        min_records=options.minimum(service),
        max_bytes=options.max_file_bytes,
        label=shown,
    )
    width = max(5, len(str(len(shards))))
    folder = f"{prefix}{campaign_slug(options.campaign)}/{_id_segment(line_id)}/"
    specs = []
    for shard in shards:
        uri = f"{folder}{shard.number:0{width}d}-{shard.sha256[:16]}.jsonl"
        shard_request = copy.deepcopy(dict(request))
        _set(shard_request, INPUT_PATH[service], uri)
        specs.append(
            ShardSpec(
                id=f"{line_id}/{shard.number:0{width}d}",
                service=service,
                request=shard_request,
                source=source,
                shard=shard,
                input_uri=uri,
                line_id=line_id,
            )
        )
    return specs


def _id_segment(line_id: str) -> str:
    """``line_id`` as one S3 key segment: itself when it is a slug, else slug plus a hash."""
    segment = slug(line_id, 64)
    if segment == line_id:
        return segment
    return f"{segment}-{hashlib.sha256(line_id.encode()).hexdigest()[:8]}".lstrip("-")


def _get(request: Mapping[str, Any], path: tuple[str, ...]) -> object:
    value: object = request
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _set(request: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    target = request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
