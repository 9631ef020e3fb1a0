"""Personalize batch inference and batch segment jobs through the real aioboto3 client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import anyio
import boto3
import pytest
from botocore.config import Config

from tests.conftest import (
    CREDENTIALS,
    SOLUTION_VERSION,
    FakeClock,
    MakeEmulator,
    aws_client,
    personalize_job,
    segment_job,
)

INFERENCE_ARN = "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/"
SEGMENT_ARN = "arn:aws:personalize:us-east-1:123456789012:batch-segment-job/"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd"
FILTER = "arn:aws:personalize:us-east-1:123456789012:filter/no-watched"


async def test_describe_echoes_every_member(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock)
    request = personalize_job(
        "themes-1",
        filterArn=FILTER,
        numResults=50,
        jobInput={"s3DataSource": {"path": "s3://in/users/", "kmsKeyArn": KMS}},
        jobOutput={"s3DataDestination": {"path": "s3://out/recs/", "kmsKeyArn": KMS}},
        batchInferenceJobConfig={"itemExplorationConfig": {"explorationWeight": "0.3"}},
        batchInferenceJobMode="THEME_GENERATION",
        themeGenerationConfig={"fieldsForThemeGeneration": {"itemName": "TITLE"}},
        tags=[{"tagKey": "team", "tagValue": "recs"}],
    )
    async with aws_client("personalize", emu.url) as client:
        arn = (await client.create_batch_inference_job(**request))["batchInferenceJobArn"]
        job = (await client.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
    assert arn == INFERENCE_ARN + "themes-1"
    for member in (
        "jobName",
        "solutionVersionArn",
        "filterArn",
        "numResults",
        "jobInput",
        "jobOutput",
        "roleArn",
        "batchInferenceJobConfig",
        "batchInferenceJobMode",
        "themeGenerationConfig",
    ):
        assert job[member] == request[member], member
    assert "tags" not in job
    assert job["batchInferenceJobArn"] == arn
    assert job["status"] == "CREATE PENDING"
    created = datetime.fromtimestamp(clock.now, UTC)
    assert isinstance(job["creationDateTime"], datetime)
    assert abs(job["creationDateTime"] - created) < timedelta(milliseconds=1)
    assert job["lastUpdatedDateTime"] == job["creationDateTime"]
    assert "failureReason" not in job


async def test_describe_fills_documented_defaults(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("personalize", emu.url) as client:
        arn = (await client.create_batch_inference_job(**personalize_job()))["batchInferenceJobArn"]
        job = (await client.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
    assert job["batchInferenceJobMode"] == "BATCH_INFERENCE"
    assert job["numResults"] == 25
    assert "filterArn" not in job


async def test_lifecycle_to_active_and_failed(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, personalize_pending_seconds=(2, 2), job_seconds=(5, 5))
    async with aws_client("personalize", emu.url) as client:
        arn = (await client.create_batch_segment_job(**segment_job("seg-ok")))["batchSegmentJobArn"]
        statuses = []
        for _ in range(3):
            job = (await client.describe_batch_segment_job(batchSegmentJobArn=arn))["batchSegmentJob"]
            statuses.append(job["status"])
            clock.advance(3)
        job = (await client.describe_batch_segment_job(batchSegmentJobArn=arn))["batchSegmentJob"]
        assert statuses == ["CREATE PENDING", "CREATE IN_PROGRESS", "CREATE IN_PROGRESS"]
        assert job["status"] == "ACTIVE"
        assert job["lastUpdatedDateTime"] - job["creationDateTime"] == timedelta(seconds=7)
        assert "batchInferenceJobMode" not in job

        emu.configure(
            fail_rate=1.0, personalize_pending_status="PENDING", personalize_running_status="IN PROGRESS"
        )
        arn = (await client.create_batch_inference_job(**personalize_job("inf-bad")))["batchInferenceJobArn"]
        first = (await client.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
        clock.advance(3)
        second = (await client.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
        clock.advance(10)
        failed = (await client.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
    assert (first["status"], second["status"]) == ("PENDING", "IN PROGRESS")
    assert failed["status"] == "CREATE FAILED"
    assert failed["failureReason"]
    records = {record["jobName"]: record for record in emu.jobs()}
    assert records["seg-ok"]["start_time"] - records["seg-ok"]["submit_time"] == pytest.approx(2)
    assert records["inf-bad"]["end_time"] - records["inf-bad"]["submit_time"] == pytest.approx(7)


async def test_repeated_name_already_exists(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("personalize", emu.url) as client:
        await client.create_batch_inference_job(**personalize_job("nightly"))
        with pytest.raises(client.exceptions.ResourceAlreadyExistsException) as info:
            await client.create_batch_inference_job(**personalize_job("nightly"))
        # the kinds are separate resources: a segment job may share the name
        await client.create_batch_segment_job(**segment_job("nightly"))
        with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
            await client.create_batch_segment_job(**segment_job("nightly"))
    assert INFERENCE_ARN + "nightly" in info.value.response["Error"]["Message"]
    stats = emu.stats()
    assert stats["already_exists"] == 2
    assert stats["jobs_created"] == {"bedrock": 0, "personalize": 1, "personalize-segment": 1}
    assert stats["duplicate_jobs"] == 0


async def test_not_found(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("personalize", emu.url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.describe_batch_inference_job(batchInferenceJobArn=INFERENCE_ARN + "missing")
        arn = (await client.create_batch_segment_job(**segment_job("seg")))["batchSegmentJobArn"]
        with pytest.raises(client.exceptions.ResourceNotFoundException):  # the wrong kind
            await client.describe_batch_inference_job(batchInferenceJobArn=arn)
    async with aws_client("personalize", emu.url, region="eu-west-1") as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):  # another region's job
            await client.describe_batch_segment_job(batchSegmentJobArn=arn)
        assert (await client.list_batch_segment_jobs())["batchSegmentJobs"] == []


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"jobName": "-starts-with-dash"}, "jobName"),
        ({"roleArn": "arn:aws:iam::12:role/x"}, "roleArn"),
        ({"batchInferenceJobMode": "REALTIME"}, "batchInferenceJobMode"),
        ({"jobInput": {"s3DataSource": {"path": "ftp://bucket/in/"}}}, "jobInput.s3DataSource.path"),
        ({"solutionVersionArn": "arn:aws:personalize:" + "x" * 260}, "solutionVersionArn"),
    ],
)
async def test_invalid_input(make_emulator: MakeEmulator, overrides: dict[str, object], path: str) -> None:
    emu = await make_emulator()
    async with aws_client("personalize", emu.url) as client:
        with pytest.raises(client.exceptions.InvalidInputException) as info:
            await client.create_batch_inference_job(**personalize_job(**overrides))
        with pytest.raises(client.exceptions.InvalidInputException, match="maxResults"):
            await client.list_batch_segment_jobs(maxResults=101)
    message = info.value.response["Error"]["Message"]
    assert f"at '{path}' failed to satisfy constraint: Member must" in message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emu.stats()["jobs_total"] == 0


async def test_paginators_and_solution_version_filter(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, personalize_max_running=100)
    other_version = SOLUTION_VERSION.replace("abcdef12", "99999999")
    async with aws_client("personalize", emu.url) as client:
        for index in range(12):
            version = SOLUTION_VERSION if index % 3 else other_version
            await client.create_batch_inference_job(
                **personalize_job(f"inf-{index}", solutionVersionArn=version)
            )
            await client.create_batch_segment_job(**segment_job(f"seg-{index}"))
            clock.advance(1)
        paginator = client.get_paginator("list_batch_inference_jobs")
        pages = [page async for page in paginator.paginate(PaginationConfig={"PageSize": 5})]
        filtered = [
            job["jobName"]
            async for page in paginator.paginate(
                solutionVersionArn=other_version, PaginationConfig={"PageSize": 2}
            )
            for job in page["batchInferenceJobs"]
        ]
        segments = [
            job["jobName"]
            async for page in client.get_paginator("list_batch_segment_jobs").paginate()
            for job in page["batchSegmentJobs"]
        ]
        with pytest.raises(client.exceptions.InvalidNextTokenException):
            await client.list_batch_inference_jobs(nextToken="not-a-token")
    assert [len(page["batchInferenceJobs"]) for page in pages] == [5, 5, 2]
    assert "nextToken" not in pages[-1]
    names = [job["jobName"] for page in pages for job in page["batchInferenceJobs"]]
    assert names == [f"inf-{index}" for index in reversed(range(12))]
    assert filtered == ["inf-9", "inf-6", "inf-3", "inf-0"]
    assert segments == [f"seg-{index}" for index in reversed(range(12))]
    summary = pages[0]["batchInferenceJobs"][0]
    assert set(summary) == {
        "batchInferenceJobArn",
        "jobName",
        "status",
        "creationDateTime",
        "lastUpdatedDateTime",
        "solutionVersionArn",
        "batchInferenceJobMode",
    }
    assert isinstance(summary["creationDateTime"], datetime)


async def test_concurrent_job_limit_per_kind_and_region(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, personalize_max_running=2)
    async with aws_client("personalize", emu.url, retries=1) as client:
        await client.create_batch_inference_job(**personalize_job("a"))
        await client.create_batch_inference_job(**personalize_job("b"))
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            await client.create_batch_inference_job(**personalize_job("c"))
        await client.create_batch_segment_job(**segment_job("s"))  # a separate quota
        async with aws_client("personalize", emu.url, region="eu-west-1") as eu:
            await eu.create_batch_inference_job(**personalize_job("c"))  # and per region
        clock.advance(60)
        await client.create_batch_inference_job(**personalize_job("c"))
    message = info.value.response["Error"]["Message"]
    assert message == (
        "The limit of 2 active batch inference jobs (CREATE PENDING or CREATE IN_PROGRESS) has been reached"
    )
    assert "rate" not in message.lower() and "per second" not in message
    stats = emu.stats()
    assert stats["quota_rejections"] == {"CreateBatchInferenceJob": 1}
    assert stats["peak_running"] == {
        "personalize:us-east-1:batch-inference": 2,
        "personalize:us-east-1:batch-segment": 1,
        "personalize:eu-west-1:batch-inference": 1,
    }


async def test_rate_limit_is_limit_exceeded_about_the_rate(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, create_rate=1.0, get_rate=1.0)
    async with aws_client("personalize", emu.url, retries=1) as client:
        arn = (await client.create_batch_inference_job(**personalize_job("a")))["batchInferenceJobArn"]
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            await client.create_batch_segment_job(**segment_job("b"))  # one create bucket per service
        await client.describe_batch_inference_job(batchInferenceJobArn=arn)
        with pytest.raises(client.exceptions.LimitExceededException):
            await client.describe_batch_inference_job(batchInferenceJobArn=arn)
        clock.advance(1)
        await client.create_batch_segment_job(**segment_job("b"))
    message = info.value.response["Error"]["Message"]
    assert message == "Rate exceeded: too many requests per second"
    assert not {"active", "concurrent", "jobs"} & set(message.lower().split())
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emu.stats()["throttled"] == {"CreateBatchSegmentJob": 1, "DescribeBatchInferenceJob": 1}


def _limit_messages(url: str, clock: FakeClock) -> tuple[str, str]:
    """With a sync boto3 client: the message of a rate throttle, then of a full running-jobs quota."""
    session = boto3.session.Session(region_name="us-east-1", **CREDENTIALS)
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    client = session.client("personalize", endpoint_url=url, config=config)
    client.create_batch_inference_job(**personalize_job("a"))
    with pytest.raises(client.exceptions.LimitExceededException) as rate:
        client.create_batch_inference_job(**personalize_job("b"))  # no create token left
    clock.advance(1)  # a token again, but "a" still holds the only slot
    with pytest.raises(client.exceptions.LimitExceededException) as quota:
        client.create_batch_inference_job(**personalize_job("b"))
    return rate.value.response["Error"]["Message"], quota.value.response["Error"]["Message"]


async def test_limit_message_is_the_text_of_both_limit_exceeded_cases(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    text = "Limit exceeded for this account. Try again later."
    knobs = {"create_rate": 1.0, "personalize_max_running": 1, "job_seconds": (600, 600)}
    emu = await make_emulator(clock=clock, limit_message=text, **knobs)
    rate, quota = await anyio.to_thread.run_sync(_limit_messages, emu.url, clock)
    assert rate == quota == text
    stats = emu.stats()  # and they really were the two different limits
    assert stats["throttled"] == {"CreateBatchInferenceJob": 1}
    assert stats["quota_rejections"] == {"CreateBatchInferenceJob": 1}

    default_clock = FakeClock()
    default = await make_emulator(clock=default_clock, **knobs)
    rate, quota = await anyio.to_thread.run_sync(_limit_messages, default.url, default_clock)
    assert rate == "Rate exceeded: too many requests per second"
    assert quota.startswith("The limit of 1 active batch inference jobs")


async def test_limit_message_set_and_cleared_over_http(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(create_rate=1.0)

    async def configure(message: str | None) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{emu.url}/_emulator/config", json={"limit_message": message}) as response,
        ):
            assert response.status == 200
            assert (await response.json())["limit_message"] == message

    async with aws_client("personalize", emu.url, retries=1) as client:
        await configure("Slow down")  # (setting the config refills the rate buckets)
        await client.create_batch_segment_job(**segment_job("a"))
        with pytest.raises(client.exceptions.LimitExceededException, match="Slow down"):
            await client.create_batch_segment_job(**segment_job("b"))
        await configure(None)
        await client.create_batch_segment_job(**segment_job("b"))
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            await client.create_batch_segment_job(**segment_job("c"))
    assert info.value.response["Error"]["Message"] == "Rate exceeded: too many requests per second"
