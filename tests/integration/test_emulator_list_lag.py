"""``list_lag``: List operations show every job as it was that many seconds ago; Get/Describe do not.

Expected statuses come from the configured phase durations (fixed (n, n) ranges, so
nothing is drawn) and a fake clock that only moves when told to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tests.conftest import (
    SOLUTION_VERSION,
    FakeClock,
    MakeEmulator,
    aws_client,
    bedrock_job,
    personalize_job,
    segment_job,
)

#: Bedrock with bedrock_phase_seconds=(1, 1) and job_seconds=(10, 10): Submitted at +0,
#: Validating at +1, Scheduled at +2, InProgress at +3, Completed at +13.
BEDROCK_TIMING: dict[str, Any] = {"bedrock_phase_seconds": (1, 1), "job_seconds": (10, 10)}
#: Personalize with personalize_pending_seconds=(2, 2) and job_seconds=(10, 10):
#: CREATE PENDING at +0, CREATE IN_PROGRESS at +2, ACTIVE at +12.
PERSONALIZE_TIMING: dict[str, Any] = {"personalize_pending_seconds": (2, 2), "job_seconds": (10, 10)}


async def _bedrock_list(client: Any, **filters: Any) -> dict[str, dict[str, Any]]:
    result = await client.list_model_invocation_jobs(**filters)
    return {summary["jobName"]: summary for summary in result["invocationJobSummaries"]}


async def test_bedrock_list_shows_jobs_as_they_were_lag_seconds_ago(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, list_lag=5, **BEDROCK_TIMING)
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job("lagged")))["jobArn"]
        # just created: Get knows it, the list does not yet
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["status"] == "Submitted"
        assert await _bedrock_list(client) == {}

        clock.advance(6.5)  # the list shows +1.5, Get shows +6.5
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["status"] == "InProgress"
        listed = await _bedrock_list(client)
        assert listed["lagged"]["status"] == "Validating"
        assert listed["lagged"]["lastModifiedTime"] - listed["lagged"]["submitTime"] == timedelta(seconds=1)

        clock.advance(7.5)  # +14: completed; the list shows +9, still running
        job = await client.get_model_invocation_job(jobIdentifier=arn)
        assert job["status"] == "Completed"
        listed = await _bedrock_list(client)
        assert listed["lagged"]["status"] == "InProgress"
        assert "endTime" not in listed["lagged"]
        # the filters see the lagged status too
        assert list(await _bedrock_list(client, statusEquals="InProgress")) == ["lagged"]
        assert await _bedrock_list(client, statusEquals="Completed") == {}

        clock.advance(5)  # the list catches up with the completion
        listed = await _bedrock_list(client)
        assert listed["lagged"]["status"] == "Completed"
        assert listed["lagged"]["endTime"] == job["endTime"]
        assert list(await _bedrock_list(client, statusEquals="Completed")) == ["lagged"]


async def test_a_stopped_bedrock_job_lags_through_stopping_and_stopped(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, list_lag=5, stop_seconds=2, **BEDROCK_TIMING)
    async with aws_client("bedrock", emu.url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job("stopped")))["jobArn"]
        clock.advance(4)  # InProgress since +3
        await client.stop_model_invocation_job(jobIdentifier=arn)  # Stopping at +4, Stopped at +6
        clock.advance(3.5)  # +7.5
        job = await client.get_model_invocation_job(jobIdentifier=arn)
        assert job["status"] == "Stopped"
        assert (await _bedrock_list(client))["stopped"]["status"] == "Scheduled"  # +2.5
        clock.advance(1)  # +8.5: the list shows +3.5, after InProgress, before the stop
        assert (await _bedrock_list(client))["stopped"]["status"] == "InProgress"
        clock.advance(1)  # +9.5: the list shows +4.5
        assert list(await _bedrock_list(client, statusEquals="Stopping")) == ["stopped"]
        clock.advance(2)  # +11.5: the list shows +6.5
        listed = (await _bedrock_list(client))["stopped"]
        assert listed["status"] == "Stopped"
        assert listed["endTime"] == job["endTime"]
        assert listed["endTime"] - listed["submitTime"] == timedelta(seconds=6)


async def test_bedrock_name_and_submit_time_filters_apply_to_the_lagged_view(
    make_emulator: MakeEmulator,
) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, list_lag=10, **BEDROCK_TIMING)
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job("old-one"))
        clock.advance(20)
        await client.create_model_invocation_job(**bedrock_job("new-one"))
        after = datetime.fromtimestamp(clock.now - 30, UTC)  # both were submitted after this
        assert list(await _bedrock_list(client, nameContains="one")) == ["old-one"]
        assert list(await _bedrock_list(client, submitTimeAfter=after)) == ["old-one"]
        clock.advance(10.5)
        assert list(await _bedrock_list(client, nameContains="new")) == ["new-one"]


async def test_personalize_lists_lag_and_describe_does_not(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, list_lag=5, **PERSONALIZE_TIMING)
    async with aws_client("personalize", emu.url) as client:
        created = await client.create_batch_inference_job(**personalize_job("inf"))
        inference = created["batchInferenceJobArn"]
        segment = (await client.create_batch_segment_job(**segment_job("seg")))["batchSegmentJobArn"]

        async def listed() -> dict[str, str]:
            jobs = (await client.list_batch_inference_jobs(solutionVersionArn=SOLUTION_VERSION))[
                "batchInferenceJobs"
            ]
            jobs += (await client.list_batch_segment_jobs())["batchSegmentJobs"]
            return {job["jobName"]: job["status"] for job in jobs}

        async def described() -> dict[str, str]:
            inf = await client.describe_batch_inference_job(batchInferenceJobArn=inference)
            seg = await client.describe_batch_segment_job(batchSegmentJobArn=segment)
            return {"inf": inf["batchInferenceJob"]["status"], "seg": seg["batchSegmentJob"]["status"]}

        assert await listed() == {}
        assert await described() == {"inf": "CREATE PENDING", "seg": "CREATE PENDING"}
        clock.advance(6)  # the lists show +1
        assert await listed() == {"inf": "CREATE PENDING", "seg": "CREATE PENDING"}
        assert await described() == {"inf": "CREATE IN_PROGRESS", "seg": "CREATE IN_PROGRESS"}
        clock.advance(7)  # +13: active; the lists show +8
        assert await described() == {"inf": "ACTIVE", "seg": "ACTIVE"}
        assert await listed() == {"inf": "CREATE IN_PROGRESS", "seg": "CREATE IN_PROGRESS"}
        clock.advance(5)
        assert await listed() == {"inf": "ACTIVE", "seg": "ACTIVE"}


async def test_pages_stay_stable_while_jobs_come_into_view(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, list_lag=2.5)
    async with aws_client("personalize", emu.url) as personalize, aws_client("bedrock", emu.url) as bedrock:
        for index in range(5):  # created at +0 .. +4
            await personalize.create_batch_segment_job(**segment_job(f"seg-{index}"))
            await bedrock.create_model_invocation_job(**bedrock_job(f"job-{index}"))
            clock.advance(1)
        clock.advance(1)  # +6: the lists show +3.5, so jobs 0..3
        first = await personalize.list_batch_segment_jobs(maxResults=2)
        first_bedrock = await bedrock.list_model_invocation_jobs(maxResults=2, sortOrder="Ascending")
        clock.advance(2)  # +8 (shown: +5.5): job 4 comes into view between the pages; job 5 is new
        await personalize.create_batch_segment_job(**segment_job("seg-5"))
        await bedrock.create_model_invocation_job(**bedrock_job("job-5"))
        second = await personalize.list_batch_segment_jobs(maxResults=2, nextToken=first["nextToken"])
        second_bedrock = await bedrock.list_model_invocation_jobs(
            maxResults=2, sortOrder="Ascending", nextToken=first_bedrock["nextToken"]
        )
        third_bedrock = await bedrock.list_model_invocation_jobs(
            maxResults=2, sortOrder="Ascending", nextToken=second_bedrock["nextToken"]
        )
        fresh = await personalize.list_batch_segment_jobs()
    assert [job["jobName"] for job in first["batchSegmentJobs"]] == ["seg-3", "seg-2"]
    assert [job["jobName"] for job in second["batchSegmentJobs"]] == ["seg-1", "seg-0"]
    assert "nextToken" not in second
    names = [
        summary["jobName"]
        for page in (first_bedrock, second_bedrock, third_bedrock)
        for summary in page["invocationJobSummaries"]
    ]
    assert names == ["job-0", "job-1", "job-2", "job-3", "job-4"]  # each once, job-5 not yet
    assert "nextToken" not in third_bedrock
    assert [job["jobName"] for job in fresh["batchSegmentJobs"]] == [f"seg-{i}" for i in (4, 3, 2, 1, 0)]


async def test_lag_scales_with_time_scale(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    # time_scale 0.5 halves every duration: phases of 0.5 s, and a lag of 2 s
    emu = await make_emulator(clock=clock, list_lag=4, time_scale=0.5, **BEDROCK_TIMING)
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job("scaled"))
        clock.advance(1.9)
        assert await _bedrock_list(client) == {}
        clock.advance(0.4)  # +2.3: the list shows +0.3
        assert (await _bedrock_list(client))["scaled"]["status"] == "Submitted"


async def test_lag_set_over_http_and_zero_lists_at_once(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock, **BEDROCK_TIMING)
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job("first"))
        assert (await _bedrock_list(client))["first"]["status"] == "Submitted"  # no lag by default
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{emu.url}/_emulator/config", json={"list_lag": 30}) as response,
        ):
            assert response.status == 200
            assert (await response.json())["list_lag"] == 30
        assert emu.config.list_lag == 30
        assert await _bedrock_list(client) == {}
        clock.advance(31.5)
        assert (await _bedrock_list(client))["first"]["status"] == "Validating"  # as at +1.5
        emu.configure(list_lag=0)
        assert (await _bedrock_list(client))["first"]["status"] == "Completed"  # +31.5
