"""The server around the services: auth, faults, introspection, determinism, ways to run it."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import botocore.exceptions
import pytest

from asyncjobs.emulator import Emulator, EmulatorConfig, EmulatorStateError
from tests.conftest import (
    MODEL,
    FakeClock,
    MakeEmulator,
    aws_client,
    bedrock_job,
    fast_config,
    personalize_job,
)


async def _raw(method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


async def test_no_authorization_header_is_access_denied(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    status, headers, body = await _raw("GET", f"{emu.url}/model-invocation-job/abcdefghijkl")
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert headers["x-amzn-RequestId"]
    assert body["message"]
    status, headers, body = await _raw(
        "POST",
        f"{emu.url}/",
        headers={"X-Amz-Target": "AmazonPersonalize.ListBatchInferenceJobs"},
        data=b"{}",
    )
    assert status == 403
    assert body["__type"] == "AccessDeniedException"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert emu.stats()["jobs_total"] == 0


async def test_unknown_operation_and_bad_body(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/personalize/aws4_request"}
    status, _, body = await _raw(
        "POST",
        f"{emu.url}/",
        headers={**auth, "X-Amz-Target": "AmazonPersonalize.DeleteEverything"},
        data=b"{}",
    )
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    target = {**auth, "X-Amz-Target": "AmazonPersonalize.CreateBatchInferenceJob"}
    status, _, body = await _raw("POST", f"{emu.url}/", headers=target, data=b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, _, body = await _raw(
        "POST", f"{emu.url}/", headers=target, data=json.dumps({"jobName": "x"}).encode()
    )
    assert (status, body["__type"]) == (400, "InvalidInputException")
    assert "at 'solutionVersionArn'" in body["message"]
    status, headers, _ = await _raw("DELETE", f"{emu.url}/model-invocation-job/abcdefghijkl", headers=auth)
    assert (status, headers["x-amzn-ErrorType"]) == (404, "UnknownOperationException")


async def test_injected_errors_are_modeled_and_retried(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(error_rate=1.0)
    async with aws_client("bedrock", emu.url, retries=1) as client:
        with pytest.raises(client.exceptions.InternalServerException) as info:
            await client.list_model_invocation_jobs()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    async with aws_client("personalize", emu.url, retries=2) as client:
        with pytest.raises(botocore.exceptions.ClientError) as failure:
            await client.list_batch_inference_jobs()
    response = failure.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["ResponseMetadata"]["RetryAttempts"] == 1  # botocore treats it as transient
    stats = emu.stats()
    assert stats["faults"]["error"] == 3
    assert stats["requests"] == {"ListModelInvocationJobs": 1, "ListBatchInferenceJobs": 2}


async def test_dropped_connections_before_and_after_the_create(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(drop_rate=1.0, seed=3)
    async with aws_client("bedrock", emu.url, retries=1) as client:
        for index in range(20):
            with pytest.raises(botocore.exceptions.ConnectionClosedError):
                await client.create_model_invocation_job(**bedrock_job(f"job-{index}"))
        emu.configure(drop_rate=0.0)
        listed = await client.list_model_invocation_jobs()
    stats = emu.stats()
    faults = stats["faults"]
    assert faults["drop_before"] + faults["drop_after"] == 20
    assert faults["drop_before"] > 0 and faults["drop_after"] > 0
    # a drop after the work: the job exists although the client never heard of it
    assert stats["jobs_total"] == faults["drop_after"] == len(listed["invocationJobSummaries"])


async def test_latency_is_added_without_breaking_requests(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(latency=(0.01, 0.02))
    async with aws_client("personalize", emu.url) as client:
        arn = (await client.create_batch_inference_job(**personalize_job()))["batchInferenceJobArn"]
        await client.describe_batch_inference_job(batchInferenceJobArn=arn)
    assert emu.stats()["jobs_total"] == 1


async def test_introspection_over_http_matches_python(make_emulator: MakeEmulator) -> None:
    clock = FakeClock()
    emu = await make_emulator(clock=clock)
    async with aws_client("bedrock", emu.url) as client:
        await client.create_model_invocation_job(**bedrock_job(clientRequestToken="tok"))
    _, _, stats = await _raw("GET", f"{emu.url}/_emulator/stats")
    _, _, jobs = await _raw("GET", f"{emu.url}/_emulator/jobs")
    assert stats == emu.stats()
    assert jobs == emu.jobs()
    assert set(stats) >= {
        "requests",
        "throttled",
        "throttled_total",
        "quota_rejections",
        "quota_rejections_total",
        "faults",
        "jobs_created",
        "jobs_total",
        "duplicate_jobs",
        "duplicates",
        "idempotent_replays",
        "already_exists",
        "peak_running",
        "running",
        "jobs_by_status",
    }
    assert stats["jobs_by_status"]["bedrock"] == {"Submitted": 1}
    (job,) = jobs
    assert job["kind"] == "bedrock"
    assert job["quota_key"] == f"bedrock:{MODEL}"
    assert job["client_request_token"] == "tok"
    assert job["submit_time"] == clock.now
    assert job["start_time"] is None and job["end_time"] is None


async def test_configure_over_http_and_reset(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    status, _, config = await _raw(
        "POST", f"{emu.url}/_emulator/config", json={"create_rate": 0.5, "latency": [0, 0]}
    )
    assert status == 200
    assert config["create_rate"] == 0.5
    assert emu.config.create_rate == 0.5
    status, _, error = await _raw("POST", f"{emu.url}/_emulator/config", json={"fail_rate": 2})
    assert status == 400 and "fail_rate" in error["message"]
    status, _, error = await _raw("POST", f"{emu.url}/_emulator/config", json={"no_such_knob": 1})
    assert status == 400 and "no_such_knob" in error["message"]
    _, _, config = await _raw("GET", f"{emu.url}/_emulator/config")
    assert config["create_rate"] == 0.5
    async with aws_client("bedrock", emu.url, retries=1) as client:
        await client.create_model_invocation_job(**bedrock_job())
        with pytest.raises(client.exceptions.ThrottlingException):
            await client.create_model_invocation_job(**bedrock_job())
    assert emu.stats()["jobs_total"] == 1
    status, _, _ = await _raw("POST", f"{emu.url}/_emulator/reset", json={})
    assert status == 200
    assert emu.jobs() == []
    assert emu.stats()["requests"] == {}
    with pytest.raises(ValueError, match="job_seconds"):
        emu.configure(job_seconds=(5, 1))


async def _statuses(config: EmulatorConfig, clock: FakeClock, names: list[str]) -> dict[str, list[str]]:
    """Create Bedrock and Personalize jobs in the order given; poll them all at fixed times."""
    seen: dict[str, list[str]] = {}
    async with (
        Emulator(config) as emu,
        aws_client("bedrock", emu.url) as bedrock,
        aws_client("personalize", emu.url) as personalize,
    ):
        arns = {}
        for name in names:
            arns[f"b/{name}"] = (await bedrock.create_model_invocation_job(**bedrock_job(name)))["jobArn"]
            arns[f"p/{name}"] = (await personalize.create_batch_inference_job(**personalize_job(name)))[
                "batchInferenceJobArn"
            ]
        for _ in range(10):
            for key in sorted(arns):
                if key.startswith("b/"):
                    job = await bedrock.get_model_invocation_job(jobIdentifier=arns[key])
                else:
                    job = (await personalize.describe_batch_inference_job(batchInferenceJobArn=arns[key]))[
                        "batchInferenceJob"
                    ]
                seen.setdefault(key, []).append(job["status"])
            clock.advance(0.5)
    return seen


async def test_same_seed_same_statuses_whatever_the_request_order() -> None:
    names = [f"job-{index}" for index in range(6)]
    knobs = {"job_seconds": (0.5, 4.0), "fail_rate": 0.3, "partial_rate": 0.2, "personalize_max_running": 50}
    first_clock, second_clock, third_clock = FakeClock(), FakeClock(), FakeClock()
    first = await _statuses(fast_config(seed=7, clock=first_clock, **knobs), first_clock, names)
    second = await _statuses(fast_config(seed=7, clock=second_clock, **knobs), second_clock, names[::-1])
    other = await _statuses(fast_config(seed=8, clock=third_clock, **knobs), third_clock, names)
    assert first == second
    assert first != other
    finals = {statuses[-1] for statuses in first.values()}
    assert len(finals) > 1  # the draw really varies between jobs


async def test_started_from_a_task_group() -> None:
    async with anyio.create_task_group() as tg:
        url = await tg.start(Emulator(fast_config()).serve)
        async with aws_client("bedrock", url) as client:
            assert (await client.list_model_invocation_jobs())["invocationJobSummaries"] == []
        tg.cancel_scope.cancel()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _raw("GET", f"{url}/_emulator/stats")


async def test_bind_error_raises_on_enter(emulator: Emulator) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        async with Emulator(port=port):
            pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError):
            await Emulator(port=sock.getsockname()[1]).start()
    with pytest.raises(RuntimeError):
        _ = Emulator().url


async def test_personalize_create_dropped_after_the_work_then_already_exists(
    make_emulator: MakeEmulator,
) -> None:
    emu = await make_emulator(drop_rate=1.0, seed=5, personalize_max_running=100)
    outcomes = []
    async with aws_client("personalize", emu.url, retries=1) as client:
        for index in range(10):
            name = f"nightly-{index}"
            emu.configure(drop_rate=1.0)
            with pytest.raises(botocore.exceptions.ConnectionClosedError):
                await client.create_batch_inference_job(**personalize_job(name))
            existed = any(job["jobName"] == name for job in emu.jobs())
            emu.configure(drop_rate=0.0)
            if existed:  # the retry of a create that happened: the name is taken
                with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
                    await client.create_batch_inference_job(**personalize_job(name))
            else:
                await client.create_batch_inference_job(**personalize_job(name))
            outcomes.append(existed)
    assert any(outcomes) and not all(outcomes)
    stats = emu.stats()
    assert stats["faults"]["drop_after"] == stats["already_exists"] == sum(outcomes)
    assert stats["jobs_created"]["personalize"] == 10


async def test_access_denied_fault_refuses_every_call_in_each_protocols_shape(
    make_emulator: MakeEmulator,
) -> None:
    emu = await make_emulator(auth_fault="access-denied")
    async with aws_client("bedrock", emu.url, retries=1) as client:
        with pytest.raises(client.exceptions.AccessDeniedException) as denied:
            await client.create_model_invocation_job(**bedrock_job())
        with pytest.raises(client.exceptions.AccessDeniedException):
            await client.list_model_invocation_jobs()
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "not authorized to perform: bedrock:CreateModelInvocationJob" in error["Message"]
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    async with aws_client("personalize", emu.url, retries=1) as client:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            await client.create_batch_inference_job(**personalize_job())
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "personalize:CreateBatchInferenceJob" in refused.value.response["Error"]["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # the wire shapes themselves: Bedrock's header, Personalize's __type in a JSON 1.1 body
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/bedrock/aws4_request"}
    status, headers, body = await _raw("GET", f"{emu.url}/model-invocation-jobs", headers=auth)
    assert (status, headers["x-amzn-ErrorType"]) == (403, "AccessDeniedException")
    assert body["message"]
    status, headers, body = await _raw(
        "POST",
        f"{emu.url}/",
        headers={**auth, "X-Amz-Target": "AmazonPersonalize.ListBatchSegmentJobs"},
        data=b"{}",
    )
    assert (status, body["__type"]) == (403, "AccessDeniedException")
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    stats = emu.stats()
    assert stats["jobs_total"] == 0
    assert stats["errors"] == {"AccessDeniedException": 5}


async def test_expired_token_fault_after_n_requests(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator(auth_fault="expired-token", auth_fault_after=2)
    async with (
        aws_client("bedrock", emu.url, retries=1) as bedrock,
        aws_client("personalize", emu.url, retries=1) as personalize,
    ):
        await bedrock.create_model_invocation_job(**bedrock_job("before-expiry"))
        await personalize.create_batch_inference_job(**personalize_job("before-expiry"))
        with pytest.raises(botocore.exceptions.ClientError) as bedrock_error:
            await bedrock.create_model_invocation_job(**bedrock_job("after-expiry"))
        with pytest.raises(botocore.exceptions.ClientError) as personalize_error:
            await personalize.list_batch_inference_jobs()
    for error, status in ((bedrock_error, 403), (personalize_error, 400)):
        response = error.value.response
        assert response["Error"]["Code"] == "ExpiredTokenException"
        assert response["Error"]["Message"] == "The security token included in the request is expired"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert emu.stats()["jobs_total"] == 2


async def test_auth_fault_set_and_cleared_over_http(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("bedrock", emu.url, retries=1) as client:
        await client.create_model_invocation_job(**bedrock_job("first"))
        status, _, config = await _raw(
            "POST",
            f"{emu.url}/_emulator/config",
            json={"auth_fault": "access-denied", "auth_fault_after": 1},
        )
        assert status == 200
        assert (config["auth_fault"], config["auth_fault_after"]) == ("access-denied", 1)
        await client.list_model_invocation_jobs()  # counted from when the fault was set
        with pytest.raises(client.exceptions.AccessDeniedException):
            await client.create_model_invocation_job(**bedrock_job("second"))
        status, _, error = await _raw("POST", f"{emu.url}/_emulator/config", json={"auth_fault": "nope"})
        assert status == 400 and "auth_fault" in error["message"]
        status, _, _ = await _raw("POST", f"{emu.url}/_emulator/config", json={"auth_fault": None})
        assert status == 200
        await client.create_model_invocation_job(**bedrock_job("third"))
    assert [job["jobName"] for job in emu.jobs()] == ["first", "third"]
    with pytest.raises(ValueError, match="auth_fault_after"):
        emu.configure(auth_fault_after=-1)


async def test_saved_state_is_taken_over_by_a_new_emulator(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    clock = FakeClock()
    config = fast_config(clock=clock, bedrock_max_running=4, seed=4)
    first = await make_emulator(config)
    async with (
        aws_client("bedrock", first.url) as bedrock,
        aws_client("personalize", first.url) as personalize,
    ):
        arns = [
            (await bedrock.create_model_invocation_job(**bedrock_job(f"b{i}", clientRequestToken=f"tok{i}")))[
                "jobArn"
            ]
            for i in range(3)
        ]
        await bedrock.create_model_invocation_job(**bedrock_job("b0"))  # a duplicate name, counted
        await bedrock.stop_model_invocation_job(jobIdentifier=arns[0])
        segment = (await personalize.create_batch_segment_job(**personalize_job("seg")))["batchSegmentJobArn"]
    path = tmp_path / "state.json"
    first.save_state(path)
    assert not (tmp_path / "state.json.tmp").exists()
    saved_jobs, saved_stats = first.jobs(), first.stats()

    second = await make_emulator(config)
    second.load_state(path)

    assert second.jobs() == saved_jobs
    assert second.stats() == saved_stats
    assert saved_stats["duplicate_jobs"] == 1
    async with (
        aws_client("bedrock", second.url, retries=1) as bedrock,
        aws_client("personalize", second.url, retries=1) as personalize,
    ):
        # a token replay still answers with the original job, the quota still counts the jobs
        replay = await bedrock.create_model_invocation_job(**bedrock_job("b1", clientRequestToken="tok1"))
        assert replay["jobArn"] == arns[1]
        with pytest.raises(bedrock.exceptions.ServiceQuotaExceededException):
            await bedrock.create_model_invocation_job(**bedrock_job("b9"))
        with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
            await personalize.create_batch_segment_job(**personalize_job("seg"))
        listed = await bedrock.list_model_invocation_jobs(maxResults=2)
        assert len(listed["invocationJobSummaries"]) == 2 and listed["nextToken"]
        # the jobs go on by the clock: the stopped one ends Stopped, the others finish
        clock.advance(60)
        stopped = await bedrock.get_model_invocation_job(jobIdentifier=arns[0])
        done = await bedrock.get_model_invocation_job(jobIdentifier=arns[2])
        assert (stopped["status"], done["status"]) == ("Stopped", "Completed")
        job = await personalize.describe_batch_segment_job(batchSegmentJobArn=segment)
        assert job["batchSegmentJob"]["status"] == "ACTIVE"
        # a slot is free again, and a new job gets a new place in the order
        new = (await bedrock.create_model_invocation_job(**bedrock_job("b9")))["jobArn"]
    assert second.jobs()[-1]["arn"] == new
    assert second.stats()["jobs_total"] == 6


async def test_a_state_that_cannot_be_used_is_refused_and_changes_nothing(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    source = await make_emulator()
    async with aws_client("bedrock", source.url) as client:
        await client.create_model_invocation_job(**bedrock_job("saved"))
    path = tmp_path / "state.json"
    source.save_state(path)
    document = json.loads(path.read_text())

    target = await make_emulator()
    async with aws_client("bedrock", target.url) as client:
        await client.create_model_invocation_job(**bedrock_job("kept"))
    state = document["state"]
    broken = {  # file name: (content, what the error says)
        "missing.json": (None, "cannot read"),
        "truncated.json": (path.read_text()[: len(path.read_text()) // 2], "cannot read"),
        "binary.json": ("\udcff", "cannot read"),
        "deep.json": ("[" * 100_000, "cannot read"),
        "long-number.json": ("9" * 5000, "cannot read"),
        "not-a-state.json": (json.dumps({"jobs": []}), "not an emulator state file"),
        "other-version.json": (json.dumps({**document, "version": 99}), "version 99"),
        "bad-job.json": (json.dumps({**document, "state": {**state, "jobs": [{"arn": "x"}]}}), "corrupt"),
        "bad-stats.json": (json.dumps({**document, "state": {**state, "stats": []}}), "corrupt"),
    }
    for name, (text, says) in broken.items():
        if text is not None:
            (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(EmulatorStateError, match=says):
            target.load_state(tmp_path / name)
    other_settings = await make_emulator(fail_rate=0.5)
    with pytest.raises(EmulatorStateError, match="other settings"):
        other_settings.load_state(path)
    assert [job["jobName"] for job in target.jobs()] == ["kept"]
    assert other_settings.jobs() == []
