"""Retrying failed records: the records that failed or went missing, cut into new shards.

:func:`~asyncjobs.records.results.write_results` writes a line's failed and missing
records, as uploaded (record ids included), to a retry file. :func:`plan_retry` cuts that
file like any records file, into shard specs ``<line id>/retry<N>/00001``... whose input
keys sit beside the line's own shards, so ``--retry-failed-records N`` submits them as
ordinary jobs, and the next :func:`write_results` (given the retry shards too) keeps a
record's success from whichever attempt gave it.

**Fewer than the minimum left** (Bedrock refuses a job under 100 records): they are not
retried, and stay failed in the results, reported as such (:attr:`RetryPlan.unsent`).
The alternatives were rejected: padding with records that succeeded pays for them again
and gives them a second output; merging with another line's failures is only sound for
lines whose requests are identical but for their input, which the engine cannot assume
(roles, output places, model parameters differ), and would blur which line a record
belongs to.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncjobs.model import Service
from asyncjobs.records.expand import INPUT_PATH, RecordsOptions, ShardSpec, expand_records_line
from asyncjobs.records.reader import record_lines


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """What a retry of one line's failed records submits."""

    specs: list[ShardSpec]
    #: Failed records left out (fewer than the minimum per job): they stay failed.
    unsent: int
    #: Why records were left out, for the display and the log; None when none were.
    reason: str | None = None


def staging_prefix(input_uri: str) -> str:
    """The staging prefix a shard's input key was made under (``<prefix><campaign>/<id>/<file>``)."""
    return input_uri.rsplit("/", 3)[0] + "/"


def plan_retry(
    line_id: str,
    service: Service,
    request: Mapping[str, Any],
    retry_file: str | os.PathLike[str],
    attempt: int,
    options: RecordsOptions,
) -> RetryPlan:
    """The shard specs retrying the records in ``retry_file``, for retry ``attempt`` (1, 2...).

    ``request`` is any of the line's shard requests (its input location is replaced).
    """
    path = os.path.abspath(retry_file)
    failed = sum(1 for _ in record_lines(path, service))
    if failed == 0:
        return RetryPlan([], 0)
    minimum = options.minimum(service)
    if failed < minimum:
        reason = (
            f"{failed} failed records of {line_id!r}, fewer than the minimum of {minimum} per job: "
            "not retried, they stay failed in the results"
        )
        return RetryPlan([], failed, reason)
    template = copy.deepcopy(dict(request))
    target: Any = template
    for key in INPUT_PATH[service][:-1]:
        target = target[key]
    target[INPUT_PATH[service][-1]] = staging_prefix(target[INPUT_PATH[service][-1]])
    specs = expand_records_line(
        f"{line_id}/retry{attempt}",
        service,
        template,
        path,
        base_dir="",
        options=options,
        source=f"retry {attempt} of {line_id}",
    )
    return RetryPlan(specs, 0)
