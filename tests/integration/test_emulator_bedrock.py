"""Bedrock model invocation jobs through the real aioboto3 client."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import MODEL, FakeClock, MakeEmulator, aws_client, bedrock_job, fast_config

ARN_PATTERN = r"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/[a-z0-9]{12}"


async def test_create_get_by_arn_and_id_with_parsed_timestamps(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock)
    vpc = {"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]}
    async with aws_client("bedrock", emu.url) as client:
        created = await client.create_model_invocation_job(
            **bedrock_job(
                "first-job", vpcConfig=vpc, timeoutDurationInHours=24, tags=[{"key": "k", "value": "v"}]
            )
        )
        arn = created["jobArn"]
        assert re.fullmatch(ARN_PATTERN, arn)
        by_arn = await client.get_model_invocation_job(jobIdentifier=arn)
        by_id = await client.get_model_invocation_job(jobIdentifier=arn.rsplit("/", 1)[1])

    for job in (by_arn, by_id):
        job.pop("ResponseMetadata")
    assert by_arn == by_id
    assert by_arn["jobArn"] == arn
    assert by_arn["jobName"] == "first-job"
    assert by_arn["modelId"] == MODEL
    assert by_arn["status"] == "Submitted"
    assert by_arn["vpcConfig"] == vpc
    assert by_arn["timeoutDurationInHours"] == 24
    assert by_arn["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == "s3://input-bucket/batch/"
    assert len(by_arn["clientRequestToken"]) == 36  # botocore's own uuid4 token
    submitted = datetime.fromtimestamp(clock.now, UTC)
    assert isinstance(by_arn["submitTime"], datetime)
    assert abs(by_arn["submitTime"] - submitted) < timedelta(milliseconds=1)
    assert by_arn["lastModifiedTime"] == by_arn["submitTime"]
    assert by_arn["jobExpirationTime"] - by_arn["submitTime"] == timedelta(hours=24)
    assert "endTime" not in by_arn


async def test_get_with_percent_encoded_arn_on_the_wire(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
    encoded = urllib.parse.quote(arn, safe="")
    assert "%2F" in encoded and "%3A" in encoded
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{emu.url}/model-invocation-job/{encoded}", headers=headers) as response,
    ):
        assert response.status == 200
        body = await response.json()
        assert response.headers["x-amzn-RequestId"]
    assert body["jobArn"] == arn
    assert body["submitTime"].endswith("Z")


async def test_lifecycle_follows_the_clock_to_completion(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, job_seconds=(10, 10), bedrock_phase_seconds=(1, 1))
    seen = []
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
        for _ in range(6):
            job = await client.get_model_invocation_job(jobIdentifier=arn)
            seen.append(job["status"])
            clock.advance(1)
        clock.advance(10)
        job = await client.get_model_invocation_job(jobIdentifier=arn)
    assert seen == ["Submitted", "Validating", "Scheduled", "InProgress", "InProgress", "InProgress"]
    assert job["status"] == "Completed"
    assert job["endTime"] - job["submitTime"] == timedelta(seconds=13)
    assert job["lastModifiedTime"] == job["endTime"]
    assert "message" not in job
    record = emu.jobs()[0]
    assert record["start_time"] - record["submit_time"] == pytest.approx(3)
    assert record["end_time"] - record["submit_time"] == pytest.approx(13)


@pytest.mark.parametrize(
    ("knobs", "outcome"),
    [({"fail_rate": 1.0}, "Failed"), ({"partial_rate": 1.0}, "PartiallyCompleted")],
)
async def test_failed_and_partial_outcomes_carry_a_message(
    make_emulator: MakeEmulator, knobs: dict[str, float], outcome: str
) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, **knobs)
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
        clock.advance(60)
        job = await client.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == outcome
    assert job["message"]


async def test_expired_when_not_started_within_the_timeout(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, expire_rate=1.0, time_scale=0.001)
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job(timeoutDurationInHours=24)))["jobArn"]
        clock.advance(60)
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["status"] == "Scheduled"
        clock.advance(24 * 3600 * 0.001)
        job = await client.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Expired"
    assert job["endTime"] <= job["jobExpirationTime"] + timedelta(seconds=1)


async def test_stop_goes_stopping_then_stopped_and_conflicts_when_terminal(
    make_emulator: MakeEmulator,
) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, stop_seconds=2, job_seconds=(10, 10))
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
        clock.advance(0.5)
        await client.stop_model_invocation_job(jobIdentifier=arn)
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["status"] == "Stopping"
        assert emu.stats()["running"] == {f"bedrock:{MODEL}": 1}  # Stopping still holds a slot
        await client.stop_model_invocation_job(jobIdentifier=arn)  # already stopping: no change
        clock.advance(2)
        job = await client.get_model_invocation_job(jobIdentifier=arn)
        assert job["status"] == "Stopped"
        assert job["endTime"] - job["submitTime"] == timedelta(seconds=2.5)
        with pytest.raises(client.exceptions.ConflictException, match="Stopped"):
            await client.stop_model_invocation_job(jobIdentifier=arn)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.stop_model_invocation_job(jobIdentifier="abcdefghijkl")
    assert emu.stats()["running"] == {f"bedrock:{MODEL}": 0}


async def test_unknown_job_is_not_found(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            await client.get_model_invocation_job(jobIdentifier="abcdefghijkl")
        other_region = "arn:aws:bedrock:eu-west-1:123456789012:model-invocation-job/abcdefghijkl"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_model_invocation_job(jobIdentifier=other_region)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize(
    ("overrides", "path", "constraint"),
    [
        ({"jobName": "bad name!"}, "jobName", "regular expression pattern"),
        ({"timeoutDurationInHours": 200}, "timeoutDurationInHours", "less than or equal to 168"),
        (
            {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in/", "s3InputFormat": "CSV"}}},
            "inputDataConfig.s3InputDataConfig.s3InputFormat",
            "enum value set",
        ),
        ({"roleArn": "not-an-arn"}, "roleArn", "regular expression pattern"),
        ({"jobName": "x" * 64}, "jobName", "length less than or equal to 63"),
    ],
)
async def test_server_side_validation(
    make_emulator: MakeEmulator, overrides: dict[str, object], path: str, constraint: str
) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        with pytest.raises(client.exceptions.ValidationException) as info:
            await client.create_model_invocation_job(**bedrock_job(**overrides))
    message = info.value.response["Error"]["Message"]
    assert message.startswith("1 validation error detected: Value ")
    assert f"at '{path}' failed to satisfy constraint: Member must" in message
    assert constraint in message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emu.stats()["jobs_total"] == 0


async def test_list_validation_and_bad_token(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        with pytest.raises(client.exceptions.ValidationException, match="maxResults"):
            await client.list_model_invocation_jobs(maxResults=1001)
        with pytest.raises(client.exceptions.ValidationException, match="statusEquals"):
            await client.list_model_invocation_jobs(statusEquals="Running")
        with pytest.raises(client.exceptions.ValidationException, match="sortOrder"):
            await client.list_model_invocation_jobs(sortOrder="Sideways")
        with pytest.raises(client.exceptions.ValidationException, match="pagination token"):
            await client.list_model_invocation_jobs(nextToken="garbage")
        with pytest.raises(client.exceptions.ValidationException, match="jobIdentifier"):
            await client.get_model_invocation_job(jobIdentifier="UPPERCASE123")


async def test_paginator_pages_through_every_job_once(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock)
    async with aws_client("bedrock", emu.url) as client:
        arns = []
        for index in range(23):
            arns.append((await client.create_model_invocation_job(**bedrock_job(f"job-{index}")))["jobArn"])
            clock.advance(1)
        paginator = client.get_paginator("list_model_invocation_jobs")
        pages = [page async for page in paginator.paginate(PaginationConfig={"PageSize": 5})]
        ascending = [
            summary["jobArn"]
            async for page in paginator.paginate(sortOrder="Ascending", PaginationConfig={"PageSize": 7})
            for summary in page["invocationJobSummaries"]
        ]
    assert [len(page["invocationJobSummaries"]) for page in pages] == [5, 5, 5, 5, 3]
    assert "nextToken" not in pages[-1]
    tokens = [page["nextToken"] for page in pages[:-1]]
    assert len(set(tokens)) == len(tokens)
    newest_first = [s["jobArn"] for page in pages for s in page["invocationJobSummaries"]]
    assert newest_first == arns[::-1]
    assert ascending == arns
    summary = pages[0]["invocationJobSummaries"][0]
    assert isinstance(summary["submitTime"], datetime)
    assert summary["jobName"] == "job-22"


async def test_list_filters(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, job_seconds=(1000, 1000), bedrock_phase_seconds=(0, 0))
    async with aws_client("bedrock", emu.url) as client:
        for name in ("alpha-1", "beta-1", "alpha-2"):
            await client.create_model_invocation_job(**bedrock_job(name))
            clock.advance(60)
        middle = datetime.fromtimestamp(clock.now - 150, UTC)  # between alpha-1 and beta-1
        stop_arn = (await client.list_model_invocation_jobs(nameContains="beta"))["invocationJobSummaries"]
        await client.stop_model_invocation_job(jobIdentifier=stop_arn[0]["jobArn"])

        async def names(**filters: object) -> list[str]:
            result = await client.list_model_invocation_jobs(**filters)
            return [summary["jobName"] for summary in result["invocationJobSummaries"]]

        assert await names(nameContains="alpha") == ["alpha-2", "alpha-1"]
        assert await names(nameContains="alpha", sortBy="CreationTime", sortOrder="Ascending") == [
            "alpha-1",
            "alpha-2",
        ]
        assert await names(submitTimeAfter=middle) == ["alpha-2", "beta-1"]
        assert await names(submitTimeBefore=middle) == ["alpha-1"]
        assert await names(statusEquals="Stopping") == ["beta-1"]
        assert await names(statusEquals="InProgress") == ["alpha-2", "alpha-1"]
        assert await names(statusEquals="Completed") == []


async def test_idempotent_token_replay_returns_the_original_arn(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(bedrock_max_running=1)
    async with aws_client("bedrock", emu.url) as client:
        first = await client.create_model_invocation_job(**bedrock_job(clientRequestToken="token-1"))
        # the quota is full now, but a replay names a job that already holds its slot
        again = await client.create_model_invocation_job(**bedrock_job(clientRequestToken="token-1"))
        assert again["jobArn"] == first["jobArn"]
        with pytest.raises(client.exceptions.ServiceQuotaExceededException):
            await client.create_model_invocation_job(**bedrock_job(clientRequestToken="token-2"))
    stats = emu.stats()
    assert stats["idempotent_replays"] == 1
    assert stats["jobs_total"] == 1
    assert stats["duplicate_jobs"] == 0


@pytest.mark.parametrize(
    ("mode", "error"), [("conflict", "ConflictException"), ("validation", "ValidationException")]
)
async def test_token_mismatch_knob(make_emulator: MakeEmulator, mode: str, error: str) -> None:
    emu = await make_emulator(bedrock_token_mismatch=mode)
    async with aws_client("bedrock", emu.url) as client:
        first = await client.create_model_invocation_job(**bedrock_job(clientRequestToken="t"))
        same = await client.create_model_invocation_job(**bedrock_job(clientRequestToken="t"))
        assert same["jobArn"] == first["jobArn"]
        with pytest.raises(getattr(client.exceptions, error)):
            await client.create_model_invocation_job(**bedrock_job("other", clientRequestToken="t"))
    emu.configure(bedrock_token_mismatch="original")
    async with aws_client("bedrock", emu.url) as client:
        other = await client.create_model_invocation_job(**bedrock_job("other", clientRequestToken="t"))
    assert other["jobArn"] == first["jobArn"]


async def test_same_name_without_the_token_is_a_counted_duplicate(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url) as client:
        first = await client.create_model_invocation_job(**bedrock_job("campaign-7"))
        second = await client.create_model_invocation_job(**bedrock_job("campaign-7"))
        third = await client.create_model_invocation_job(**bedrock_job("campaign-7"))
    assert len({first["jobArn"], second["jobArn"], third["jobArn"]}) == 3
    stats = emu.stats()
    assert stats["duplicate_jobs"] == 2
    assert stats["duplicates"] == {"bedrock/campaign-7": 2}
    assert stats["jobs_created"]["bedrock"] == 3


async def test_running_quota_per_model(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, bedrock_max_running=3)
    async with aws_client("bedrock", emu.url, retries=1) as client:
        for index in range(3):
            await client.create_model_invocation_job(**bedrock_job(f"job-{index}"))
        with pytest.raises(client.exceptions.ServiceQuotaExceededException) as info:
            await client.create_model_invocation_job(**bedrock_job("job-3"))
        other_model = "amazon.nova-lite-v1:0"
        await client.create_model_invocation_job(**bedrock_job("job-4", modelId=other_model))
        clock.advance(60)  # every job has finished: the slots are free again
        await client.create_model_invocation_job(**bedrock_job("job-5"))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "quota of 3 in-progress and submitted" in info.value.response["Error"]["Message"]
    stats = emu.stats()
    assert stats["quota_rejections"] == {"CreateModelInvocationJob": 1}
    assert stats["quota_rejections_total"] == 1
    assert stats["peak_running"] == {f"bedrock:{MODEL}": 3, f"bedrock:{other_model}": 1}
    assert stats["running"] == {f"bedrock:{MODEL}": 1, f"bedrock:{other_model}": 0}


async def test_throttling_is_429_with_the_error_type(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()  # frozen: the bucket never refills
    emu = await make_emulator(clock=clock, get_rate=2.0, create_rate=1.0)
    async with aws_client("bedrock", emu.url, retries=1) as client:
        await client.create_model_invocation_job(**bedrock_job())
        with pytest.raises(client.exceptions.ThrottlingException) as info:
            await client.create_model_invocation_job(**bedrock_job())
        for _ in range(2):
            with pytest.raises(client.exceptions.ResourceNotFoundException):
                await client.get_model_invocation_job(jobIdentifier="abcdefghijkl")
        with pytest.raises(client.exceptions.ThrottlingException):
            await client.get_model_invocation_job(jobIdentifier="abcdefghijkl")
        await client.list_model_invocation_jobs()  # lists have their own bucket
        clock.advance(0.5)  # 2 per second: one token back
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_model_invocation_job(jobIdentifier="abcdefghijkl")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert "Rate exceeded" in response["Error"]["Message"]
    stats = emu.stats()
    assert stats["throttled"] == {"CreateModelInvocationJob": 1, "GetModelInvocationJob": 1}
    assert stats["throttled_total"] == 2


async def test_botocore_retries_a_throttle_then_succeeds(make_emulator: MakeEmulator) -> None:
    # One create token per second and a burst of one: the second create is throttled unless a
    # whole second passes between two calls (not "60 calls faster than 50 per second", which a
    # loaded machine does not always manage), and botocore's backoff waits for the next token.
    emu = await make_emulator(fast_config(create_rate=1.0))
    async with aws_client("bedrock", emu.url, retries=10) as client:
        for index in range(2):
            await client.create_model_invocation_job(**bedrock_job(f"job-{index}"))
    stats = emu.stats()
    assert stats["jobs_total"] == 2
    assert stats["throttled_total"] >= 1


async def test_region_comes_from_the_signature(emulator: Emulator) -> None:
    async with aws_client("bedrock", emulator.url, region="eu-central-1") as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
        assert arn.startswith("arn:aws:bedrock:eu-central-1:123456789012:model-invocation-job/")
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["jobArn"] == arn
    async with aws_client("bedrock", emulator.url, region="us-east-1") as client:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.get_model_invocation_job(jobIdentifier=arn.rsplit("/", 1)[1])
        assert (await client.list_model_invocation_jobs())["invocationJobSummaries"] == []
