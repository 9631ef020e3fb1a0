"""A Bedrock batch job's data: reading and checking its input, writing its outputs (aws-notes §2).

Input is every ``.jsonl`` object at ``s3Uri`` (the object itself, or every one under it as a
folder). Output goes to ``<output s3Uri>/<jobId>/``: ``<input path under s3Uri>.out`` per input file
(``shard-1.jsonl`` gives ``shard-1.jsonl.out``) and ``manifest.json.out``.

A record's ``modelOutput`` is a fake, deterministic in the input: an Anthropic-Messages-shaped reply
quoting the prompt, with token counts of about four characters a token. When a job touches S3 at
all, and how records' fates are drawn, is in :mod:`.jobdata`. Apart from Personalize's data: the
two formats share only the :class:`~asyncjobs.emulator.jobdata.Plan` and how a file is written.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .config import EmulatorConfig
from .jobdata import InputError, Plan, as_folder, in_output_order, input_lines, split_s3_uri, write_output
from .s3 import S3Store

#: The fields of a Bedrock manifest, in AWS's order.
MANIFEST_FIELDS = (
    "totalRecordCount",
    "processedRecordCount",
    "successRecordCount",
    "errorRecordCount",
    "inputTokenCount",
    "outputTokenCount",
)
MANIFEST_NAME = "manifest.json.out"
RECORD_ERROR_CODE = 400
RECORD_ERROR_MESSAGE = "The model could not process this record (an error injected by the emulator)"
#: The share of records a time-limited (PartiallyCompleted) job gets through, drawn per job.
_PARTIAL_SHARE = (0.5, 0.95)


def plan_bedrock(
    store: S3Store, config: EmulatorConfig, params: dict[str, Any], job_id: str, job_arn: str, outcome: str
) -> Plan | None:
    """The plan of a new Bedrock job that will end ``outcome`` (if it runs), or None if its input
    bucket is not in the emulator's S3."""
    uri = str(params["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
    location = split_s3_uri(uri)
    if location is None or not store.bucket_exists(location[0]):
        return None
    bucket, key = location
    output_uri = str(params["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
    out_bucket, out_key = split_s3_uri(output_uri) or ("", "")
    plan = Plan(
        [], bucket, out_bucket, f"{as_folder(out_key)}{job_id}/", partial=outcome == "PartiallyCompleted"
    )
    fates = _Fates(config, job_arn, plan.partial)
    try:
        plan.inputs = _bedrock_inputs(store, bucket, key, uri)
        if not store.bucket_exists(out_bucket):
            raise InputError(f"The output bucket {out_bucket} does not exist or the role cannot write to it")
        for _ in _bedrock_records(store, plan):
            plan.total += 1
            processed, failed = fates.next()
            plan.unprocessed += not processed
            plan.errors += processed and failed
    except InputError as exc:
        plan.failure = str(exc)
        return plan
    if plan.total < config.bedrock_min_records:
        plan.failure = (
            f"Batch job {job_arn} contains less records ({plan.total}) than the required minimum of: "
            f"{config.bedrock_min_records}"
        )
    elif plan.total > config.bedrock_max_records:
        plan.failure = (
            f"Batch job {job_arn} contains more records ({plan.total}) than the allowed maximum of: "
            f"{config.bedrock_max_records}"
        )
    if outcome not in ("Completed", "PartiallyCompleted"):
        plan.errors = plan.unprocessed = 0  # the job never gets to its records
    return plan


def _bedrock_inputs(store: S3Store, bucket: str, key: str, uri: str) -> list[list[str]]:
    """``[key, output name]`` of every .jsonl input: the object at ``key``, or those under it."""
    if key and not key.endswith("/") and key in store.keys(bucket, key):
        return [[key, key.rsplit("/", 1)[-1] + ".out"]]
    prefix = as_folder(key)
    inputs = [
        [name, name[len(prefix) :] + ".out"] for name in store.keys(bucket, prefix) if name.endswith(".jsonl")
    ]
    if not inputs:
        raise InputError(f"No .jsonl input files were found at {uri}")
    return inputs


@dataclass(frozen=True, slots=True)
class _Record:
    file_index: int
    record: dict[str, Any]


def _bedrock_records(store: S3Store, plan: Plan) -> Iterator[_Record]:
    """Every record of every input file, in input order; InputError on a malformed line."""
    lines = input_lines(store, plan, missing="The input file {uri} could not be read")
    for index, key, number, raw in lines:
        try:
            record = orjson.loads(raw)
        except ValueError:
            raise InputError(
                f"s3://{plan.input_bucket}/{key} line {number}: the record is not valid JSON"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("modelInput"), dict):
            raise InputError(
                f"s3://{plan.input_bucket}/{key} line {number}: the record has no modelInput object"
            )
        yield _Record(index, record)


class _Fates:
    """Each record's drawn fate, in input order: an error, and whether a partial job processed it."""

    def __init__(self, config: EmulatorConfig, job_arn: str, partial: bool) -> None:
        self._rng = random.Random(f"{config.seed}/records/{job_arn}")
        share = self._rng.uniform(*_PARTIAL_SHARE)
        self._share = share if partial else 1.0
        self._error_rate = config.record_error_rate

    def next(self) -> tuple[bool, bool]:
        """``(processed, failed)`` of the next record (two draws each, whatever the job's outcome)."""
        processed_draw, error_draw = self._rng.random(), self._rng.random()
        return processed_draw < self._share, error_draw < self._error_rate


def write_bedrock(store: S3Store, config: EmulatorConfig, plan: Plan, job_arn: str) -> None:
    """Write every ``.out`` file and the manifest of a job that has ended Completed/PartiallyCompleted."""
    fates = _Fates(config, job_arn, plan.partial)
    job_id = job_arn.rsplit("/", 1)[-1]
    counts = dict.fromkeys(MANIFEST_FIELDS, 0)
    lines: list[list[bytes]] = [[] for _ in plan.inputs]
    number = 0
    try:
        for item in _bedrock_records(store, plan):
            number += 1
            counts["totalRecordCount"] += 1
            processed, failed = fates.next()
            if not processed:
                continue
            counts["processedRecordCount"] += 1
            record_id = item.record.get("recordId")
            if not isinstance(record_id, str) or not record_id:
                record_id = f"{number:011d}"
            model_input = item.record["modelInput"]
            input_tokens = _tokens(orjson.dumps(model_input).decode())
            counts["inputTokenCount"] += input_tokens
            line: dict[str, Any] = {"recordId": record_id, "modelInput": model_input}
            if failed:
                counts["errorRecordCount"] += 1
                line["error"] = {"errorCode": RECORD_ERROR_CODE, "errorMessage": RECORD_ERROR_MESSAGE}
            else:
                counts["successRecordCount"] += 1
                line["modelOutput"] = _fake_completion(job_id, record_id, model_input, input_tokens)
                counts["outputTokenCount"] += line["modelOutput"]["usage"]["output_tokens"]
            lines[item.file_index].append(orjson.dumps(line))
    except InputError:
        return  # the input vanished or changed since create: nothing sensible to write
    for (_key, name), file_lines in zip(plan.inputs, lines, strict=True):
        write_output(store, plan, name, in_output_order(config, job_arn, name, file_lines))
    write_output(store, plan, MANIFEST_NAME, [orjson.dumps(counts)])


def _fake_completion(
    job_id: str, record_id: str, model_input: dict[str, Any], input_tokens: int
) -> dict[str, Any]:
    """A deterministic, Anthropic-Messages-shaped reply that quotes the start of the prompt."""
    prompt = _prompt_text(model_input)
    text = f"Emulated reply to: {prompt[:80]}"
    digest = hashlib.sha256(f"{job_id}/{record_id}/{prompt}".encode()).hexdigest()[:24]
    return {
        "id": f"msg_emu_{digest}",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": _tokens(text)},
    }


def _prompt_text(model_input: dict[str, Any]) -> str:
    """The prompt's text: the last message's text (Messages/Converse shapes), or the input as JSON."""
    messages = model_input.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    for name in ("prompt", "inputText"):
        if isinstance(model_input.get(name), str):
            return str(model_input[name])
    return orjson.dumps(model_input, option=orjson.OPT_SORT_KEYS).decode()


def _tokens(text: str) -> int:
    """About four characters a token, at least one."""
    return max(1, (len(text) + 3) // 4)
