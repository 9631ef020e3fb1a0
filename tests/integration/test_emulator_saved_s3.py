"""A saved emulator state keeps S3: a new emulator that loads it serves every bucket and object.

Objects are put and read back with aioboto3's S3 client over HTTP; the first emulator stops (the
process's S3 is emptied when its last emulator stops) before the second loads the file, so what
the second serves came from the file. Expected checksums and ETags are computed here with hashlib
from the bytes the test sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncjobs.campaign import read_campaign
from asyncjobs.emulator import Emulator, EmulatorConfig, EmulatorStateError
from asyncjobs.emulator.process import emulator_command, emulator_process
from asyncjobs.records import RecordsOptions, ShardSpec, upload_shard
from tests.conftest import ROLE, FakeClock, aws_client, bedrock_job

MiB = 1024 * 1024
#: Past the end of any job of the config below.
LATER = 60.0
SMALL = b"hello, saved s3\n"
#: Two parts: S3's smallest non-last part (5 MiB), and a short last one.
PARTS = [bytes(range(256)) * (5 * MiB // 256), b"the last part"]


def _config(clock: FakeClock) -> EmulatorConfig:
    return EmulatorConfig(
        clock=clock,
        create_rate=None,
        get_rate=None,
        list_rate=None,
        job_seconds=(0.2, 0.4),
        bedrock_phase_seconds=(0.01, 0.05),
        bedrock_min_records=1,
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _prompts(count: int, prefix: str) -> bytes:
    lines = [
        {
            "recordId": f"{prefix}{i:03d}",
            "modelInput": {"messages": [{"role": "user", "content": f"doc {i}"}]},
        }
        for i in range(count)
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _job(name: str, input_key: str) -> dict[str, Any]:
    return bedrock_job(
        name,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://saved-in/{input_key}"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://saved-out/results/"}},
    )


async def _put_objects(s3: Any) -> None:
    """One object with metadata and a SHA-256 checksum; one uploaded in two parts, with SHA-256."""
    for bucket in ("saved-in", "saved-out"):
        await s3.create_bucket(Bucket=bucket)
    await s3.put_object(
        Bucket="saved-in",
        Key="dir/small.txt",
        Body=SMALL,
        ContentType="text/plain",
        Metadata={"owner": "tests", "asyncjobs-sha256": hashlib.sha256(SMALL).hexdigest()},
        ChecksumAlgorithm="SHA256",
    )
    upload = await s3.create_multipart_upload(Bucket="saved-in", Key="big.bin", ChecksumAlgorithm="SHA256")
    done = []
    for number, part in enumerate(PARTS, start=1):
        sent = await s3.upload_part(
            Bucket="saved-in",
            Key="big.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=part,
            ChecksumAlgorithm="SHA256",
        )
        done.append({"PartNumber": number, "ETag": sent["ETag"], "ChecksumSHA256": sent["ChecksumSHA256"]})
    await s3.complete_multipart_upload(
        Bucket="saved-in", Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )


async def _contents(s3: Any) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Every object of both buckets: its bytes, and what HeadObject (checksum mode on) shows."""
    found: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for bucket in ("saved-in", "saved-out"):
        listed = await s3.list_objects_v2(Bucket=bucket)
        for item in listed.get("Contents", []):
            key = item["Key"]
            got = await s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            body = await got["Body"].read()
            head = await s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            fields = ("ContentType", "ContentLength", "Metadata", "ETag", "ChecksumSHA256", "LastModified")
            shown = {field: head.get(field) for field in fields}
            shown["GetChecksumSHA256"] = got.get("ChecksumSHA256")
            found[f"{bucket}/{key}"] = (body, shown)
    return found


async def test_a_new_emulator_serves_the_saved_buckets_objects_and_job_outputs(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.json"
    async with Emulator(_config(clock)) as first:
        async with aws_client("s3", first.url) as s3, aws_client("bedrock", first.url) as bedrock:
            await _put_objects(s3)
            await s3.put_object(Bucket="saved-in", Key="done.jsonl", Body=_prompts(3, "d"))
            await s3.put_object(Bucket="saved-in", Key="later.jsonl", Body=_prompts(4, "l"))
            done = (await bedrock.create_model_invocation_job(**_job("done", "done.jsonl")))["jobArn"]
            clock.advance(LATER)
            assert (await bedrock.get_model_invocation_job(jobIdentifier=done))["status"] == "Completed"
            later = (await bedrock.create_model_invocation_job(**_job("later", "later.jsonl")))["jobArn"]
            before = await _contents(s3)
        first.save_state(path)
    assert path.stat().st_mode & 0o777 == 0o600

    second = Emulator(_config(clock))
    second.load_state(path)  # before it serves, as the demo does
    async with second, aws_client("s3", second.url) as s3, aws_client("bedrock", second.url) as bedrock:
        after = await _contents(s3)
        clock.advance(LATER)  # the job taken over ends, and writes into the restored bucket
        assert (await bedrock.get_model_invocation_job(jobIdentifier=later))["status"] == "Completed"
        outputs = await s3.list_objects_v2(Bucket="saved-out", Prefix="results/")

    assert after == before
    small_body, small = after["saved-in/dir/small.txt"]
    assert small_body == SMALL
    assert small["ContentType"] == "text/plain"
    assert small["Metadata"] == {"owner": "tests", "asyncjobs-sha256": hashlib.sha256(SMALL).hexdigest()}
    assert small["ChecksumSHA256"] == _b64(hashlib.sha256(SMALL).digest())
    assert small["ETag"] == f'"{hashlib.md5(SMALL).hexdigest()}"'
    big_body, big = after["saved-in/big.bin"]
    assert big_body == b"".join(PARTS)
    part_sha256 = b"".join(hashlib.sha256(part).digest() for part in PARTS)
    composite = _b64(hashlib.sha256(part_sha256).digest())  # a checksum of the parts' checksums
    assert big["GetChecksumSHA256"] == f"{composite}-2"
    assert big["ChecksumSHA256"] in (composite, f"{composite}-2")  # moto's HeadObject leaves out the -2
    part_md5 = b"".join(hashlib.md5(part).digest() for part in PARTS)
    assert big["ETag"] == f'"{hashlib.md5(part_md5).hexdigest()}-2"'
    done_id, later_id = done.rsplit("/", 1)[-1], later.rsplit("/", 1)[-1]
    saved_outputs = {name for name in after if name.startswith("saved-out/")}
    assert saved_outputs == {
        f"saved-out/results/{done_id}/done.jsonl.out",
        f"saved-out/results/{done_id}/manifest.json.out",
    }
    done_lines = [
        json.loads(line) for line in after[f"saved-out/results/{done_id}/done.jsonl.out"][0].splitlines()
    ]
    assert sorted(line["recordId"] for line in done_lines) == ["d000", "d001", "d002"]
    assert {item["Key"] for item in outputs["Contents"]} == {
        f"results/{done_id}/done.jsonl.out",
        f"results/{done_id}/manifest.json.out",
        f"results/{later_id}/later.jsonl.out",
        f"results/{later_id}/manifest.json.out",
    }


async def test_loading_into_a_serving_emulator_replaces_its_s3(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.json"
    async with Emulator(_config(clock)) as emu, aws_client("s3", emu.url) as s3:
        await s3.create_bucket(Bucket="kept")
        await s3.put_object(Bucket="kept", Key="k", Body=b"saved bytes")
        emu.save_state(path)
        await s3.put_object(Bucket="kept", Key="k", Body=b"changed after the save")
        await s3.create_bucket(Bucket="made-after-the-save")

        emu.load_state(path)

        assert [b["Name"] for b in (await s3.list_buckets())["Buckets"]] == ["kept"]
        assert await (await s3.get_object(Bucket="kept", Key="k"))["Body"].read() == b"saved bytes"


async def test_a_resumed_records_upload_uploads_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    prompts = [{"recordId": f"P{i:04d}", "modelInput": {"prompt": f"p{i}"}} for i in range(300)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    line = {
        "id": "saved",
        "service": "bedrock",
        "records": "prompts.jsonl",
        "request": {
            "roleArn": ROLE,
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://staging/shards/"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://staging/results/"}},
        },
    }
    (tmp_path / "campaign.jsonl").write_text(json.dumps(line) + "\n")
    specs = [
        spec
        for spec in read_campaign(tmp_path / "campaign.jsonl", records=RecordsOptions(records_per_job=100))
        if isinstance(spec, ShardSpec)
    ]
    assert len(specs) == 3
    path = tmp_path / "state.json"
    async with Emulator(_config(clock)) as first, aws_client("s3", first.url) as s3:
        await s3.create_bucket(Bucket="staging")  # versioned: every upload leaves a version
        await s3.put_bucket_versioning(Bucket="staging", VersioningConfiguration={"Status": "Enabled"})
        for spec in specs:
            assert (await upload_shard(s3, spec.shard, spec.service, spec.input_uri)).uploaded
        first.save_state(path)

    second = Emulator(_config(clock))
    second.load_state(path)
    async with second, aws_client("s3", second.url) as s3:
        resumed = [await upload_shard(s3, spec.shard, spec.service, spec.input_uri) for spec in specs]
        versions = (await s3.list_object_versions(Bucket="staging"))["Versions"]

    assert [result.uploaded for result in resumed] == [False, False, False]
    assert sorted(v["Key"] for v in versions) == sorted(
        spec.input_uri.removeprefix("s3://staging/") for spec in specs
    )


async def test_a_saved_s3_that_cannot_be_used_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.json"
    async with Emulator(_config(clock)) as emu, aws_client("s3", emu.url) as s3:
        await s3.create_bucket(Bucket="kept")
        await s3.put_object(Bucket="kept", Key="k", Body=b"kept")
        emu.save_state(path)
        document = json.loads(path.read_text())
        [bucket] = document["s3"]
        [item] = bucket["objects"]
        broken = {  # file name: (document, what the error says)
            "v2.json": ({**document, "version": 2}, "version 2, not 3"),  # saved before S3 was
            "no-s3.json": ({key: v for key, v in document.items() if key != "s3"}, "corrupt"),
            "bad-data.json": (
                {**document, "s3": [{**bucket, "objects": [{**item, "data": "not base64!"}]}]},
                "corrupt",
            ),
            "bad-meta.json": (
                {**document, "s3": [{**bucket, "objects": [{**item, "metadata": {"a": 1}}]}]},
                "corrupt",
            ),
            "twice.json": ({**document, "s3": [bucket, bucket]}, "corrupt"),
            "bad-name.json": ({**document, "s3": [{**bucket, "name": "x"}]}, "corrupt"),
        }
        await s3.put_object(Bucket="kept", Key="k", Body=b"after")
        for name, (content, says) in broken.items():
            (tmp_path / name).write_text(json.dumps(content))
            with pytest.raises(EmulatorStateError, match=says):
                emu.load_state(tmp_path / name)
        assert await (await s3.get_object(Bucket="kept", Key="k"))["Body"].read() == b"after"


# -- the emulator command: ``--state FILE``, across two processes


async def test_the_emulator_command_with_state_keeps_jobs_and_s3_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emulator-state.json"
    options = ("--state", str(state), "--job-seconds", "0.1,0.2", "--bedrock-min-records", "1")
    async with emulator_process(*options) as emu, aws_client("s3", emu.url) as s3:
        async with aws_client("bedrock", emu.url) as bedrock:
            await _put_objects(s3)
            await s3.put_object(Bucket="saved-in", Key="job.jsonl", Body=_prompts(2, "j"))
            arn = (await bedrock.create_model_invocation_job(**_job("across", "job.jsonl")))["jobArn"]
        before = await _contents(s3)
    # the first process has exited on SIGINT, saving its state

    async with emulator_process(*options) as emu, aws_client("s3", emu.url) as s3:
        async with aws_client("bedrock", emu.url) as bedrock:
            for _ in range(200):  # the job taken over ends on the wall clock, within a few seconds
                job = await bedrock.get_model_invocation_job(jobIdentifier=arn)
                if job["status"] in ("Completed", "PartiallyCompleted", "Failed"):
                    break
                await anyio.sleep(0.05)
        after = await _contents(s3)
        outputs = await s3.list_objects_v2(Bucket="saved-out", Prefix="results/")

    assert {name: after[name] for name in before} == before  # and the job's outputs, written since
    assert job["status"] == "Completed"
    job_id = arn.rsplit("/", 1)[-1]
    assert {item["Key"] for item in outputs["Contents"]} == {
        f"results/{job_id}/job.jsonl.out",
        f"results/{job_id}/manifest.json.out",
    }


def test_the_emulator_command_refuses_a_state_it_cannot_load(tmp_path: Path) -> None:
    state = tmp_path / "emulator-state.json"
    state.write_text('{"format": "asyncjobs-emulator-state", "version": 2}')
    done = subprocess.run(
        emulator_command("--state", str(state)), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f"--state: {state}: emulator state version 2, not 3" in done.stderr
    assert done.stdout == ""  # it never listened


_LOAD_WITHOUT_MOTO = """
import sys
sys.modules["moto"] = None  # importing moto now raises ImportError, as if it were not installed
from asyncjobs.emulator import Emulator, EmulatorStateError
try:
    Emulator().load_state(sys.argv[1])
except EmulatorStateError as exc:
    print(exc)
"""


async def test_a_saved_s3_without_moto_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with Emulator() as emu, aws_client("s3", emu.url) as s3:
        await s3.create_bucket(Bucket="needs-moto")
        emu.save_state(path)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = await anyio.run_process(
        [sys.executable, "-c", _LOAD_WITHOUT_MOTO, str(path)], env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert b"the emulator state holds S3 objects" in done.stdout
    assert b"asyncjobs[emulator]" in done.stdout
