"""Bedrock model invocation jobs over rest-json: parse, validate, act, serialize.

Routes (method + path, aws-notes §2)::

    POST /model-invocation-job                        CreateModelInvocationJob
    GET  /model-invocation-job/{jobIdentifier}        GetModelInvocationJob (ARN, percent-encoded, or id)
    GET  /model-invocation-jobs?...                   ListModelInvocationJobs
    POST /model-invocation-job/{jobIdentifier}/stop   StopModelInvocationJob
    POST /tagResource                                 TagResource ({resourceARN, tags: [{key, value}]})
    POST /untagResource                               UntagResource ({resourceARN, tagKeys})
    POST /listTagsForResource                         ListTagsForResource ({resourceARN} -> {tags})

Tags work on the emulator's jobs (those given at create included); any other ARN is not found.

Timestamps are ISO 8601 strings. ``maxResults`` defaults to 100 and lists are newest
first when no ``sortOrder`` is given (AWS documents neither).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .calls import Call, check_input
from .jobs import EmuJob
from .listing import list_bedrock
from .state import EmulatorState
from .wire import ApiError, iso8601

SERVICE = "bedrock"
INVALID = "ValidationException"
DEFAULT_MAX_RESULTS = 100

Handler = Callable[[EmulatorState, Call], dict[str, Any]]


def create(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    job, _replayed = state.create_bedrock(call.region, params)
    return {"jobArn": job.arn}


def get(state: EmulatorState, call: Call) -> dict[str, Any]:
    identifier = call.path_params["jobIdentifier"]
    check_input(SERVICE, call.operation, {"jobIdentifier": identifier}, INVALID)
    return job_json(state.find_bedrock(call.region, identifier), state.now())


def stop(state: EmulatorState, call: Call) -> dict[str, Any]:
    identifier = call.path_params["jobIdentifier"]
    check_input(SERVICE, call.operation, {"jobIdentifier": identifier}, INVALID)
    state.stop_bedrock(call.region, identifier)
    return {}


def list_jobs(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = _list_params(call.query)
    check_input(SERVICE, call.operation, params, INVALID)
    after, before = params.get("submitTimeAfter"), params.get("submitTimeBefore")
    listing = list_bedrock(
        state,
        call.region,
        status=params.get("statusEquals"),
        name_contains=params.get("nameContains"),
        after=after.timestamp() if after else None,
        before=before.timestamp() if before else None,
        descending=params.get("sortOrder", "Descending") == "Descending",
        max_results=params.get("maxResults", DEFAULT_MAX_RESULTS),
        next_token=params.get("nextToken"),
    )
    # each job as it was when the (possibly lagging) list shows it
    summaries = [job_json(job, listing.as_of) for job in listing.jobs]
    result: dict[str, Any] = {"invocationJobSummaries": summaries}
    if listing.next_token is not None:
        result["nextToken"] = listing.next_token
    return result


def tag_resource(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    job = state.find_tagged(SERVICE, call.region, params["resourceARN"])
    state.tag(job, {str(tag["key"]): str(tag["value"]) for tag in params["tags"]})
    return {}


def untag_resource(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    state.untag(state.find_tagged(SERVICE, call.region, params["resourceARN"]), list(params["tagKeys"]))
    return {}


def list_tags(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    job = state.find_tagged(SERVICE, call.region, params["resourceARN"])
    return {"tags": [{"key": key, "value": value} for key, value in job.tags.items()]}


HANDLERS: dict[str, Handler] = {
    "CreateModelInvocationJob": create,
    "GetModelInvocationJob": get,
    "ListModelInvocationJobs": list_jobs,
    "StopModelInvocationJob": stop,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags,
}


def job_json(job: EmuJob, now: float) -> dict[str, Any]:
    """The GetModelInvocationJob output (a list summary has the same members)."""
    start, status = job.entry_at(now)
    request = job.request
    out: dict[str, Any] = {
        "jobArn": job.arn,
        "jobName": job.name,
        "modelId": request["modelId"],
        "roleArn": request["roleArn"],
        "status": status,
        "submitTime": iso8601(job.submit_time),
        "lastModifiedTime": iso8601(start),
        "inputDataConfig": request["inputDataConfig"],
        "outputDataConfig": request["outputDataConfig"],
        "timeoutDurationInHours": job.timeout_hours,
    }
    if job.token is not None:
        out["clientRequestToken"] = job.token
    message = job.message_at(now)
    if message is not None:
        out["message"] = message
    end = job.end_time_at(now)
    if end is not None:
        out["endTime"] = iso8601(end)
    if "vpcConfig" in request:
        out["vpcConfig"] = request["vpcConfig"]
    if job.expiration_time is not None:
        out["jobExpirationTime"] = iso8601(job.expiration_time)
    return out


def _list_params(query: dict[str, str] | Any) -> dict[str, Any]:
    """The list operation's query string as typed members (integers, datetimes)."""
    params: dict[str, Any] = {}
    for name in ("statusEquals", "nameContains", "nextToken", "sortBy", "sortOrder"):
        if name in query:
            params[name] = query[name]
    if "maxResults" in query:
        raw = query["maxResults"]
        try:
            params["maxResults"] = int(raw)
        except ValueError:
            raise ApiError(INVALID, _bad_value(raw, "maxResults", "Member must be an integer")) from None
    for name in ("submitTimeAfter", "submitTimeBefore"):
        if name in query:
            params[name] = _timestamp(name, query[name])
    return params


def _timestamp(name: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        try:
            value = datetime.fromtimestamp(float(raw), UTC)
        except (ValueError, OverflowError):
            raise ApiError(INVALID, _bad_value(raw, name, "Member must be an ISO 8601 timestamp")) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _bad_value(raw: str, name: str, detail: str) -> str:
    return f"1 validation error detected: Value '{raw}' at '{name}' failed to satisfy constraint: {detail}"
