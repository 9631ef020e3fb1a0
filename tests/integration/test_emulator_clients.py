"""Clients not written for this project: sync boto3 (in a thread) and the AWS CLI (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from botocore.config import Config

from tests.conftest import (
    CREDENTIALS,
    FakeClock,
    MakeEmulator,
    bedrock_job,
    emulator_process,
    personalize_job,
    segment_job,
)

AWS = str(Path(sys.executable).with_name("aws"))


def _boto3_session_work(url: str) -> dict[str, Any]:
    """Everything a sync boto3 user would do, in one function run in a worker thread."""
    session = boto3.session.Session(region_name="us-east-1", **CREDENTIALS)
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    bedrock = session.client("bedrock", endpoint_url=url, config=config)
    personalize = session.client("personalize", endpoint_url=url, config=config)
    out: dict[str, Any] = {}
    arn = bedrock.create_model_invocation_job(**bedrock_job("sync-job", clientRequestToken="sync"))["jobArn"]
    out["replayed"] = bedrock.create_model_invocation_job(
        **bedrock_job("sync-job", clientRequestToken="sync")
    )
    out["get"] = bedrock.get_model_invocation_job(jobIdentifier=arn)
    out["pages"] = list(bedrock.get_paginator("list_model_invocation_jobs").paginate())
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    out["stopped"] = bedrock.get_model_invocation_job(jobIdentifier=arn)["status"]
    try:
        bedrock.get_model_invocation_job(jobIdentifier="zzzzzzzzzzzz")
    except bedrock.exceptions.ResourceNotFoundException as exc:
        out["not_found"] = exc.response["Error"]["Code"]
    inference = personalize.create_batch_inference_job(**personalize_job("sync-inf"))["batchInferenceJobArn"]
    segment = personalize.create_batch_segment_job(**segment_job("sync-seg"))["batchSegmentJobArn"]
    out["inference"] = personalize.describe_batch_inference_job(batchInferenceJobArn=inference)
    out["segment"] = personalize.describe_batch_segment_job(batchSegmentJobArn=segment)
    out["inference_list"] = personalize.list_batch_inference_jobs()
    out["segment_list"] = personalize.list_batch_segment_jobs()
    try:
        personalize.create_batch_segment_job(**segment_job("sync-seg"))
    except personalize.exceptions.ResourceAlreadyExistsException as exc:
        out["exists"] = exc.response["Error"]["Code"]
    out["arn"] = arn
    return out


async def test_sync_boto3_in_a_thread(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock)
    out = await anyio.to_thread.run_sync(_boto3_session_work, emu.url)
    assert out["replayed"]["jobArn"] == out["arn"]
    assert out["get"]["jobName"] == "sync-job"
    assert out["get"]["submitTime"].timestamp() == pytest.approx(clock.now)
    assert [s["jobArn"] for page in out["pages"] for s in page["invocationJobSummaries"]] == [out["arn"]]
    assert out["stopped"] == "Stopping"
    assert out["not_found"] == "ResourceNotFoundException"
    assert out["inference"]["batchInferenceJob"]["jobName"] == "sync-inf"
    assert out["segment"]["batchSegmentJob"]["jobName"] == "sync-seg"
    assert len(out["inference_list"]["batchInferenceJobs"]) == 1
    assert len(out["segment_list"]["batchSegmentJobs"]) == 1
    assert out["exists"] == "ResourceAlreadyExistsException"
    assert emu.stats()["idempotent_replays"] == 1


def _aws(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [AWS, *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _aws_async(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: _aws(url, *args))


async def test_aws_cli_against_a_subprocess_emulator(tmp_path: Path) -> None:
    async with emulator_process("--create-rate", "0", "--seed", "5", "--job-seconds", "30,30") as emu:
        request = tmp_path / "job.json"
        request.write_text(json.dumps(bedrock_job("cli-job", clientRequestToken="cli-token")))
        created = await _aws_async(
            emu.url, "bedrock", "create-model-invocation-job", "--cli-input-json", f"file://{request}"
        )
        assert created.returncode == 0, created.stderr
        arn = json.loads(created.stdout)["jobArn"]

        # independent calls, run side by side (each CLI start takes most of a second)
        commands = {
            "get": ("bedrock", "get-model-invocation-job", "--job-identifier", arn),
            "list": (
                "bedrock", "list-model-invocation-jobs", "--name-contains", "cli",
                "--query", "invocationJobSummaries[].jobName",
            ),
            "missing": ("bedrock", "get-model-invocation-job", "--job-identifier", "a" * 12),
            "invalid": ("bedrock", "list-model-invocation-jobs", "--max-results", "5000"),
            "segment": (
                "personalize", "create-batch-segment-job", "--job-name", "cli-seg",
                "--solution-version-arn", "arn:aws:personalize:us-east-1:123456789012:solution/s/1",
                "--job-input", "s3DataSource={path=s3://in/x/}",
                "--job-output", "s3DataDestination={path=s3://out/x/}",
                "--role-arn", "arn:aws:iam::123456789012:role/r", "--num-results", "10",
            ),
        }  # fmt: skip
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        async def run(key: str) -> None:
            results[key] = await _aws_async(emu.url, *commands[key])

        async with anyio.create_task_group() as tg:
            for key in commands:
                tg.start_soon(run, key)

        assert results["get"].returncode == 0, results["get"].stderr
        job = json.loads(results["get"].stdout)
        assert job["jobArn"] == arn
        assert job["clientRequestToken"] == "cli-token"
        assert job["status"] in {"Submitted", "Validating", "Scheduled", "InProgress"}
        assert job["submitTime"].startswith("20")  # the CLI prints the parsed timestamp again
        assert json.loads(results["list"].stdout) == ["cli-job"]
        assert results["missing"].returncode != 0
        assert "ResourceNotFoundException" in results["missing"].stderr
        assert results["invalid"].returncode != 0
        assert "ValidationException" in results["invalid"].stderr
        assert results["segment"].returncode == 0, results["segment"].stderr
        segment_arn = json.loads(results["segment"].stdout)["batchSegmentJobArn"]

        stopped = await _aws_async(emu.url, "bedrock", "stop-model-invocation-job", "--job-identifier", arn)
        described = await _aws_async(
            emu.url, "personalize", "describe-batch-segment-job", "--batch-segment-job-arn", segment_arn
        )
        assert stopped.returncode == 0, stopped.stderr
        segment = json.loads(described.stdout)["batchSegmentJob"]
        assert segment["numResults"] == 10
        assert segment["status"] in {"CREATE PENDING", "CREATE IN_PROGRESS"}

        stats = await anyio.to_thread.run_sync(emu.stats)
        assert stats["jobs_created"] == {"bedrock": 1, "personalize": 0, "personalize-segment": 1}
        assert set(stats["jobs_by_status"]["bedrock"]) <= {"Stopping", "Stopped"}
        assert stats["requests"]["StopModelInvocationJob"] == 1
