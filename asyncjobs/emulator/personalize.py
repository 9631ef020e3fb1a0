"""Personalize batch inference and batch segment jobs over json 1.1: parse, validate, act, serialize.

Every call is ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Operation>``.
Timestamps are epoch-second numbers. Describe echoes every member the create call
took (tags excepted, as AWS does), with the documented defaults filled in:
``batchInferenceJobMode`` BATCH_INFERENCE and ``numResults`` 25 (the console's).
Lists are newest first, 100 per page by default. TagResource, UntagResource and
ListTagsForResource (``resourceArn``, tags as ``[{tagKey, tagValue}]``) work on the emulator's
jobs, those given at create included; any other ARN is not found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .calls import Call, check_input
from .jobs import PERSONALIZE, PERSONALIZE_SEGMENT, EmuJob
from .listing import list_personalize
from .personalize_data import DEFAULT_NUM_RESULTS
from .state import EmulatorState
from .wire import epoch_number

SERVICE = "personalize"
TARGET_PREFIX = "AmazonPersonalize."
INVALID = "InvalidInputException"
DEFAULT_MAX_RESULTS = 100

Handler = Callable[[EmulatorState, Call], dict[str, Any]]

#: Per job kind: the ARN member, the Describe wrapper, the List result key.
_NAMES = {
    PERSONALIZE: ("batchInferenceJobArn", "batchInferenceJob", "batchInferenceJobs"),
    PERSONALIZE_SEGMENT: ("batchSegmentJobArn", "batchSegmentJob", "batchSegmentJobs"),
}
_ECHOED = ("filterArn", "numResults", "jobInput", "jobOutput", "roleArn")
_INFERENCE_ONLY = ("batchInferenceJobConfig", "batchInferenceJobMode", "themeGenerationConfig")


def _create(kind: str) -> Handler:
    def handler(state: EmulatorState, call: Call) -> dict[str, Any]:
        params = call.json_body(INVALID)
        check_input(SERVICE, call.operation, params, INVALID)
        job = state.create_personalize(kind, call.region, params)
        return {_NAMES[kind][0]: job.arn}

    return handler


def _describe(kind: str) -> Handler:
    def handler(state: EmulatorState, call: Call) -> dict[str, Any]:
        params = call.json_body(INVALID)
        check_input(SERVICE, call.operation, params, INVALID)
        arn_member, wrapper, _ = _NAMES[kind]
        job = state.find_personalize(kind, call.region, params[arn_member])
        return {wrapper: job_json(job, state.now())}

    return handler


def _list(kind: str) -> Handler:
    def handler(state: EmulatorState, call: Call) -> dict[str, Any]:
        params = call.json_body(INVALID)
        check_input(SERVICE, call.operation, params, INVALID)
        listing = list_personalize(
            state,
            kind,
            call.region,
            solution_version_arn=params.get("solutionVersionArn"),
            max_results=params.get("maxResults", DEFAULT_MAX_RESULTS),
            next_token=params.get("nextToken"),
        )
        # each job as it was when the (possibly lagging) list shows it
        result: dict[str, Any] = {_NAMES[kind][2]: [summary_json(job, listing.as_of) for job in listing.jobs]}
        if listing.next_token is not None:
            result["nextToken"] = listing.next_token
        return result

    return handler


def _tag_resource(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    job = state.find_tagged(SERVICE, call.region, params["resourceArn"])
    state.tag(job, {str(tag["tagKey"]): str(tag["tagValue"]) for tag in params["tags"]})
    return {}


def _untag_resource(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    state.untag(state.find_tagged(SERVICE, call.region, params["resourceArn"]), list(params["tagKeys"]))
    return {}


def _list_tags(state: EmulatorState, call: Call) -> dict[str, Any]:
    params = call.json_body(INVALID)
    check_input(SERVICE, call.operation, params, INVALID)
    job = state.find_tagged(SERVICE, call.region, params["resourceArn"])
    return {"tags": [{"tagKey": key, "tagValue": value} for key, value in job.tags.items()]}


HANDLERS: dict[str, Handler] = {
    "TagResource": _tag_resource,
    "UntagResource": _untag_resource,
    "ListTagsForResource": _list_tags,
    "CreateBatchInferenceJob": _create(PERSONALIZE),
    "DescribeBatchInferenceJob": _describe(PERSONALIZE),
    "ListBatchInferenceJobs": _list(PERSONALIZE),
    "CreateBatchSegmentJob": _create(PERSONALIZE_SEGMENT),
    "DescribeBatchSegmentJob": _describe(PERSONALIZE_SEGMENT),
    "ListBatchSegmentJobs": _list(PERSONALIZE_SEGMENT),
}


def _common(job: EmuJob, now: float) -> dict[str, Any]:
    start, status = job.entry_at(now)
    out: dict[str, Any] = {
        _NAMES[job.kind][0]: job.arn,
        "jobName": job.name,
        "status": status,
        "creationDateTime": epoch_number(job.submit_time),
        "lastUpdatedDateTime": epoch_number(start),
        "solutionVersionArn": job.request["solutionVersionArn"],
    }
    message = job.message_at(now)
    if message is not None:
        out["failureReason"] = message
    if job.kind == PERSONALIZE:
        out["batchInferenceJobMode"] = job.request.get("batchInferenceJobMode", "BATCH_INFERENCE")
    return out


def job_json(job: EmuJob, now: float) -> dict[str, Any]:
    """The Describe output's job object."""
    out = _common(job, now)
    request = job.request
    fields = _ECHOED + _INFERENCE_ONLY if job.kind == PERSONALIZE else _ECHOED
    out.update({name: request[name] for name in fields if name in request})
    out.setdefault("numResults", DEFAULT_NUM_RESULTS)
    return out


def summary_json(job: EmuJob, now: float) -> dict[str, Any]:
    """A List output's job summary."""
    return _common(job, now)
