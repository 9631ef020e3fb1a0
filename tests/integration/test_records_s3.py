"""Records against a real S3 over HTTP (moto's server): shards uploaded once, results joined in input order.

Until the emulator serves S3 itself, moto's ``ThreadedMotoServer`` runs on a free port;
the library uploads with aioboto3 and the tests inspect the bucket with boto3's own client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from moto.server import ThreadedMotoServer

from asyncjobs.campaign import read_campaign
from asyncjobs.model import Service
from asyncjobs.records import (
    RecordsOptions,
    ShardOutput,
    ShardSpec,
    output_locations,
    plan_retry,
    upload_shard,
    write_results,
)
from asyncjobs.records.results import iter_result_lines
from asyncjobs.records.upload import SHA256_METADATA
from tests.conftest import CREDENTIALS, aws_client

BUCKET = "my-bucket"
ROLE = "arn:aws:iam::123456789012:role/BatchRole"
BEDROCK: dict[str, Any] = {
    "roleArn": ROLE,
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/staging/"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/results/"}},
}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def inspect(s3_url: str) -> Any:
    """boto3's own S3 client, with a fresh bucket."""
    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **CREDENTIALS)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) if _exists(client) else []:
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    if not _exists(client):
        client.create_bucket(Bucket=BUCKET)
    return client


def _exists(client: Any) -> bool:
    return BUCKET in {b["Name"] for b in client.list_buckets()["Buckets"]}


@pytest.fixture
async def s3(s3_url: str) -> AsyncIterator[Any]:
    async with aws_client("s3", s3_url) as client:
        yield client


def _calls(client: Any) -> Counter[str]:
    """Counts of the S3 operations ``client`` sends, through botocore's event hooks."""
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    client.meta.events.register("before-call.s3", count)
    return seen


def _sent_headers(client: Any, operation: str) -> list[dict[str, str]]:
    """The headers of every ``operation`` request ``client`` sends (moto keeps no checksums to ask for)."""
    sent: list[dict[str, str]] = []

    def keep(request: Any, **_: Any) -> None:
        sent.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )

    client.meta.events.register(f"before-send.s3.{operation}", keep)
    return sent


def _prompts(path: Path, count: int, *, pad: int = 0) -> list[dict[str, Any]]:
    records = [
        {"recordId": f"P{i:07d}", "modelInput": {"prompt": f"{i} " + "x" * pad}} for i in range(1, count + 1)
    ]
    for record in records[::3]:
        del record["recordId"]  # every third record gets an assigned id
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _shards(tmp_path: Path, count: int, per_job: int, *, pad: int = 0) -> list[ShardSpec]:
    _prompts(tmp_path / "prompts.jsonl", count, pad=pad)
    line = {"id": "summaries", "service": "bedrock", "records": "prompts.jsonl", "request": BEDROCK}
    (tmp_path / "campaign.jsonl").write_text(json.dumps(line) + "\n")
    options = RecordsOptions(campaign="nightly", records_per_job=per_job)
    specs = list(read_campaign(tmp_path / "campaign.jsonl", records=options))
    assert all(isinstance(s, ShardSpec) for s in specs)
    return [s for s in specs if isinstance(s, ShardSpec)]


def _objects(client: Any, prefix: str) -> dict[str, dict[str, Any]]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: item for item in listing}


async def test_shards_are_uploaded_once_with_their_checksums(tmp_path: Path, inspect: Any, s3: Any) -> None:
    specs = _shards(tmp_path, 1000, 300)
    calls = _calls(s3)
    puts = _sent_headers(s3, "PutObject")
    progress: list[tuple[int, int]] = []
    results = [
        await upload_shard(
            s3, s.shard, s.service, s.input_uri, on_progress=lambda b, r: progress.append((b, r))
        )
        for s in specs
    ]
    assert [r.uploaded for r in results] == [True] * 4
    objects = _objects(inspect, "staging/nightly/summaries/")
    assert len(objects) == 4
    lines_per_object = []
    source = (tmp_path / "prompts.jsonl").read_text().splitlines()
    for spec in specs:
        key = spec.input_uri.removeprefix(f"s3://{BUCKET}/")
        body = inspect.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        lines = body.decode().splitlines()
        lines_per_object.append(len(lines))
        # the shard holds its lines of the file, in order, with the assigned ids filled in
        for line, original in zip(
            lines, source[spec.shard.first_line - 1 : spec.shard.last_line], strict=True
        ):
            record, given = json.loads(line), json.loads(original)
            assert record["modelInput"] == given["modelInput"]
            assert record["recordId"] == given.get("recordId", f"L{source.index(original) + 1:010d}")
        head = inspect.head_object(Bucket=BUCKET, Key=key)
        assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(body).hexdigest()
        assert head["ContentLength"] == len(body) == spec.shard.size
        # S3 is handed the whole object's SHA-256 to verify
        sent = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert any(h.get("x-amz-checksum-sha256") == sent for h in puts)
    assert lines_per_object == [250, 250, 250, 250]
    assert sum(r for _, r in progress) == 1000
    assert sum(b for b, _ in progress) == sum(s.shard.size for s in specs)
    assert calls["PutObject"] == 4

    # a resumed run: every shard is found there with its checksum, nothing is sent again
    before = {k: v["LastModified"] for k, v in _objects(inspect, "staging/").items()}
    calls.clear()
    progress.clear()
    again = [await upload_shard(s3, s.shard, s.service, s.input_uri) for s in specs]
    assert [r.uploaded for r in again] == [False] * 4
    assert calls == Counter({"HeadObject": 4})
    assert {k: v["LastModified"] for k, v in _objects(inspect, "staging/").items()} == before


async def test_an_object_with_other_content_is_replaced(tmp_path: Path, inspect: Any, s3: Any) -> None:
    [spec] = _shards(tmp_path, 100, 300)
    key = spec.input_uri.removeprefix(f"s3://{BUCKET}/")
    inspect.put_object(Bucket=BUCKET, Key=key, Body=b"half an upload", Metadata={SHA256_METADATA: "0" * 64})
    result = await upload_shard(s3, spec.shard, spec.service, spec.input_uri)
    assert result.uploaded
    body = inspect.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == spec.shard.sha256


async def test_a_large_shard_goes_up_in_parts_each_checksummed(tmp_path: Path, inspect: Any, s3: Any) -> None:
    [spec] = _shards(tmp_path, 11_000, 50_000, pad=1000)  # ~11 MB
    assert spec.shard.size > 10 << 20
    calls = _calls(s3)
    creates = _sent_headers(s3, "CreateMultipartUpload")
    parts = _sent_headers(s3, "UploadPart")
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=2)
    await upload_shard(s3, spec.shard, spec.service, spec.input_uri, config=config)
    assert calls["CreateMultipartUpload"] == 1
    assert calls["UploadPart"] == 3
    assert calls["CompleteMultipartUpload"] == 1
    # every part carries its SHA-256 for S3 to check, and the object is declared SHA-256
    assert [c.get("x-amz-checksum-algorithm") for c in creates] == ["SHA256"]
    assert all("x-amz-checksum-sha256" in p or "x-amz-trailer" in p for p in parts)
    key = spec.input_uri.removeprefix(f"s3://{BUCKET}/")
    body = inspect.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == spec.shard.sha256
    assert len(body.splitlines()) == 11_000
    calls.clear()
    assert not (await upload_shard(s3, spec.shard, spec.service, spec.input_uri, config=config)).uploaded
    assert calls == Counter({"HeadObject": 1})


async def test_a_records_file_changed_after_expansion_uploads_nothing(
    tmp_path: Path, inspect: Any, s3: Any
) -> None:
    [spec] = _shards(tmp_path, 100, 300)
    path = tmp_path / "prompts.jsonl"
    path.write_text(path.read_text().replace('"prompt": "50 "', '"prompt": "fifty"'))
    with pytest.raises(Exception, match="lines 1-100 changed since shard 1 was made"):
        await upload_shard(s3, spec.shard, spec.service, spec.input_uri)
    assert _objects(inspect, "staging/") == {}


def _bedrock_outputs(
    spec: ShardSpec, job_id: str, inspect: Any, *, failed: set[int], missing: set[int]
) -> None:
    """A fake Bedrock job's outputs for ``spec``: its input records, shuffled, some failed, some left out."""
    key = spec.input_uri.removeprefix(f"s3://{BUCKET}/")
    records = [
        json.loads(line) for line in inspect.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    ]
    lines = []
    for record in records:
        number = int(record["modelInput"]["prompt"].split()[0])
        if number in missing:
            continue
        if number in failed:
            result = {"error": {"errorCode": 400, "errorMessage": f"bad {number}"}}
        else:
            result = {"modelOutput": {"completion": f"answer {number}"}}
        lines.append(
            json.dumps({"recordId": record["recordId"], "modelInput": record["modelInput"], **result})
        )
    random.Random(job_id).shuffle(lines)
    folder = f"results/{job_id}/"
    inspect.put_object(
        Bucket=BUCKET, Key=f"{folder}{key.rsplit('/', 1)[-1]}.out", Body="\n".join(lines) + "\n"
    )
    manifest = {"totalRecordCount": len(records), "inputTokenCount": 10 * len(records), "outputTokenCount": 3}
    inspect.put_object(Bucket=BUCKET, Key=f"{folder}manifest.json.out", Body=json.dumps(manifest))


def _outputs(specs: list[ShardSpec], job_ids: list[str], *, retry: bool = False) -> list[ShardOutput]:
    outputs = []
    for spec, job_id in zip(specs, job_ids, strict=True):
        arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{job_id}"
        out, manifest = output_locations(spec.service, spec.request, spec.input_uri, arn)
        outputs.append(ShardOutput(spec.id, spec.service, spec.shard, out, manifest, retry=retry))
    return outputs


async def test_results_come_back_one_per_record_in_input_order(tmp_path: Path, inspect: Any, s3: Any) -> None:
    specs = _shards(tmp_path, 600, 300)
    for spec in specs:
        await upload_shard(s3, spec.shard, spec.service, spec.input_uri)
    job_ids = ["aaaaaaaaaaa1", "aaaaaaaaaaa2"]
    failed, missing = {2, 17, 450}, {5, 599}
    for spec, job_id in zip(specs, job_ids, strict=True):
        _bedrock_outputs(spec, job_id, inspect, failed=failed, missing=missing)
    retry_file = tmp_path / "retry1.jsonl"
    summary = await write_results(
        s3, "summaries", _outputs(specs, job_ids), tmp_path / "out", retry_file=retry_file
    )

    assert summary.path == tmp_path / "out" / "summaries.jsonl"
    assert (summary.records, summary.succeeded, summary.failed, summary.missing) == (600, 595, 5, 2)
    assert summary.tokens == {"inputTokenCount": 6000, "outputTokenCount": 6}
    lines = list(iter_result_lines(summary.path))
    expected_ids = [f"P{i:07d}" if (i - 1) % 3 else f"L{i:010d}" for i in range(1, 601)]
    assert [line["recordId"] for line in lines] == expected_ids
    for number, line in enumerate(lines, start=1):
        if number in failed:
            assert line == {
                "recordId": expected_ids[number - 1],
                "error": {"errorCode": 400, "errorMessage": f"bad {number}"},
            }
        elif number in missing:
            assert line == {
                "recordId": expected_ids[number - 1],
                "error": {"errorMessage": "missing from the job's output"},
            }
        else:
            assert line == {
                "recordId": expected_ids[number - 1],
                "modelOutput": {"completion": f"answer {number}"},
            }
    retried = [json.loads(line) for line in retry_file.read_text().splitlines()]
    assert [r["recordId"] for r in retried] == [expected_ids[i - 1] for i in (2, 5, 17, 450, 599)]

    # five failed records are fewer than Bedrock's minimum: they are not retried, and say so
    plan = plan_retry(
        "summaries", Service.BEDROCK, specs[0].request, retry_file, 1, RecordsOptions("nightly")
    )
    assert plan.specs == []
    assert plan.unsent == 5
    assert plan.reason is not None and "fewer than the minimum of 100" in plan.reason


async def test_failed_records_are_retried_and_a_success_wins(tmp_path: Path, inspect: Any, s3: Any) -> None:
    specs = _shards(tmp_path, 400, 400)
    await upload_shard(s3, specs[0].shard, specs[0].service, specs[0].input_uri)
    failed = set(range(1, 151))
    _bedrock_outputs(specs[0], "bbbbbbbbbbb1", inspect, failed=failed, missing=set())
    retry_file = tmp_path / "retry1.jsonl"
    first = await write_results(
        s3, "summaries", _outputs(specs, ["bbbbbbbbbbb1"]), tmp_path / "out", retry_file=retry_file
    )
    assert (first.succeeded, first.failed) == (250, 150)

    options = RecordsOptions(campaign="nightly", records_per_job=400)
    plan = plan_retry("summaries", Service.BEDROCK, specs[0].request, retry_file, 1, options)
    assert plan.unsent == 0
    [retry] = plan.specs
    assert retry.id == "summaries/retry1/00001"
    assert retry.shard.records == 150
    assert retry.input_uri.startswith(f"s3://{BUCKET}/staging/nightly/summaries-retry1-")
    assert (await upload_shard(s3, retry.shard, retry.service, retry.input_uri)).uploaded
    _bedrock_outputs(retry, "bbbbbbbbbbb2", inspect, failed={7}, missing=set())

    outputs = _outputs(specs, ["bbbbbbbbbbb1"]) + _outputs([retry], ["bbbbbbbbbbb2"], retry=True)
    final = await write_results(s3, "summaries", outputs, tmp_path / "out")
    assert (final.records, final.succeeded, final.failed) == (400, 399, 1)
    lines = list(iter_result_lines(final.path))
    assert len(lines) == 400
    assert lines[6]["error"] == {"errorCode": 400, "errorMessage": "bad 7"}
    assert lines[7]["modelOutput"] == {"completion": "answer 8"}


async def test_personalize_records_go_up_and_come_back_by_their_input(
    tmp_path: Path, inspect: Any, s3: Any
) -> None:
    users = [{"userId": str(i)} for i in range(1, 8)]
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    request = {
        "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/abcdef12",
        "jobInput": {"s3DataSource": {"path": f"s3://{BUCKET}/users/"}},
        "jobOutput": {"s3DataDestination": {"path": f"s3://{BUCKET}/recs/"}},
        "roleArn": ROLE,
    }
    line = {"id": "recs", "service": "personalize", "records": "users.jsonl", "request": request}
    (tmp_path / "campaign.jsonl").write_text(json.dumps(line) + "\n")
    [spec] = read_campaign(tmp_path / "campaign.jsonl", records=RecordsOptions(campaign="nightly"))
    assert isinstance(spec, ShardSpec)
    await upload_shard(s3, spec.shard, spec.service, spec.input_uri)
    arn = "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/nightly-recs"
    out, manifest = output_locations(spec.service, spec.request, spec.input_uri, arn)
    assert manifest is None
    lines = [
        json.dumps(
            {"input": u, "output": {"recommendedItems": [u["userId"] + "0"], "scores": [0.5]}, "error": None}
        )
        for u in reversed(users[1:])
    ]
    inspect.put_object(Bucket=BUCKET, Key=out.removeprefix(f"s3://{BUCKET}/"), Body="\n".join(lines))
    summary = await write_results(s3, "recs", [ShardOutput(spec.id, spec.service, spec.shard, out)], tmp_path)
    assert (summary.records, summary.succeeded, summary.missing) == (7, 6, 1)
    results = list(iter_result_lines(summary.path))
    assert results[0] == {
        "input": {"userId": "1"},
        "error": {"errorMessage": "missing from the job's output"},
    }
    assert [r["input"]["userId"] for r in results] == [str(i) for i in range(1, 8)]
    assert results[3]["output"]["recommendedItems"] == ["40"]


async def test_an_upload_cut_short_leaves_no_object_and_the_resume_completes_it(
    tmp_path: Path, inspect: Any, s3: Any
) -> None:
    [spec] = _shards(tmp_path, 11_000, 50_000, pad=1000)
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=1)
    with anyio.CancelScope() as scope:  # the process is stopped once the first part is sent
        await upload_shard(
            s3,
            spec.shard,
            spec.service,
            spec.input_uri,
            config=config,
            on_progress=lambda b, r: scope.cancel(),
        )
    assert scope.cancelled_caught
    key = spec.input_uri.removeprefix(f"s3://{BUCKET}/")
    assert _objects(inspect, "staging/") == {}  # a multipart upload is no object until completed
    calls = _calls(s3)
    assert (await upload_shard(s3, spec.shard, spec.service, spec.input_uri, config=config)).uploaded
    assert calls["CompleteMultipartUpload"] == 1
    body = inspect.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == spec.shard.sha256
    assert len(body.splitlines()) == 11_000
