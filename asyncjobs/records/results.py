"""Results: a finished shard job's outputs joined back to its records, in input order.

Where the outputs are (:func:`output_locations`):

- Bedrock writes ``<output s3Uri>/<job id>/<input file name>.out`` (one line per record:
  ``recordId``, ``modelInput``, and ``modelOutput`` or an ``error`` object) and
  ``manifest.json.out`` (record and token counts) beside it; the job id is the last part
  of the job ARN.
- Personalize writes ``<jobOutput path>/<input file name>.out``, lines of ``input``,
  ``output`` and ``error``, and no manifest.

Output order is not guaranteed (aws-notes §2), so :func:`write_results` joins on the
record key (Bedrock's ``recordId``, Personalize's echoed ``input`` as canonical JSON).
To keep memory flat however large the outputs, each output line is streamed from S3
into a temporary SQLite index keyed by record key (on disk, deleted afterwards); the
records file is then re-read in order, and each record's result looked up. One line per
input record is written to ``DIR/<line id>.jsonl``:

- Bedrock: ``{"recordId": ..., "modelOutput": ...}`` or ``{"recordId": ..., "error": ...}``;
- Personalize: ``{"input": ..., "output": ...}`` or ``{"input": ..., "error": ...}``;

and a record no output mentions gets ``"error": {"errorMessage": "missing from the job's
output"}``. Outputs of retry shards (:mod:`asyncjobs.records.retry`) are indexed with
the rest: a record's success wins over its errors, whichever attempt gave it.

With ``retry_file``, the failed and missing records are also written there, as they were
uploaded (with their record ids), for a retry to cut into new shards.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread
import orjson
import structlog
from botocore.exceptions import ClientError

from asyncjobs.model import Service
from asyncjobs.records.shards import Shard, shard_records
from asyncjobs.records.upload import split_s3_uri

MISSING = {"errorMessage": "missing from the job's output"}
#: The manifest's token counters, summed per line id.
TOKEN_FIELDS = ("inputTokenCount", "outputTokenCount")
_BATCH = 1000

_log = structlog.get_logger("asyncjobs.records")


@dataclass(frozen=True, slots=True)
class ShardOutput:
    """A finished shard job and where its outputs are."""

    #: The shard job's id (``summaries/00001``).
    id: str
    service: Service
    shard: Shard
    #: Empty when the job gave no output: every record of the shard is then missing.
    output_uri: str
    manifest_uri: str | None = None
    #: A retry shard: its records are some of the line's, not more of them.
    retry: bool = False


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """The outcome of one records line."""

    id: str
    path: Path
    records: int
    succeeded: int
    failed: int
    #: Of the failed: records no output mentions.
    missing: int
    #: Summed over the manifests found (Bedrock); empty when none was.
    tokens: dict[str, int] = field(default_factory=dict)


def output_locations(service: Service, request: Any, input_uri: str, job_arn: str) -> tuple[str, str | None]:
    """The output file and the manifest (None for Personalize) of the job ``job_arn``."""
    name = input_uri.rsplit("/", 1)[-1]
    if service is Service.BEDROCK:
        prefix = request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].rstrip("/")
        folder = f"{prefix}/{job_arn.rsplit('/', 1)[-1]}/"
        return f"{folder}{name}.out", f"{folder}manifest.json.out"
    prefix = request["jobOutput"]["s3DataDestination"]["path"].rstrip("/")
    return f"{prefix}/{name}.out", None


def results_path(out_dir: str | os.PathLike[str], line_id: str) -> Path:
    """``DIR/<line id>.jsonl``, the id percent-encoded where it is not a plain file name."""
    return Path(out_dir) / f"{urllib.parse.quote(line_id, safe=' -_.@+=,')}.jsonl"


async def write_results(
    s3: Any,
    line_id: str,
    outputs: Sequence[ShardOutput],
    out_dir: str | os.PathLike[str],
    *,
    retry_file: str | os.PathLike[str] | None = None,
) -> ResultSummary:
    """Fetch ``outputs`` (the line's shards in order, then any retry shards) and write
    ``DIR/<line id>.jsonl``; ``s3`` is an aioboto3 S3 client."""
    path = results_path(out_dir, line_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="asyncjobs-results-") as scratch:
        index = _Index(os.path.join(scratch, "index.db"))
        try:
            for output in outputs:
                await _index_output(s3, output, index)
                if output.manifest_uri:
                    manifest = await fetch_json(s3, output.manifest_uri)
                    for name in TOKEN_FIELDS:
                        if isinstance(manifest, dict) and isinstance(manifest.get(name), int):
                            tokens[name] = tokens.get(name, 0) + manifest[name]
            counts = await anyio.to_thread.run_sync(
                _write, [o for o in outputs if not o.retry], index, path, retry_file
            )
        finally:
            index.close()
    summary = ResultSummary(line_id, path, *counts, tokens=tokens)
    _log.info(
        "asyncjobs.records.results_written",
        id=line_id,
        path=str(path),
        records=summary.records,
        succeeded=summary.succeeded,
        failed=summary.failed,
        missing=summary.missing,
    )
    return summary


class _Index:
    """recordKey -> (ok, result line), on disk; a success is never replaced by an error."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE results (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, line BLOB NOT NULL)"
        )

    def add(self, rows: Sequence[tuple[str, int, bytes]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO results VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                " SET ok = excluded.ok, line = excluded.line WHERE excluded.ok >= results.ok",
                rows,
            )

    def get(self, key: str) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT ok, line FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def close(self) -> None:
        self._db.close()


async def _index_output(s3: Any, output: ShardOutput, index: _Index) -> None:
    if not output.output_uri:
        return  # the shard's job gave no output (it failed, or never ran): its records are missing
    bucket, key = split_s3_uri(output.output_uri)
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            _log.warning("asyncjobs.records.output_missing", id=output.id, uri=output.output_uri)
            return  # every record of the shard is then missing
        raise
    rows: list[tuple[str, int, bytes]] = []
    body = response["Body"]
    async with body:  # an aiobotocore StreamingBody, released at the end
        async for line in _lines(body):
            row = _result_row(output.service, line)
            if row is not None:
                rows.append(row)
            if len(rows) >= _BATCH:
                await anyio.to_thread.run_sync(index.add, rows)
                rows = []
    if rows:
        await anyio.to_thread.run_sync(index.add, rows)


async def _lines(body: Any) -> Any:
    """The non-blank lines of a streamed object body, bounded by the longest line."""
    pending = b""
    while chunk := await body.read(1 << 20):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _result_row(service: Service, line: bytes) -> tuple[str, int, bytes] | None:
    """(key, ok, result line) of one output line; None for a line that names no record."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    if service is Service.BEDROCK:
        key = value.get("recordId")
        if not isinstance(key, str):
            return None
        if value.get("error") is None and "modelOutput" in value:
            return key, 1, orjson.dumps({"recordId": key, "modelOutput": value["modelOutput"]})
        return key, 0, orjson.dumps({"recordId": key, "error": value.get("error") or MISSING})
    echoed = value.get("input")
    if not isinstance(echoed, dict):
        return None
    key = orjson.dumps(echoed, option=orjson.OPT_SORT_KEYS).decode()
    if value.get("error") is None and "output" in value:
        return key, 1, orjson.dumps({"input": echoed, "output": value["output"]})
    return key, 0, orjson.dumps({"input": echoed, "error": value.get("error") or MISSING})


def _write(
    outputs: Sequence[ShardOutput], index: _Index, path: Path, retry_file: str | os.PathLike[str] | None
) -> tuple[int, int, int, int]:
    records = succeeded = failed = missing = 0
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as sink, _maybe_open(retry_file) as retry:
        for output in outputs:
            for record in shard_records(output.shard, output.service):
                records += 1
                found = index.get(record.key)
                if found is not None and found[0]:
                    succeeded += 1
                    sink.write(found[1] + b"\n")
                    continue
                failed += 1
                if found is None:
                    missing += 1
                    sink.write(_missing_line(output.service, record.key) + b"\n")
                else:
                    sink.write(found[1] + b"\n")
                if retry is not None:
                    retry.write(record.data)
    os.replace(partial, path)  # a crash leaves the previous results file whole
    return records, succeeded, failed, missing


def _missing_line(service: Service, key: str) -> bytes:
    if service is Service.BEDROCK:
        return orjson.dumps({"recordId": key, "error": MISSING})
    return orjson.dumps({"input": orjson.loads(key), "error": MISSING})


def _maybe_open(path: str | os.PathLike[str] | None) -> Any:
    return contextlib.nullcontext() if path is None else open(path, "wb")


async def fetch_json(s3: Any, uri: str) -> Any:
    """The JSON object at ``uri`` (a manifest); None if it is not there or not JSON."""
    bucket, key = split_s3_uri(uri)
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    body = response["Body"]
    async with body:
        data = await body.read()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def iter_result_lines(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The lines of a results file, decoded (for callers and tests)."""
    stream: BinaryIO
    with open(path, "rb") as stream:
        for line in stream:
            if line.strip():
                yield orjson.loads(line)
