"""TagResource, UntagResource and ListTagsForResource on jobs of both services.

Orchestrators keep state in job tags: the AWS Step Functions batch sample stores its task token
in ``TaskToken:N`` tags and reads it back with ``ListTagsForResource(resourceARN=...)`` when a job
ends. Tested with aioboto3 and the AWS CLI, as the other conformance tests do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import (
    MakeEmulator,
    aws_client,
    bedrock_job,
    emulator_process,
    personalize_job,
    segment_job,
)
from tests.integration.test_emulator_clients import _aws_async


async def test_bedrock_tags_given_at_create_then_changed(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as bedrock:
        created = await bedrock.create_model_invocation_job(
            **bedrock_job(
                "tagged", tags=[{"key": "team", "value": "search"}, {"key": "stage", "value": "dev"}]
            )
        )
        arn = created["jobArn"]
        listed = await bedrock.list_tags_for_resource(resourceARN=arn)
        assert listed["tags"] == [{"key": "team", "value": "search"}, {"key": "stage", "value": "dev"}]

        token = "AAAA" * 60  # a Step Functions task token, split over TaskToken:N tags
        await bedrock.tag_resource(
            resourceARN=arn,
            tags=[
                {"key": "TaskToken:1", "value": token[:200]},
                {"key": "TaskToken:2", "value": token[200:]},
                {"key": "stage", "value": "prod"},
            ],
        )
        await bedrock.untag_resource(resourceARN=arn, tagKeys=["team", "never-set"])
        tags = {
            tag["key"]: tag["value"]
            for tag in (await bedrock.list_tags_for_resource(resourceARN=arn))["tags"]
        }
    assert tags == {"stage": "prod", "TaskToken:1": token[:200], "TaskToken:2": token[200:]}
    assert tags["TaskToken:1"] + tags["TaskToken:2"] == token


async def test_bedrock_tag_errors(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url, retries=1) as bedrock:
        arn = (
            await bedrock.create_model_invocation_job(
                **bedrock_job("full", tags=[{"key": f"k{index}", "value": "v"} for index in range(150)])
            )
        )["jobArn"]
        missing = arn[:-12] + "zzzzzzzzzzzz"
        for call in (
            bedrock.list_tags_for_resource(resourceARN=missing),
            bedrock.tag_resource(resourceARN=missing, tags=[{"key": "a", "value": "b"}]),
            bedrock.untag_resource(resourceARN=missing, tagKeys=["a"]),
        ):
            with pytest.raises(bedrock.exceptions.ResourceNotFoundException) as caught:
                await call
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(bedrock.exceptions.TooManyTagsException):
            await bedrock.tag_resource(
                resourceARN=arn, tags=[{"key": f"new{index}", "value": "v"} for index in range(51)]
            )
        assert len((await bedrock.list_tags_for_resource(resourceARN=arn))["tags"]) == 150  # unchanged
        with pytest.raises(bedrock.exceptions.ValidationException):
            await bedrock.tag_resource(resourceARN=arn, tags=[{"key": "bad!key", "value": "v"}])
    # a job of another region is not found from this one
    async with aws_client("bedrock", emu.url, region="eu-west-1", retries=1) as elsewhere:
        with pytest.raises(elsewhere.exceptions.ResourceNotFoundException):
            await elsewhere.list_tags_for_resource(resourceARN=arn)


@pytest.mark.parametrize("kind", ["inference", "segment"])
async def test_personalize_tags(make_emulator: MakeEmulator, kind: str) -> None:
    emu = await make_emulator()
    async with aws_client("personalize", emu.url, retries=1) as personalize:
        tags = [{"tagKey": "owner", "tagValue": "recs"}]
        if kind == "inference":
            created = await personalize.create_batch_inference_job(**personalize_job("p-tags", tags=tags))
            arn = created["batchInferenceJobArn"]
        else:
            arn = (await personalize.create_batch_segment_job(**segment_job("p-tags", tags=tags)))[
                "batchSegmentJobArn"
            ]
        assert (await personalize.list_tags_for_resource(resourceArn=arn))["tags"] == tags
        await personalize.tag_resource(resourceArn=arn, tags=[{"tagKey": "TaskToken:1", "tagValue": "tok"}])
        await personalize.untag_resource(resourceArn=arn, tagKeys=["owner"])
        assert (await personalize.list_tags_for_resource(resourceArn=arn))["tags"] == [
            {"tagKey": "TaskToken:1", "tagValue": "tok"}
        ]
        with pytest.raises(personalize.exceptions.ResourceNotFoundException):
            await personalize.list_tags_for_resource(resourceArn=arn.replace("p-tags", "other"))
    # Bedrock refuses a Personalize ARN: its pattern takes only Bedrock resources
    async with aws_client("bedrock", emu.url, retries=1) as bedrock:
        with pytest.raises(bedrock.exceptions.ValidationException):
            await bedrock.list_tags_for_resource(resourceARN=arn)


async def test_tag_calls_spend_no_job_call_budget(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(create_rate=1.0, get_rate=1.0)
    async with aws_client("bedrock", emu.url, retries=1) as bedrock:
        arn = (await bedrock.create_model_invocation_job(**bedrock_job("budget")))["jobArn"]
        for index in range(5):
            await bedrock.tag_resource(resourceARN=arn, tags=[{"key": f"k{index}", "value": "v"}])
            await bedrock.list_tags_for_resource(resourceARN=arn)
        await bedrock.get_model_invocation_job(jobIdentifier=arn)  # its bucket is still full
    assert emu.stats()["throttled_total"] == 0


async def test_tags_survive_a_saved_state(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as bedrock:
        arn = (
            await bedrock.create_model_invocation_job(
                **bedrock_job("kept", tags=[{"key": "a", "value": "1"}])
            )
        )["jobArn"]
        await bedrock.tag_resource(resourceARN=arn, tags=[{"key": "b", "value": "2"}])
    emu.save_state(tmp_path / "state.json")
    restarted = Emulator(emu.config)
    restarted.load_state(tmp_path / "state.json")
    async with restarted, aws_client("bedrock", restarted.url) as bedrock:
        tags: list[dict[str, Any]] = (await bedrock.list_tags_for_resource(resourceARN=arn))["tags"]
    assert tags == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]


async def test_aws_cli_tags_and_s3(tmp_path: Path) -> None:
    async with emulator_process("--create-rate", "0") as emu:
        request = tmp_path / "job.json"
        request.write_text(json.dumps(bedrock_job("cli-tags", tags=[{"key": "TaskToken:1", "value": "abc"}])))
        created = await _aws_async(
            emu.url, "bedrock", "create-model-invocation-job", "--cli-input-json", f"file://{request}"
        )
        assert created.returncode == 0, created.stderr
        arn = json.loads(created.stdout)["jobArn"]
        tagged = await _aws_async(
            emu.url, "bedrock", "tag-resource", "--resource-arn", arn, "--tags", "key=TaskToken:2,value=def"
        )
        assert tagged.returncode == 0, tagged.stderr
        listed = await _aws_async(emu.url, "bedrock", "list-tags-for-resource", "--resource-arn", arn)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["tags"] == [
            {"key": "TaskToken:1", "value": "abc"},
            {"key": "TaskToken:2", "value": "def"},
        ]
        segment = await _aws_async(
            emu.url, "personalize", "create-batch-segment-job", "--job-name", "cli-seg-tags",
            "--solution-version-arn", "arn:aws:personalize:us-east-1:123456789012:solution/s/1",
            "--job-input", "s3DataSource={path=s3://in/x/}", "--job-output", "s3DataDestination={path=s3://out/x/}",
            "--role-arn", "arn:aws:iam::123456789012:role/r", "--tags", "tagKey=owner,tagValue=recs",
        )  # fmt: skip
        assert segment.returncode == 0, segment.stderr
        segment_arn = json.loads(segment.stdout)["batchSegmentJobArn"]
        segment_tags = await _aws_async(
            emu.url, "personalize", "list-tags-for-resource", "--resource-arn", segment_arn
        )
        assert json.loads(segment_tags.stdout)["tags"] == [{"tagKey": "owner", "tagValue": "recs"}]
        # the same endpoint serves the CLI's S3 commands
        local = tmp_path / "prompts.jsonl"
        local.write_text('{"recordId": "r1", "modelInput": {}}\n')
        made = await _aws_async(emu.url, "s3", "mb", "s3://cli-bucket")
        assert made.returncode == 0, made.stderr
        copied = await _aws_async(emu.url, "s3", "cp", str(local), "s3://cli-bucket/staging/prompts.jsonl")
        assert copied.returncode == 0, copied.stderr
        listing = await _aws_async(emu.url, "s3api", "list-objects-v2", "--bucket", "cli-bucket")
        assert [item["Key"] for item in json.loads(listing.stdout)["Contents"]] == ["staging/prompts.jsonl"]
