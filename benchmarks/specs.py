"""The jobs every scenario submits: the same create requests for asyncjobs and the baselines.

Every request carries its ``jobName``, so asyncjobs (which keeps a given name) and the
baselines create jobs of the same names, and the emulator, which draws a job's durations
from ``(seed, kind, jobName)``, gives each contender the same durations.

The mix cycles over four quota keys: two Bedrock models, and Personalize batch inference
and batch segment jobs of one region.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from asyncjobs.model import JobSpec, Service

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/asyncjobs-bench"
MODELS = ("anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0")
SOLUTION_VERSION = "arn:aws:personalize:us-east-1:123456789012:solution/bench/abcdef12"
KINDS = ("bedrock", "bedrock", "personalize", "personalize-segment")


def request(index: int, prefix: str = "bench") -> tuple[str, dict[str, Any]]:
    """The ``index``-th job: its kind (a :class:`Service` value) and its create call's members."""
    kind = KINDS[index % 4]
    name = f"{prefix}-{index:07d}"
    if kind == "bedrock":
        return kind, {
            "jobName": name,
            "modelId": MODELS[index % 2],
            "roleArn": ROLE,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://bench-in/{name}.jsonl"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bench-out/bedrock/"}},
        }
    return kind, {
        "jobName": name,
        "solutionVersionArn": SOLUTION_VERSION,
        "roleArn": ROLE,
        "jobInput": {"s3DataSource": {"path": f"s3://bench-in/{name}/"}},
        "jobOutput": {"s3DataDestination": {"path": f"s3://bench-out/{name}/"}},
    }


def requests(count: int, prefix: str = "bench") -> list[tuple[str, dict[str, Any]]]:
    return [request(i, prefix) for i in range(count)]


def job_specs(count: int, prefix: str = "bench") -> list[JobSpec]:
    return list(iter_job_specs(count, prefix))


def iter_job_specs(count: int, prefix: str = "bench") -> Iterator[JobSpec]:
    for i in range(count):
        kind, params = request(i, prefix)
        yield JobSpec(f"{prefix}-{i:07d}", Service(kind), params)


def write_campaign(path: Path, count: int, prefix: str = "bench") -> None:
    """A campaign file of ``count`` lines, as ``asyncjobs run`` reads it."""
    with path.open("w") as out:
        for i in range(count):
            kind, params = request(i, prefix)
            out.write(json.dumps({"id": f"{prefix}-{i:07d}", "service": kind, "request": params}) + "\n")


def quota_key(kind: str, params: dict[str, Any]) -> str:
    """The running-jobs quota a job counts against, as the emulator (and AWS) count it."""
    if kind == "bedrock":
        return f"bedrock:{params['modelId']}"
    suffix = "batch-inference" if kind == "personalize" else "batch-segment"
    return f"personalize:{REGION}:{suffix}"
