"""Records through shard-and-upload, against a bare aioboto3 upload of the same bytes.

    python -m benchmarks.records_bench [--records 1000000] [--repeat 3] [--per-job 50000]

Writes a records file of Bedrock prompts (every third without a ``recordId``, so ids are
assigned), starts moto's S3 server (``ThreadedMotoServer``) in this process, and runs
each contender ``--repeat`` times, in turns, each in its own subprocess so that its peak
RSS is its own (``ru_maxrss``) and moto's memory is not counted:

- ``records``: :func:`asyncjobs.records.expand_records_line` (validation with duplicate
  detection, the shard cut with SHA-256 per shard), then :func:`upload_shard` for every
  shard, four at a time;
- ``bare``: aioboto3's ``upload_fileobj`` of the records file as one object, with the
  same transfer settings: the bytes alone, no parsing, no checksums.

The time runs from after the imports to the last upload done. The bucket is emptied
between runs, so every run uploads everything. The figures (medians) are records per
second for each, their ratio, and the peak RSS of each, plus the RSS right after the
imports (the floor both start from). moto is a Python server: it bounds both contenders'
speed alike, so the ratio is the figure to read, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUCKET = "bench-records"
CREDENTIALS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
REQUEST = {
    "roleArn": "arn:aws:iam::123456789012:role/BatchRole",
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/staging/"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/results/"}},
}


def write_records(path: Path, count: int) -> int:
    """A records file of ``count`` prompts (~220 bytes each); its size in bytes."""
    with open(path, "w") as out:
        for i in range(1, count + 1):
            record: dict[str, Any] = {
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 256,
                    "messages": [{"role": "user", "content": f"Summarise document {i} in three sentences."}],
                }
            }
            if i % 3:
                record = {"recordId": f"DOC{i:08d}", **record}
            out.write(json.dumps(record) + "\n")
    return path.stat().st_size


def _rss_mb() -> float:
    """This process's peak RSS. ``ru_maxrss`` is kept across exec (it would report the parent's
    peak, moto's objects included); ``VmHWM`` belongs to the process's own address space."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB; not Linux


async def _child(mode: str, url: str, path: str, per_job: int) -> dict[str, Any]:
    import aioboto3
    import anyio

    from asyncjobs.model import Service
    from asyncjobs.records import RecordsOptions, expand_records_line, upload_shard
    from asyncjobs.records.upload import transfer_config

    floor = _rss_mb()
    started = time.perf_counter()
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS) as s3:
        if mode == "bare":
            # read in a worker thread, as the shard reader reads
            async with await anyio.open_file(path, "rb") as stream:
                await s3.upload_fileobj(stream, BUCKET, "bare/records.jsonl", Config=transfer_config())
            shards = 1
        else:
            specs = await anyio.to_thread.run_sync(
                lambda: expand_records_line(
                    "bench",
                    Service.BEDROCK,
                    REQUEST,
                    path,
                    base_dir="",
                    options=RecordsOptions(campaign="bench", records_per_job=per_job),
                    source="bench",
                )
            )
            limit = anyio.Semaphore(4)

            async def one(spec: Any) -> None:
                async with limit:
                    await upload_shard(s3, spec.shard, spec.service, spec.input_uri)

            async with anyio.create_task_group() as group:
                for spec in specs:
                    group.start_soon(one, spec)
            shards = len(specs)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": _rss_mb(), "floor_mb": floor, "shards": shards}


def _run_child(mode: str, url: str, path: Path, per_job: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.records_bench", "--child", mode, "--url", url]
    command += ["--file", str(path), "--per-job", str(per_job)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _empty_bucket(client: Any) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])


def run(records: int, repeat: int, per_job: int) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        inspect = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS)
        inspect.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
            path = Path(tmp) / "prompts.jsonl"
            size = write_records(path, records)
            runs: dict[str, list[dict[str, Any]]] = {"records": [], "bare": []}
            for _ in range(repeat):
                for mode in runs:  # in turns, so a slow spell of the machine falls on both
                    _empty_bucket(inspect)
                    runs[mode].append(_run_child(mode, url, path, per_job))
    finally:
        server.stop()
    seconds = {mode: statistics.median(r["seconds"] for r in rs) for mode, rs in runs.items()}
    return {
        "records": records,
        "file_mb": round(size / 1e6, 1),
        "shards": runs["records"][0]["shards"],
        "repeat": repeat,
        "records_per_s": round(records / seconds["records"]),
        "bare_records_per_s": round(records / seconds["bare"]),
        "ratio_to_bare": round(seconds["bare"] / seconds["records"], 3),
        "seconds": {mode: round(s, 2) for mode, s in seconds.items()},
        "peak_rss_mb": {
            mode: round(statistics.median(r["rss_mb"] for r in rs), 1) for mode, rs in runs.items()
        },
        "rss_after_imports_mb": round(statistics.median(r["floor_mb"] for r in runs["records"]), 1),
    }


#: A records file of a million prompts is read as a stream: memory must not grow with it.
TARGET = {"peak_rss_mb": ("<=", 250.0)}


async def scenario(records: int, repeat: int) -> list[dict[str, Any]]:
    """The ``records`` scenario of ``python -m benchmarks``: one entry, the figures flattened."""
    from .report import entry

    figures = await asyncio.to_thread(run, records, repeat, 50_000)
    rss = figures.pop("peak_rss_mb")
    figures.update(peak_rss_mb=rss["records"], bare_peak_rss_mb=rss["bare"])
    return [entry("records", "shard_and_upload", figures, TARGET)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-job", type=int, default=50_000)
    parser.add_argument("--child", choices=("records", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.url, args.file, args.per_job))))
        return
    print(json.dumps(run(args.records, args.repeat, args.per_job), indent=2))


if __name__ == "__main__":
    main()
