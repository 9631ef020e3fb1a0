"""What emulated jobs read from S3 and write back: the part both services share (aws-notes §2, §3).

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
  outputs are written (:mod:`.outputs`); a failed, stopped or expired job writes none.

Each service's formats are apart: :mod:`.bedrock_data` and :mod:`.personalize_data` plan a job
(read and check its input) and write its outputs. Here is what they share: the :class:`Plan`, S3
URIs, and how an output file is ordered and written. Output order is a knob (``output_order``): AWS
does not promise input order, so it is shuffled by default.

Where AWS documents no text (failure messages, a record error's ``errorMessage``, generated
``recordId``), the emulator's wording is its own, so clients must not match on it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import EmulatorConfig
from .s3 import S3Store


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


def input_lines(store: S3Store, plan: Plan, *, missing: str) -> Iterator[tuple[int, str, int, bytes]]:
    """Every non-blank line of every input file of ``plan``, in input order, as (the file's index,
    its key, the line's number from 1, the line). A file that cannot be read is an InputError
    whose text is ``missing`` with ``{uri}`` filled in (each service words it its own way)."""
    for index, (key, _name) in enumerate(plan.inputs):
        data = store.read(plan.input_bucket, key)
        if data is None:
            raise InputError(missing.format(uri=f"s3://{plan.input_bucket}/{key}"))
        for number, raw in enumerate(data.splitlines(), start=1):
            if raw.strip():
                yield index, key, number, raw


def as_folder(key: str) -> str:
    return key if not key or key.endswith("/") else key + "/"


def in_output_order(config: EmulatorConfig, job_arn: str, name: str, lines: list[bytes]) -> list[bytes]:
    if config.output_order == "shuffled":
        random.Random(f"{config.seed}/order/{job_arn}/{name}").shuffle(lines)
    return lines


def write_output(store: S3Store, plan: Plan, name: str, lines: list[bytes]) -> None:
    key = f"{plan.output_prefix}{name}"
    body = b"".join(line + b"\n" for line in lines)
    if store.write(plan.output_bucket, key, body):
        plan.written.append(key)
