"""Records campaigns for command tests: a prompts file, its campaign line, and the emulator's S3
inspected with boto3's own (blocking) client.

The staging bucket is versioned, so every PUT of an object (single or multipart) leaves a
version: :func:`uploads_per_key` counts how many times each shard was sent, independently of
anything asyncjobs reports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.cli import ACCESS_KEY, SECRET
from tests.support.specs import MODEL, ROLE, SOLUTION_VERSION

STAGING = "records-in"
OUTPUTS = "records-out"


def s3_client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def make_buckets(url: str) -> None:
    """The staging bucket (versioned: each upload leaves a version) and the outputs bucket."""
    s3 = s3_client(url)
    for bucket in (STAGING, OUTPUTS):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=STAGING, VersioningConfiguration={"Status": "Enabled"})


def prompts(n: int, *, ids_every: int = 3) -> list[dict[str, Any]]:
    """``n`` Bedrock records; every ``ids_every``-th has no recordId (asyncjobs assigns one)."""
    records = []
    for i in range(n):
        record: dict[str, Any] = {
            "modelInput": {"messages": [{"role": "user", "content": f"Summarise doc {i}"}]}
        }
        if i % ids_every:
            record["recordId"] = f"DOC{i:05d}"
        records.append(record)
    return records


def expected_ids(records: Sequence[dict[str, Any]]) -> list[str]:
    """The record ids in input order: given, or assigned from the 1-based line (``L`` + 10 digits)."""
    return [r.get("recordId", f"L{i + 1:010d}") for i, r in enumerate(records)]


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def bedrock_line(line_id: str = "summaries", records: str = "prompts.jsonl") -> dict[str, Any]:
    return {
        "id": line_id,
        "service": "bedrock",
        "records": records,
        "request": {
            "roleArn": ROLE,
            "modelId": MODEL,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{STAGING}/staging/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{OUTPUTS}/results/"}},
        },
    }


def personalize_line(line_id: str = "recs", records: str = "users.jsonl") -> dict[str, Any]:
    return {
        "id": line_id,
        "service": "personalize",
        "records": records,
        "request": {
            "solutionVersionArn": SOLUTION_VERSION,
            "roleArn": ROLE,
            "jobInput": {"s3DataSource": {"path": f"s3://{STAGING}/users/"}},
            "jobOutput": {"s3DataDestination": {"path": f"s3://{OUTPUTS}/recs/"}},
        },
    }


def staged(url: str, prefix: str = "") -> dict[str, bytes]:
    """The objects under ``prefix`` of the staging bucket, by key."""
    s3 = s3_client(url)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=STAGING, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=STAGING, Key=key)["Body"].read() for key in keys}


def uploads_per_key(url: str) -> dict[str, int]:
    """How many versions (one per PUT or completed multipart upload) each staged key has."""
    s3 = s3_client(url)
    counts: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=STAGING):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def result_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
