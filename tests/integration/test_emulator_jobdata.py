"""Emulated jobs read their input from the emulator's S3 and write outputs in the services' formats.

Inputs are put, and outputs inspected, with aioboto3's own S3 client against the emulator's
endpoint. A fake clock moves the jobs to their end, so no test waits for one. Expected values
come from the inputs the tests write, never from the emulator's code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.emulator import Emulator
from tests.conftest import FakeClock, MakeEmulator, aws_client, bedrock_job, personalize_job, segment_job

#: Past the end of any job of fast_config (phases < 0.2 s, running < 0.4 s).
LATER = 60.0


def records(count: int, *, start: int = 0, prefix: str = "rec") -> list[dict[str, Any]]:
    return [
        {
            "recordId": f"{prefix}{index:05d}",
            "modelInput": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"Summarize document {index}"}],
            },
        }
        for index in range(start, start + count)
    ]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def job_request(name: str, input_uri: str, output_uri: str = "s3://jobdata-out/results/", **more: Any) -> Any:
    return bedrock_job(
        name,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}},
        **more,
    )


class Env:
    """An emulator on a fake clock, with S3 and Bedrock/Personalize clients (opened by the fixture)."""

    def __init__(self, emu: Emulator, clock: FakeClock, s3: Any, bedrock: Any, personalize: Any) -> None:
        self.emu, self.clock, self.s3, self.bedrock, self.personalize = emu, clock, s3, bedrock, personalize

    async def put(self, bucket: str, key: str, body: bytes) -> None:
        await self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    async def keys(self, bucket: str, prefix: str = "") -> list[str]:
        page = await self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for item in page.get("Contents", [])]

    async def lines(self, bucket: str, key: str) -> list[dict[str, Any]]:
        body = await (await self.s3.get_object(Bucket=bucket, Key=key))["Body"].read()
        return [json.loads(line) for line in body.decode().splitlines()]

    async def bedrock_job(self, request: Any) -> tuple[str, str]:
        """Create the job; its ARN and id."""
        arn = (await self.bedrock.create_model_invocation_job(**request))["jobArn"]
        return arn, arn.rsplit("/", 1)[-1]

    async def finish(self, arn: str) -> dict[str, Any]:
        """Move the clock past the job's end; the job as Get shows it then."""
        self.clock.advance(LATER)
        return dict(await self.bedrock.get_model_invocation_job(jobIdentifier=arn))


@pytest.fixture
async def make_env(make_emulator: MakeEmulator) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def make(**knobs: Any) -> Env:
            clock = FakeClock()
            emu = await make_emulator(clock=clock, **knobs)
            s3 = await stack.enter_async_context(aws_client("s3", emu.url))
            bedrock = await stack.enter_async_context(aws_client("bedrock", emu.url))
            personalize = await stack.enter_async_context(aws_client("personalize", emu.url))
            for bucket in ("jobdata-in", "jobdata-out"):
                await s3.create_bucket(Bucket=bucket)
            return Env(emu, clock, s3, bedrock, personalize)

        yield make


# -- Bedrock


async def test_a_completed_job_writes_one_output_line_per_record_and_a_manifest(make_env: Any) -> None:
    env = await make_env()
    first, second = records(70), records(50, start=70)
    await env.put("jobdata-in", "staging/part-1.jsonl", jsonl(first))
    await env.put("jobdata-in", "staging/part-2.jsonl", jsonl(second))
    await env.put("jobdata-in", "staging/notes.txt", b"not a .jsonl file: not an input")
    arn, job_id = await env.bedrock_job(job_request("complete", "s3://jobdata-in/staging/"))

    assert await env.keys("jobdata-out") == []  # nothing before the job ends
    job = await env.finish(arn)
    assert job["status"] == "Completed"
    folder = f"results/{job_id}/"
    assert sorted(await env.keys("jobdata-out")) == [
        f"{folder}manifest.json.out",
        f"{folder}part-1.jsonl.out",
        f"{folder}part-2.jsonl.out",
    ]
    [record] = env.emu.jobs()  # GET /_emulator/jobs says what each job wrote
    assert sorted(record["outputs"]) == sorted(await env.keys("jobdata-out"))
    for name, given in (("part-1.jsonl.out", first), ("part-2.jsonl.out", second)):
        out = await env.lines("jobdata-out", folder + name)
        assert sorted(line["recordId"] for line in out) == [record["recordId"] for record in given]
        inputs = {record["recordId"]: record["modelInput"] for record in given}
        for line in out:
            assert set(line) == {"recordId", "modelInput", "modelOutput"}
            assert line["modelInput"] == inputs[line["recordId"]]
            assert line["modelOutput"]["content"][0]["text"].startswith("Emulated reply to: Summarize")
    [manifest] = await env.lines("jobdata-out", f"{folder}manifest.json.out")
    assert {key: manifest[key] for key in list(manifest)[:4]} == {
        "totalRecordCount": 120,
        "processedRecordCount": 120,
        "successRecordCount": 120,
        "errorRecordCount": 0,
    }
    out = await env.lines("jobdata-out", f"{folder}part-1.jsonl.out")
    out += await env.lines("jobdata-out", f"{folder}part-2.jsonl.out")
    assert manifest["inputTokenCount"] == sum(line["modelOutput"]["usage"]["input_tokens"] for line in out)
    assert manifest["outputTokenCount"] == sum(line["modelOutput"]["usage"]["output_tokens"] for line in out)
    assert manifest["inputTokenCount"] > 0 and manifest["outputTokenCount"] > 0


async def test_outputs_exist_once_a_list_shows_the_job_final(make_env: Any) -> None:
    env = await make_env()
    await env.put("jobdata-in", "one.jsonl", jsonl(records(100)))
    _, job_id = await env.bedrock_job(job_request("listed", "s3://jobdata-in/one.jsonl"))
    env.clock.advance(LATER)
    [summary] = (await env.bedrock.list_model_invocation_jobs())["invocationJobSummaries"]
    assert summary["status"] == "Completed"
    # a single input file: its output is named after it
    assert sorted(await env.keys("jobdata-out")) == [
        f"results/{job_id}/manifest.json.out",
        f"results/{job_id}/one.jsonl.out",
    ]


@pytest.mark.parametrize(("order", "kept"), [("input", True), ("shuffled", False)])
async def test_output_order_is_a_knob(make_env: Any, order: str, kept: bool) -> None:
    env = await make_env(output_order=order)
    given = records(150)
    await env.put("jobdata-in", "ordered/in.jsonl", jsonl(given))
    arn, job_id = await env.bedrock_job(job_request("ordered", "s3://jobdata-in/ordered/"))
    await env.finish(arn)
    out = await env.lines("jobdata-out", f"results/{job_id}/in.jsonl.out")
    ids = [line["recordId"] for line in out]
    assert sorted(ids) == [record["recordId"] for record in given]
    assert (ids == [record["recordId"] for record in given]) is kept


async def test_records_without_an_id_get_one(make_env: Any) -> None:
    env = await make_env(output_order="input")
    given = [{"modelInput": record["modelInput"]} for record in records(100)]
    await env.put("jobdata-in", "anonymous.jsonl", jsonl(given))
    arn, job_id = await env.bedrock_job(job_request("anonymous", "s3://jobdata-in/anonymous.jsonl"))
    await env.finish(arn)
    out = await env.lines("jobdata-out", f"results/{job_id}/anonymous.jsonl.out")
    ids = [line["recordId"] for line in out]
    assert len(set(ids)) == 100 and all(ids)
    assert [line["modelInput"] for line in out] == [record["modelInput"] for record in given]


async def test_fewer_records_than_the_minimum_fail_validation(make_env: Any) -> None:
    env = await make_env()
    await env.put("jobdata-in", "small.jsonl", jsonl(records(99)))
    arn, _ = await env.bedrock_job(job_request("small", "s3://jobdata-in/small.jsonl"))
    job = await env.finish(arn)
    assert job["status"] == "Failed"
    assert job["message"] == (f"Batch job {arn} contains less records (99) than the required minimum of: 100")
    assert await env.keys("jobdata-out") == []
    # the job failed in validation: it never ran (no running slot, no InProgress)
    assert env.emu.state.find_bedrock("us-east-1", arn).start_time_at(env.clock()) is None


async def test_the_record_limits_are_knobs(make_env: Any) -> None:
    env = await make_env(bedrock_min_records=5, bedrock_max_records=10)
    await env.put("jobdata-in", "five.jsonl", jsonl(records(5)))
    await env.put("jobdata-in", "eleven.jsonl", jsonl(records(11)))
    five, _ = await env.bedrock_job(job_request("five", "s3://jobdata-in/five.jsonl"))
    eleven, _ = await env.bedrock_job(job_request("eleven", "s3://jobdata-in/eleven.jsonl"))
    assert (await env.finish(five))["status"] == "Completed"
    job = await env.finish(eleven)
    assert job["status"] == "Failed"
    assert "more records (11) than the allowed maximum of: 10" in job["message"]


@pytest.mark.parametrize(
    ("files", "input_uri", "output_uri", "expected"),
    [
        ({}, "s3://jobdata-in/empty/", "s3://jobdata-out/r/", "No .jsonl input files were found at"),
        (
            {"x.jsonl": b""},
            "s3://jobdata-in/x.jsonl",
            "s3://missing-output/r/",
            "output bucket missing-output",
        ),
        (
            {"bad/a.jsonl": jsonl(records(3)) + b"{not json\n"},
            "s3://jobdata-in/bad/",
            "s3://jobdata-out/r/",
            "s3://jobdata-in/bad/a.jsonl line 4: the record is not valid JSON",
        ),
        (
            {"bad/b.jsonl": b'{"recordId": "r1"}\n'},
            "s3://jobdata-in/bad/",
            "s3://jobdata-out/r/",
            "s3://jobdata-in/bad/b.jsonl line 1: the record has no modelInput object",
        ),
    ],
)
async def test_unusable_input_fails_the_job_with_a_message(
    make_env: Any, files: dict[str, bytes], input_uri: str, output_uri: str, expected: str
) -> None:
    env = await make_env()
    for key, body in files.items():
        await env.put("jobdata-in", key, body)
    arn, _ = await env.bedrock_job(job_request("unusable", input_uri, output_uri))
    job = await env.finish(arn)
    assert job["status"] == "Failed"
    assert expected in job["message"]
    assert await env.keys("jobdata-out") == []


async def test_record_errors_make_the_job_partially_completed(make_env: Any) -> None:
    env = await make_env(record_error_rate=0.3, output_order="input")
    given = records(200)
    await env.put("jobdata-in", "errors.jsonl", jsonl(given))
    arn, job_id = await env.bedrock_job(job_request("errors", "s3://jobdata-in/errors.jsonl"))
    job = await env.finish(arn)
    assert job["status"] == "PartiallyCompleted"
    out = await env.lines("jobdata-out", f"results/{job_id}/errors.jsonl.out")
    assert [line["recordId"] for line in out] == [record["recordId"] for record in given]
    failed = [line for line in out if "error" in line]
    assert 20 < len(failed) < 100  # about 30 % of 200
    for line in failed:
        assert "modelOutput" not in line
        assert set(line["error"]) == {"errorCode", "errorMessage"}
    [manifest] = await env.lines("jobdata-out", f"results/{job_id}/manifest.json.out")
    assert manifest["errorRecordCount"] == len(failed)
    assert manifest["successRecordCount"] == 200 - len(failed)
    assert manifest["processedRecordCount"] == manifest["totalRecordCount"] == 200
    assert job["message"].startswith(f"{len(failed)} of 200 records failed")


async def test_the_status_after_record_errors_is_a_knob(make_env: Any) -> None:
    env = await make_env(record_error_rate=0.5, record_errors_status="Completed")
    await env.put("jobdata-in", "errors.jsonl", jsonl(records(100)))
    arn, job_id = await env.bedrock_job(job_request("errors", "s3://jobdata-in/errors.jsonl"))
    assert (await env.finish(arn))["status"] == "Completed"
    [manifest] = await env.lines("jobdata-out", f"results/{job_id}/manifest.json.out")
    assert manifest["errorRecordCount"] > 0


async def test_a_job_out_of_time_leaves_records_out(make_env: Any) -> None:
    env = await make_env(partial_rate=1.0)
    given = records(300)
    await env.put("jobdata-in", "slow.jsonl", jsonl(given))
    arn, job_id = await env.bedrock_job(job_request("slow", "s3://jobdata-in/slow.jsonl"))
    assert (await env.finish(arn))["status"] == "PartiallyCompleted"
    out = await env.lines("jobdata-out", f"results/{job_id}/slow.jsonl.out")
    [manifest] = await env.lines("jobdata-out", f"results/{job_id}/manifest.json.out")
    assert manifest["totalRecordCount"] == 300
    assert manifest["processedRecordCount"] == len(out) < 300
    assert {line["recordId"] for line in out} < {record["recordId"] for record in given}


@pytest.mark.parametrize(
    "knobs", [{"fail_rate": 1.0}, {"expire_rate": 1.0, "bedrock_default_timeout_hours": 24}]
)
async def test_failed_and_expired_jobs_write_nothing(make_env: Any, knobs: dict[str, Any]) -> None:
    env = await make_env(**knobs)
    await env.put("jobdata-in", "in.jsonl", jsonl(records(100)))
    arn, _ = await env.bedrock_job(job_request("nothing", "s3://jobdata-in/in.jsonl"))
    env.clock.advance(24 * 3600)
    job = await env.finish(arn)
    assert job["status"] in {"Failed", "Expired"}
    assert await env.keys("jobdata-out") == []


async def test_a_stopped_job_writes_nothing(make_env: Any) -> None:
    env = await make_env()
    await env.put("jobdata-in", "in.jsonl", jsonl(records(100)))
    arn, _ = await env.bedrock_job(job_request("stopped", "s3://jobdata-in/in.jsonl"))
    await env.bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert (await env.finish(arn))["status"] == "Stopped"
    assert await env.keys("jobdata-out") == []


async def test_jobs_whose_input_bucket_is_not_in_s3_touch_no_s3(make_env: Any) -> None:
    """Campaigns written before S3 existed name buckets they never created; their jobs run as before."""
    env = await make_env()
    arn, _ = await env.bedrock_job(bedrock_job("legacy"))  # s3://input-bucket/batch/: never created
    assert (await env.finish(arn))["status"] == "Completed"
    assert [bucket["Name"] for bucket in (await env.s3.list_buckets())["Buckets"]] == [
        "jobdata-in",
        "jobdata-out",
    ]
    assert await env.keys("jobdata-out") == []


async def test_outputs_of_a_job_taken_over_from_a_saved_state(make_env: Any, tmp_path: Path) -> None:
    env = await make_env()
    await env.put("jobdata-in", "saved.jsonl", jsonl(records(100)))
    arn, job_id = await env.bedrock_job(job_request("saved", "s3://jobdata-in/saved.jsonl"))
    env.emu.save_state(tmp_path / "state.json")
    taker = Emulator(env.emu.config)  # same settings and clock; S3 is shared within the process
    taker.load_state(tmp_path / "state.json")
    async with taker, aws_client("bedrock", taker.url) as bedrock:
        env.clock.advance(LATER)
        assert (await bedrock.get_model_invocation_job(jobIdentifier=arn))["status"] == "Completed"
        assert f"results/{job_id}/saved.jsonl.out" in await env.keys("jobdata-out")


# -- Personalize


async def test_batch_inference_writes_one_output_file_per_input_file(make_env: Any) -> None:
    env = await make_env(output_order="input")
    users = [{"userId": str(index)} for index in range(30)]
    ranking = [{"userId": "7", "itemList": ["a", "b", "c", "d"]}]
    await env.put("jobdata-in", "users/part-a.json", jsonl(users))
    await env.put("jobdata-in", "users/part-b.json", jsonl(ranking))
    request = personalize_job(
        "recommend",
        jobInput={"s3DataSource": {"path": "s3://jobdata-in/users/"}},
        jobOutput={"s3DataDestination": {"path": "s3://jobdata-out/recommendations/"}},
        numResults=7,
    )
    arn = (await env.personalize.create_batch_inference_job(**request))["batchInferenceJobArn"]
    assert await env.keys("jobdata-out") == []
    env.clock.advance(LATER)
    described = await env.personalize.describe_batch_inference_job(batchInferenceJobArn=arn)
    assert described["batchInferenceJob"]["status"] == "ACTIVE"
    assert sorted(await env.keys("jobdata-out")) == [
        "recommendations/part-a.json.out",
        "recommendations/part-b.json.out",
    ]
    out = await env.lines("jobdata-out", "recommendations/part-a.json.out")
    assert [line["input"] for line in out] == users
    for line in out:
        assert line["error"] is None
        assert len(line["output"]["recommendedItems"]) == len(line["output"]["scores"]) == 7
        assert line["output"]["scores"] == sorted(line["output"]["scores"], reverse=True)
    [ranked] = await env.lines("jobdata-out", "recommendations/part-b.json.out")
    assert sorted(ranked["output"]["recommendedItems"]) == ["a", "b", "c", "d"]


async def test_batch_segment_outputs(make_env: Any) -> None:
    env = await make_env(output_order="input")
    queries = [{"itemId": "105"}, {"itemAttributes": 'ITEMS.genres = "Comedy"'}]
    await env.put("jobdata-in", "segments/q.json", jsonl(queries))
    request = segment_job(
        "segments",
        jobInput={"s3DataSource": {"path": "s3://jobdata-in/segments/"}},
        jobOutput={"s3DataDestination": {"path": "s3://jobdata-out/segments"}},
    )
    arn = (await env.personalize.create_batch_segment_job(**request))["batchSegmentJobArn"]
    env.clock.advance(LATER)
    described = await env.personalize.describe_batch_segment_job(batchSegmentJobArn=arn)
    assert described["batchSegmentJob"]["status"] == "ACTIVE"
    item, attributes = await env.lines("jobdata-out", "segments/q.json.out")
    assert item["input"] == {"itemId": "105"}
    assert len(item["output"]["recommendedUsers"]) == 25  # numResults' default
    assert attributes["itemAttributes"] == 'ITEMS.genres = "Comedy"'
    assert len(attributes["output"]["recommendedUsers"]) == 25


async def test_personalize_without_input_objects_fails(make_env: Any) -> None:
    env = await make_env()
    request = personalize_job(
        "no-input",
        jobInput={"s3DataSource": {"path": "s3://jobdata-in/nothing-here/"}},
        jobOutput={"s3DataDestination": {"path": "s3://jobdata-out/x/"}},
    )
    arn = (await env.personalize.create_batch_inference_job(**request))["batchInferenceJobArn"]
    env.clock.advance(LATER)
    job = (await env.personalize.describe_batch_inference_job(batchInferenceJobArn=arn))["batchInferenceJob"]
    assert job["status"] == "CREATE FAILED"
    assert "s3://jobdata-in/nothing-here/" in job["failureReason"]
    assert await env.keys("jobdata-out") == []
