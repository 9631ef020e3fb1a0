"""Specs for tests, built one way: create requests, campaign lines and journal :class:`JobSpec`s.

- Create requests: :func:`bedrock_job`, :func:`personalize_job`, :func:`segment_job` (valid,
  with a ``jobName``), and the account, role, model and solution version they name.
- Campaign lines (dicts, as a campaign file holds them): :func:`spec`, :func:`named`,
  :func:`mixed_specs`, :func:`distinct_specs`; :func:`write_campaign` writes them.
- Journal specs (:class:`JobSpec`): :func:`numbered_spec`, :func:`minimal_specs`,
  :func:`bedrock_specs`, :func:`personalize_specs`, :func:`alternating_specs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from asyncjobs.model import JobSpec, Service

ACCOUNT = "123456789012"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
OTHER_MODEL = "amazon.nova-lite-v1:0"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BatchRole"
SOLUTION_VERSION = f"arn:aws:personalize:us-east-1:{ACCOUNT}:solution/movies/abcdef12"


# ----------------------------------------------------------------------------- create requests
def bedrock_job(name: str = "job1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateModelInvocationJob request."""
    request: dict[str, Any] = {
        "jobName": name,
        "roleArn": ROLE,
        "modelId": MODEL,
        "inputDataConfig": {
            "s3InputDataConfig": {"s3Uri": "s3://input-bucket/batch/", "s3InputFormat": "JSONL"}
        },
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://output-bucket/results/"}},
    }
    request.update(overrides)
    return request


def segment_job(name: str = "segment1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateBatchSegmentJob request."""
    request: dict[str, Any] = {
        "jobName": name,
        "solutionVersionArn": SOLUTION_VERSION,
        "jobInput": {"s3DataSource": {"path": "s3://input-bucket/segments/"}},
        "jobOutput": {"s3DataDestination": {"path": "s3://output-bucket/segments/"}},
        "roleArn": ROLE,
    }
    request.update(overrides)
    return request


def personalize_job(name: str = "inference1", **overrides: Any) -> dict[str, Any]:
    """A valid CreateBatchInferenceJob request."""
    request = segment_job(name)
    request["jobInput"] = {"s3DataSource": {"path": "s3://input-bucket/users/"}}
    request["jobOutput"] = {"s3DataDestination": {"path": "s3://output-bucket/recommendations/"}}
    request.update(overrides)
    return request


# ----------------------------------------------------------------------------- campaign lines
_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "bedrock": bedrock_job,
    "personalize": personalize_job,
    "personalize-segment": segment_job,
}


def spec(spec_id: str, service: str, **overrides: Any) -> dict[str, Any]:
    """A campaign line of ``service`` without a jobName (the engine derives one)."""
    request = _BUILDERS[service](**overrides)
    request.pop("jobName")
    return {"id": spec_id, "service": service, "request": request}


def named(spec_id: str, name: str) -> dict[str, Any]:
    """A Bedrock campaign line that gives its own jobName."""
    line = spec(spec_id, "bedrock")
    line["request"]["jobName"] = name
    return line


def mixed_specs(n: int) -> list[dict[str, Any]]:
    """``n`` lines ``job-000``...: mostly Bedrock, with Personalize inference and segment jobs
    mixed in (the lines of one service differ only in their ids)."""
    services = ("bedrock", "bedrock", "personalize", "bedrock", "personalize-segment")
    return [spec(f"job-{i:03d}", services[i % len(services)]) for i in range(n)]


#: Mostly Bedrock (two models), with both Personalize kinds mixed in.
_MIX = ("bedrock", "personalize", "bedrock", "personalize-segment", "bedrock")


def distinct_specs(n: int, prefix: str = "job") -> list[dict[str, Any]]:
    """``n`` lines ``<prefix>-0000``... with distinct inputs: Bedrock on two models,
    Personalize inference and segment jobs."""
    specs = []
    for i in range(n):
        service = _MIX[i % len(_MIX)]
        if service == "bedrock":
            overrides: dict[str, Any] = {
                "modelId": (MODEL, OTHER_MODEL)[(i // len(_MIX)) % 2],
                "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://input-bucket/batch/{i}.jsonl"}},
            }
        else:
            overrides = {"jobInput": {"s3DataSource": {"path": f"s3://input-bucket/{prefix}/{i}/"}}}
        specs.append(spec(f"{prefix}-{i:04d}", service, **overrides))
    return specs


def write_campaign(path: Path, specs: Iterable[Mapping[str, Any]]) -> Path:
    """``specs`` as a campaign file (JSON lines) at ``path``."""
    path.write_text("".join(json.dumps(s) + "\n" for s in specs), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- journal specs
def numbered_spec(i: int, model: str = "m1", **extra: object) -> JobSpec:
    """Spec ``s<i>`` from line ``i + 1`` of ``c.jsonl``: a minimal Bedrock request (the journal
    does not validate requests)."""
    request = {"modelId": model, "roleArn": "r", **extra}
    return JobSpec(f"s{i}", Service.BEDROCK, request, source=f"c.jsonl:{i + 1}")


def minimal_specs(n: int, model: str = "m1") -> list[JobSpec]:
    """Specs ``job0``... of one model, with minimal requests (for a fake service)."""
    return [
        JobSpec(
            id=f"job{i}", service=Service.BEDROCK, request={"modelId": model, "roleArn": "r"}, source=f"t:{i}"
        )
        for i in range(n)
    ]


def bedrock_specs(n: int, model: str = MODEL, prefix: str = "b") -> list[JobSpec]:
    """Valid Bedrock specs ``<prefix>0``... of ``model``, each with its own input."""
    out = []
    for i in range(n):
        request = bedrock_job(modelId=model)
        del request["jobName"]
        request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] = (
            f"s3://input-bucket/batch/{prefix}{i}.jsonl"
        )
        out.append(JobSpec(f"{prefix}{i}", Service.BEDROCK, request))
    return out


def personalize_specs(n: int, service: Service = Service.PERSONALIZE, prefix: str = "p") -> list[JobSpec]:
    """Valid Personalize specs ``<prefix>0``... (inference or segment jobs), each with its own input."""
    make = personalize_job if service is Service.PERSONALIZE else segment_job
    out = []
    for i in range(n):
        request = make()
        del request["jobName"]
        request["jobInput"] = {"s3DataSource": {"path": f"s3://input-bucket/{prefix}{i}/"}}
        out.append(JobSpec(f"{prefix}{i}", service, request))
    return out


def alternating_specs(n: int) -> list[JobSpec]:
    """Valid specs ``s0``...: two Bedrock specs, then a Personalize one, each with its own input."""
    out = []
    for i in range(n):
        if i % 3 == 2:
            request = personalize_job(jobInput={"s3DataSource": {"path": f"s3://input-bucket/p{i}/"}})
            service = Service.PERSONALIZE
        else:
            request = bedrock_job(inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://input-bucket/b{i}"}})
            service = Service.BEDROCK
        del request["jobName"]
        out.append(JobSpec(f"s{i}", service, request))
    return out
