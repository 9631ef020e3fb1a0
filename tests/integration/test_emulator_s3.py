"""The emulator's one endpoint serves S3 (moto's, in-process) to requests signed for ``s3``.

Every test uses a real S3 client (boto3 in a thread, aioboto3, urllib for a presigned URL)
against the emulator's URL: the real HTTP path, no moto decorators.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from typing import Any

import anyio
import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from tests.conftest import CREDENTIALS, MakeEmulator, aws_client, bedrock_job

MiB = 1024 * 1024


def s3_client(url: str, **settings: Any) -> Any:
    """A sync boto3 S3 client for the emulator, with no retries (a failure shows at once)."""
    session = boto3.session.Session(region_name="us-east-1", **CREDENTIALS)
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, **settings)
    return session.client("s3", endpoint_url=url, config=config)


def _round_trip(url: str) -> dict[str, Any]:
    s3 = s3_client(url)
    out: dict[str, Any] = {}
    s3.create_bucket(Bucket="round-trip")
    key = "dir/a key with spaces+plus&more.txt"
    put = s3.put_object(Bucket="round-trip", Key=key, Body=b"hello, s3", ChecksumAlgorithm="SHA256")
    out["put_checksum"] = put["ChecksumSHA256"]
    out["head"] = s3.head_object(Bucket="round-trip", Key=key)
    out["get"] = s3.get_object(Bucket="round-trip", Key=key)["Body"].read()

    big = bytes(range(256)) * (11 * MiB // 256)  # three 5 MiB parts (the last one short)
    transfer = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(
        io.BytesIO(big), "round-trip", "big.bin", Config=transfer, ExtraArgs={"ChecksumAlgorithm": "SHA256"}
    )
    out["big_head"] = s3.head_object(Bucket="round-trip", Key="big.bin")
    out["big_same"] = s3.get_object(Bucket="round-trip", Key="big.bin")["Body"].read() == big
    out["listed"] = [item["Key"] for item in s3.list_objects_v2(Bucket="round-trip")["Contents"]]
    out["prefixed"] = [
        item["Key"] for item in s3.list_objects_v2(Bucket="round-trip", Prefix="dir/")["Contents"]
    ]
    s3.delete_object(Bucket="round-trip", Key="big.bin")
    out["after_delete"] = [item["Key"] for item in s3.list_objects_v2(Bucket="round-trip")["Contents"]]
    try:
        s3.get_object(Bucket="round-trip", Key="big.bin")
    except s3.exceptions.NoSuchKey as exc:
        out["missing"] = exc.response["Error"]["Code"]
    try:
        s3.head_bucket(Bucket="no-such-bucket")
    except s3.exceptions.ClientError as exc:
        out["no_bucket"] = exc.response["Error"]["Code"]
    params = {"Bucket": "round-trip", "Key": key}
    out["presigned"] = [
        s3.generate_presigned_url("get_object", Params=params, ExpiresIn=60),  # SigV2, botocore's default
        s3_client(url, signature_version="s3v4").generate_presigned_url("get_object", Params=params),
    ]
    return out


async def test_boto3_s3_round_trip_through_the_one_endpoint(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    out = await anyio.to_thread.run_sync(_round_trip, emu.url)
    expected_checksum = base64.b64encode(hashlib.sha256(b"hello, s3").digest()).decode()
    assert out["put_checksum"] == expected_checksum
    assert out["head"]["ContentLength"] == len(b"hello, s3")
    assert out["get"] == b"hello, s3"
    assert out["big_head"]["ContentLength"] == 11 * MiB
    assert out["big_head"]["ETag"].endswith('-3"')  # a multipart object's ETag counts its parts
    assert out["big_same"]
    assert out["listed"] == ["big.bin", "dir/a key with spaces+plus&more.txt"]
    assert out["prefixed"] == ["dir/a key with spaces+plus&more.txt"]
    assert out["after_delete"] == ["dir/a key with spaces+plus&more.txt"]
    assert out["missing"] == "NoSuchKey"
    assert out["no_bucket"] == "404"
    # presigned URLs carry their signature in the query string, and reach S3 too
    for presigned in out["presigned"]:
        with await anyio.to_thread.run_sync(urllib.request.urlopen, presigned) as response:
            assert response.read() == b"hello, s3"
    # S3 requests are not the job APIs' requests
    assert emu.stats()["requests"] == {}


async def test_aioboto3_s3_client_and_bedrock_share_the_endpoint(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("s3", emu.url) as s3, aws_client("bedrock", emu.url) as bedrock:
        await s3.create_bucket(Bucket="shared-endpoint")
        await s3.put_object(Bucket="shared-endpoint", Key="x.txt", Body=b"x")
        listed = await s3.list_objects_v2(Bucket="shared-endpoint")
        created = await bedrock.create_model_invocation_job(**bedrock_job("beside-s3"))
        got = await bedrock.get_model_invocation_job(jobIdentifier=created["jobArn"])
    assert [item["Key"] for item in listed["Contents"]] == ["x.txt"]
    assert got["jobName"] == "beside-s3"


async def test_reset_and_the_last_emulator_stopping_empty_s3(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    async with aws_client("s3", emu.url) as s3:
        await s3.create_bucket(Bucket="forgotten")
        emu.reset()
        assert (await s3.list_buckets())["Buckets"] == []
        await s3.create_bucket(Bucket="outlived")
    # a second emulator in the same process shares S3 while the first is serving
    second = await make_emulator()
    async with aws_client("s3", second.url) as s3:
        assert [bucket["Name"] for bucket in (await s3.list_buckets())["Buckets"]] == ["outlived"]
    await emu.stop()
    await second.stop()
    third = await make_emulator()
    async with aws_client("s3", third.url) as s3:
        assert (await s3.list_buckets())["Buckets"] == []


_WITHOUT_MOTO = textwrap.dedent(
    """
    import json, sys
    sys.modules["moto"] = None  # importing moto now raises ImportError, as if it were not installed
    import anyio, boto3
    from botocore.config import Config
    from asyncjobs.emulator import Emulator
    from asyncjobs.emulator.s3 import S3Store

    def work(url):
        session = boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
        )
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        out = {"available": S3Store.available()}
        try:
            session.client("s3", endpoint_url=url, config=config).create_bucket(Bucket="needs-moto")
        except Exception as exc:
            out["error"] = [exc.response["Error"]["Code"], exc.response["Error"]["Message"]]
        request = json.loads(sys.argv[1])
        bedrock = session.client("bedrock", endpoint_url=url, config=config)
        out["arn"] = bedrock.create_model_invocation_job(**request)["jobArn"]
        return out

    async def main():
        async with Emulator() as emu:
            print("RESULT", json.dumps(await anyio.to_thread.run_sync(work, emu.url)))

    anyio.run(main)
    """
)


def test_without_moto_s3_gets_a_clear_error_and_the_rest_works() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MOTO, json.dumps(bedrock_job("no-moto"))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [result] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    out = json.loads(result.removeprefix("RESULT "))
    assert out["available"] is False
    code, message = out["error"]
    assert code == "NotImplemented"
    assert "asyncjobs[emulator]" in message
    assert out["arn"].startswith("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/")


async def test_routing_follows_the_credential_scope_not_the_path(make_emulator: MakeEmulator) -> None:
    """A bucket may be named like a Bedrock route; the scope decides who answers."""
    emu = await make_emulator()
    async with aws_client("s3", emu.url) as s3:
        await s3.create_bucket(Bucket="model-invocation-job")
        await s3.put_object(Bucket="model-invocation-job", Key="abcdefghijkl", Body=b"an object")
        body = await (await s3.get_object(Bucket="model-invocation-job", Key="abcdefghijkl"))["Body"].read()
    assert body == b"an object"
    async with aws_client("bedrock", emu.url) as bedrock:
        with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
            await bedrock.get_model_invocation_job(jobIdentifier="abcdefghijkl")
