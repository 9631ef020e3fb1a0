"""A Personalize batch job's data: reading and checking its input, writing its outputs (aws-notes §3).

Input is every object under ``jobInput.s3DataSource.path`` (a prefix); output is ``<file name>.out``
per input file under ``jobOutput.s3DataDestination.path``. The recommendations are fakes,
deterministic in the input: made-up item and user ids, or a ranking input's ``itemList`` re-ranked.
When a job touches S3 at all is in :mod:`.jobdata`. Apart from Bedrock's data: the two formats
share only the :class:`~asyncjobs.emulator.jobdata.Plan` and how a file is written.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from .config import EmulatorConfig
from .jobdata import InputError, Plan, as_folder, in_output_order, input_lines, split_s3_uri, write_output
from .s3 import S3Store

#: Personalize's numResults when the request has none (the console's default).
DEFAULT_NUM_RESULTS = 25


def plan_personalize(store: S3Store, params: dict[str, Any]) -> Plan | None:
    """The plan of a new Personalize job, or None if its input bucket is not in the emulator's S3."""
    path = str(params["jobInput"]["s3DataSource"]["path"])
    location = split_s3_uri(path)
    if location is None or not store.bucket_exists(location[0]):
        return None
    bucket, prefix = location
    out_bucket, out_key = split_s3_uri(str(params["jobOutput"]["s3DataDestination"]["path"])) or ("", "")
    plan = Plan([], bucket, out_bucket, as_folder(out_key))
    try:
        keys = [key for key in store.keys(bucket, prefix) if not key.endswith("/")]
        if not keys:
            raise InputError(f"Input data not found: there are no objects at {path}")
        plan.inputs = [[key, key.rsplit("/", 1)[-1] + ".out"] for key in keys]
        if not store.bucket_exists(out_bucket):
            raise InputError(f"Insufficient privileges for writing data to the output bucket {out_bucket}")
        plan.total = sum(1 for _ in _personalize_lines(store, plan))
    except InputError as exc:
        plan.failure = str(exc)
    return plan


def _personalize_lines(store: S3Store, plan: Plan) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, key, number, raw in input_lines(store, plan, missing="Input data not found: {uri}"):
        try:
            line = orjson.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            raise InputError(
                f"Input data is invalid: s3://{plan.input_bucket}/{key} line {number} is not a JSON object"
            )
        yield index, line


def write_personalize(
    store: S3Store, config: EmulatorConfig, plan: Plan, job_arn: str, segment: bool, num_results: int
) -> None:
    """Write one ``.out`` file per input file of a job that ended ACTIVE."""
    lines: list[list[bytes]] = [[] for _ in plan.inputs]
    try:
        for index, line in _personalize_lines(store, plan):
            seed = f"{config.seed}/{job_arn}/{orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode()}"
            output = (
                _segment_output(line, seed, num_results)
                if segment
                else _inference_output(line, seed, num_results)
            )
            lines[index].append(orjson.dumps(output))
    except InputError:
        return
    for (_key, name), file_lines in zip(plan.inputs, lines, strict=True):
        write_output(store, plan, name, in_output_order(config, job_arn, name, file_lines))


def _inference_output(line: dict[str, Any], seed: str, num_results: int) -> dict[str, Any]:
    rng = random.Random(seed)
    item_list = line.get("itemList")
    if isinstance(item_list, list):  # PERSONALIZED_RANKING: the given items, re-ranked
        items = [str(item) for item in item_list]
        rng.shuffle(items)
    else:
        items = [f"item-{rng.randrange(1_000_000)}" for _ in range(num_results)]
    weights = sorted((rng.random() for _ in items), reverse=True)
    total = sum(weights) or 1.0
    scores = [round(weight / total, 6) for weight in weights]
    return {"input": line, "output": {"recommendedItems": items, "scores": scores}, "error": None}


def _segment_output(line: dict[str, Any], seed: str, num_results: int) -> dict[str, Any]:
    rng = random.Random(seed)
    users = [f"user-{rng.randrange(1_000_000)}" for _ in range(num_results)]
    if "itemAttributes" in line:  # Item-Attribute-Affinity echoes the query, not an input object
        return {"itemAttributes": line["itemAttributes"], "output": {"recommendedUsers": users}}
    return {"input": line, "output": {"recommendedUsers": users}}
