"""What emulated jobs read from S3 and write back, in the services' formats (aws-notes §2, §3).

**When a job touches S3.** Only when its input bucket exists in the emulator's S3: every campaign
that names buckets it never created (the tests, benchmarks and demo written before S3 existed here)
keeps its jobs as they were, with no I/O. Otherwise:

- At create, the job's input is read and checked, as Bedrock's Validating phase and Personalize's
  pending phase do. A missing input, a missing output bucket, a malformed line, or (Bedrock) fewer
  records than ``bedrock_min_records`` or more than ``bedrock_max_records`` make the job fail at the
  end of that phase, with a message naming the cause (:class:`Plan` ``failure``).
- Every record's fate is drawn then, from an RNG seeded by ``(seed, job ARN)``: with
  ``record_error_rate`` a record ends with an ``error`` object instead of a ``modelOutput``, and a
  Bedrock job drawn ``PartiallyCompleted`` (``partial_rate``, "not all records processed in time")
  leaves a drawn share of its records out of the output. A job drawn ``Completed`` whose records
  include errors ends as ``record_errors_status`` says (PartiallyCompleted by default).
- When the job ends ``Completed``/``PartiallyCompleted`` (Bedrock) or ``ACTIVE`` (Personalize) the
  outputs are written (:func:`write_outputs`); a failed, stopped or expired job writes none.

Bedrock input is every ``.jsonl`` object at ``s3Uri`` (the object itself, or every one under it as a
folder). Output goes to ``<output s3Uri>/<jobId>/``: ``<input path under s3Uri>.out`` per input file
(``shard-1.jsonl`` gives ``shard-1.jsonl.out``) and ``manifest.json.out``. Personalize input is every
object under ``jobInput.s3DataSource.path`` (a prefix); output is ``<file name>.out`` per input file
under ``jobOutput.s3DataDestination.path``. Output order is a knob (``output_order``): AWS does not
promise input order, so it is shuffled by default.

The model outputs are fakes, deterministic in the input: a Bedrock record's ``modelOutput`` is an
Anthropic-Messages-shaped reply quoting the prompt, with token counts of about four characters a
token; Personalize recommends made-up item and user ids, or re-ranks a ranking input's ``itemList``.
Where AWS documents no text (failure messages, a record error's ``errorMessage``, generated
``recordId``), the emulator's wording is its own, so clients must not match on it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .config import EmulatorConfig
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
#: Personalize's numResults when the request has none (the console's default).
DEFAULT_NUM_RESULTS = 25
RECORD_ERROR_CODE = 400
RECORD_ERROR_MESSAGE = "The model could not process this record (an error injected by the emulator)"
#: The share of records a time-limited (PartiallyCompleted) job gets through, drawn per job.
_PARTIAL_SHARE = (0.5, 0.95)


class InputError(Exception):
    """The job's input cannot be used; the message is the job's failure message."""


@dataclass(slots=True)
class Plan:
    """What a job reads and writes, decided at create. JSON-ready via :meth:`to_json` (saved with the job)."""

    #: ``[key, output name]`` of each input object, in the order they are read.
    inputs: list[list[str]]
    input_bucket: str
    output_bucket: str
    #: The key prefix every output object is written under (ends with ``/`` or is empty).
    output_prefix: str
    #: The failure message, if the input failed validation.
    failure: str | None = None
    #: Whether the job runs out of time (drawn PartiallyCompleted): some records go unprocessed.
    partial: bool = False
    total: int = 0
    errors: int = 0
    unprocessed: int = 0
    #: Whether the outputs have been written (or the job ended without any).
    settled: bool = False
    #: The keys written, for tests and introspection.
    written: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "input_bucket": self.input_bucket,
            "output_bucket": self.output_bucket,
            "output_prefix": self.output_prefix,
            "failure": self.failure,
            "partial": self.partial,
            "total": self.total,
            "errors": self.errors,
            "unprocessed": self.unprocessed,
            "settled": self.settled,
            "written": self.written,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """The plan :meth:`to_json` wrote; TypeError/KeyError if ``data`` is not one."""
        return cls(**data)


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``(bucket, key)`` of an ``s3://`` URI, or None for any other scheme."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[len("s3://") :].partition("/")
    return (bucket, key) if bucket else None


def _folder(key: str) -> str:
    return key if not key or key.endswith("/") else key + "/"


# -- Bedrock


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
        [], bucket, out_bucket, f"{_folder(out_key)}{job_id}/", partial=outcome == "PartiallyCompleted"
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
    prefix = _folder(key)
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
    for index, (key, _name) in enumerate(plan.inputs):
        data = store.read(plan.input_bucket, key)
        if data is None:
            raise InputError(f"The input file s3://{plan.input_bucket}/{key} could not be read")
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
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
        _write(store, plan, name, _ordered(config, job_arn, name, file_lines))
    _write(store, plan, MANIFEST_NAME, [orjson.dumps(counts)])


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


# -- Personalize


def plan_personalize(store: S3Store, params: dict[str, Any]) -> Plan | None:
    """The plan of a new Personalize job, or None if its input bucket is not in the emulator's S3."""
    path = str(params["jobInput"]["s3DataSource"]["path"])
    location = split_s3_uri(path)
    if location is None or not store.bucket_exists(location[0]):
        return None
    bucket, prefix = location
    out_bucket, out_key = split_s3_uri(str(params["jobOutput"]["s3DataDestination"]["path"])) or ("", "")
    plan = Plan([], bucket, out_bucket, _folder(out_key))
    try:
        keys = [key for key in store.keys(bucket, prefix) if not key.endswith("/")]
        if not keys:
            raise InputError(f"Input data not found: there are no objects at {path}")
        plan.inputs = [[key, key.rsplit("/", 1)[-1] + ".out"] for key in keys]
        if not store.bucket_exists(out_bucket):
            raise InputError(f"Insufficient privileges for writing data to the output bucket {out_bucket}")
        plan.total = sum(1 for _ in _personalize_lines(store, plan))
    except InputError as exc:
        plan.failure = str(exc)
    return plan


def _personalize_lines(store: S3Store, plan: Plan) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, (key, _name) in enumerate(plan.inputs):
        data = store.read(plan.input_bucket, key)
        if data is None:
            raise InputError(f"Input data not found: s3://{plan.input_bucket}/{key}")
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict):
                raise InputError(
                    f"Input data is invalid: s3://{plan.input_bucket}/{key} line {number} "
                    "is not a JSON object"
                )
            yield index, line


def write_personalize(
    store: S3Store, config: EmulatorConfig, plan: Plan, job_arn: str, segment: bool, num_results: int
) -> None:
    """Write one ``.out`` file per input file of a job that ended ACTIVE."""
    lines: list[list[bytes]] = [[] for _ in plan.inputs]
    try:
        for index, line in _personalize_lines(store, plan):
            seed = f"{config.seed}/{job_arn}/{orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode()}"
            output = (
                _segment_output(line, seed, num_results)
                if segment
                else _inference_output(line, seed, num_results)
            )
            lines[index].append(orjson.dumps(output))
    except InputError:
        return
    for (_key, name), file_lines in zip(plan.inputs, lines, strict=True):
        _write(store, plan, name, _ordered(config, job_arn, name, file_lines))


def _inference_output(line: dict[str, Any], seed: str, num_results: int) -> dict[str, Any]:
    rng = random.Random(seed)
    item_list = line.get("itemList")
    if isinstance(item_list, list):  # PERSONALIZED_RANKING: the given items, re-ranked
        items = [str(item) for item in item_list]
        rng.shuffle(items)
    else:
        items = [f"item-{rng.randrange(1_000_000)}" for _ in range(num_results)]
    weights = sorted((rng.random() for _ in items), reverse=True)
    total = sum(weights) or 1.0
    scores = [round(weight / total, 6) for weight in weights]
    return {"input": line, "output": {"recommendedItems": items, "scores": scores}, "error": None}


def _segment_output(line: dict[str, Any], seed: str, num_results: int) -> dict[str, Any]:
    rng = random.Random(seed)
    users = [f"user-{rng.randrange(1_000_000)}" for _ in range(num_results)]
    if "itemAttributes" in line:  # Item-Attribute-Affinity echoes the query, not an input object
        return {"itemAttributes": line["itemAttributes"], "output": {"recommendedUsers": users}}
    return {"input": line, "output": {"recommendedUsers": users}}


# -- shared


def _ordered(config: EmulatorConfig, job_arn: str, name: str, lines: list[bytes]) -> list[bytes]:
    if config.output_order == "shuffled":
        random.Random(f"{config.seed}/order/{job_arn}/{name}").shuffle(lines)
    return lines


def _write(store: S3Store, plan: Plan, name: str, lines: list[bytes]) -> None:
    key = f"{plan.output_prefix}{name}"
    body = b"".join(line + b"\n" for line in lines)
    if store.write(plan.output_bucket, key, body):
        plan.written.append(key)
