"""Records end to end against the emulator's one endpoint: records in, one result per record out.

A records file is expanded, its shards uploaded to the emulator's S3 by the library, one
Bedrock (or Personalize) job created per shard with aioboto3, and the outputs the emulated jobs
write are joined back. Expected values come from the records the test writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.campaign import read_campaign
from asyncjobs.records import (
    RecordsOptions,
    ShardOutput,
    ShardSpec,
    output_locations,
    upload_shard,
    write_results,
)
from asyncjobs.records.results import iter_result_lines
from tests.conftest import ROLE, SOLUTION_VERSION, FakeClock, MakeEmulator, aws_client

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
LATER = 60.0  # past the end of any fast_config job


@pytest.fixture
async def emulated(make_emulator: MakeEmulator) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def make(**knobs: Any) -> tuple[FakeClock, Any, Any, Any]:
            clock = FakeClock()
            emu = await make_emulator(clock=clock, **knobs)
            clients = [
                await stack.enter_async_context(aws_client(s, emu.url))
                for s in ("s3", "bedrock", "personalize")
            ]
            for bucket in ("records-in", "records-out"):
                await clients[0].create_bucket(Bucket=bucket)
            return clock, *clients

        yield make


def _campaign(folder: Path, line: dict[str, Any], options: RecordsOptions) -> list[ShardSpec]:
    (folder / "campaign.jsonl").write_text(json.dumps(line) + "\n")
    specs = list(read_campaign(folder / "campaign.jsonl", records=options))
    assert all(isinstance(s, ShardSpec) for s in specs)
    return [s for s in specs if isinstance(s, ShardSpec)]


async def test_bedrock_records_in_results_out(tmp_path: Path, emulated: Any) -> None:
    clock, s3, bedrock, _ = await emulated(record_error_rate=0.1, output_order="shuffled")
    prompts = [f"Summarise document {i}" for i in range(1, 451)]
    records = [{"modelInput": {"messages": [{"role": "user", "content": p}]}} for p in prompts]
    for i, record in enumerate(records):
        if i % 4:
            record["recordId"] = f"DOC{i:04d}"
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    request = {
        "roleArn": ROLE,
        "modelId": MODEL,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://records-in/staging/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://records-out/results/"}},
    }
    line = {"id": "summaries", "service": "bedrock", "records": "prompts.jsonl", "request": request}
    specs = _campaign(tmp_path, line, RecordsOptions(campaign="e2e", records_per_job=200))
    assert [s.shard.records for s in specs] == [150, 150, 150]

    outputs = []
    for number, spec in enumerate(specs, start=1):
        assert (await upload_shard(s3, spec.shard, spec.service, spec.input_uri)).uploaded
        created = await bedrock.create_model_invocation_job(jobName=f"e2e-{number}", **spec.request)
        arn = created["jobArn"]
        out, manifest = output_locations(spec.service, spec.request, spec.input_uri, arn)
        outputs.append((arn, ShardOutput(spec.id, spec.service, spec.shard, out, manifest)))
    clock.advance(LATER)
    for arn, _ in outputs:
        job = await bedrock.get_model_invocation_job(jobIdentifier=arn)
        assert job["status"] in ("Completed", "PartiallyCompleted")

    summary = await write_results(s3, "summaries", [o for _, o in outputs], tmp_path / "out")
    lines = list(iter_result_lines(summary.path))
    expected_ids = [r.get("recordId", f"L{i + 1:010d}") for i, r in enumerate(records)]
    assert [line["recordId"] for line in lines] == expected_ids  # one per record, in input order
    errors = [line for line in lines if "error" in line]
    assert summary.records == 450
    assert summary.failed == len(errors) > 0  # the knob failed about a tenth of them
    assert summary.succeeded == 450 - len(errors)
    for prompt, result in zip(prompts, lines, strict=True):
        if "modelOutput" in result:
            assert prompt in result["modelOutput"]["content"][0]["text"]
    assert summary.tokens["inputTokenCount"] > 0
    assert summary.tokens["outputTokenCount"] > 0


async def test_personalize_records_in_results_out(tmp_path: Path, emulated: Any) -> None:
    clock, s3, _, personalize = await emulated()
    users = [{"userId": str(1000 + i)} for i in range(40)]
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    request = {
        "solutionVersionArn": SOLUTION_VERSION,
        "jobInput": {"s3DataSource": {"path": "s3://records-in/users/"}},
        "jobOutput": {"s3DataDestination": {"path": "s3://records-out/recs/"}},
        "roleArn": ROLE,
    }
    line = {"id": "recs", "service": "personalize", "records": "users.jsonl", "request": request}
    [spec] = _campaign(tmp_path, line, RecordsOptions(campaign="e2e"))
    await upload_shard(s3, spec.shard, spec.service, spec.input_uri)
    arn = (await personalize.create_batch_inference_job(jobName="e2e-recs", **spec.request))[
        "batchInferenceJobArn"
    ]
    clock.advance(LATER)
    job = (await personalize.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
    assert job["status"] == "ACTIVE"
    out, manifest = output_locations(spec.service, spec.request, spec.input_uri, arn)
    summary = await write_results(
        s3, "recs", [ShardOutput(spec.id, spec.service, spec.shard, out, manifest)], tmp_path
    )
    results = list(iter_result_lines(summary.path))
    assert [r["input"] for r in results] == users
    assert (summary.records, summary.succeeded, summary.failed) == (40, 40, 0)
    assert all(r["output"]["recommendedItems"] for r in results)
