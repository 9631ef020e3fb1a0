"""The HTTP side of the wire: what a request's signature says, and the shape of every answer.

A request is signed for S3 or for an API (its SigV4 credential scope), and the scope names the
caller's region. An answer is a success or an :class:`~asyncjobs.emulator.wire.ApiError` in each
protocol's exact shape (aws-notes §1: Bedrock rest-json, Personalize json 1.1), always with
``x-amzn-RequestId``; or a control route's error; or no answer at all (a dropped connection).
Apart from the request pipeline (:mod:`.service`) so that each byte the server sends is decided in
one place, with no state.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from .config import EmulatorConfig
from .wire import (
    BEDROCK_STATUS,
    BEDROCK_THROTTLED_MESSAGE,
    EXPIRED_TOKEN_MESSAGE,
    RATE_EXCEEDED_MESSAGE,
    ApiError,
    access_denied_message,
)

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
#: The region and service of a SigV4 credential scope.
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_PERSONALIZE_JSON = "application/x-amz-json-1.1"


def scope_region(authorization: str) -> str | None:
    """The region of the SigV4 credential scope in an ``Authorization`` header, if it has one."""
    match = _CREDENTIAL_SCOPE.search(authorization)
    return match.group(1) if match else None


def signed_for_s3(request: web.Request) -> bool:
    """Whether the request is signed for S3: a SigV4 scope naming ``s3`` (in the Authorization header,
    or a presigned URL's ``X-Amz-Credential``), or SigV2, which only S3 still takes."""
    authorization = request.headers.get("Authorization", "")
    query = request.query
    if authorization.startswith("AWS ") or ("AWSAccessKeyId" in query and "Signature" in query):
        return True
    credential = authorization or f"Credential={query.get('X-Amz-Credential', '')}"
    scope = _SCOPE.search(credential)
    return scope is not None and scope.group(2) == "s3"


def new_request_id() -> str:
    return str(uuid.uuid4())


def auth_fault_error(config: EmulatorConfig, service: str, operation: str) -> ApiError:
    """The refusal of an ``auth_fault``, with the status AWS sends for it on each protocol."""
    if config.auth_fault == "expired-token":
        # REST-JSON services (Bedrock) answer 403, JSON 1.1 services (Personalize) 400.
        status = 403 if service == "bedrock" else 400
        return ApiError("ExpiredTokenException", EXPIRED_TOKEN_MESSAGE, status=status)
    message = access_denied_message(config.account_id, service, operation)
    return ApiError("AccessDeniedException", message, status=403)


def throttled_error(service: str, config: EmulatorConfig) -> ApiError:
    if service == "bedrock":
        return ApiError("ThrottlingException", BEDROCK_THROTTLED_MESSAGE)
    message = RATE_EXCEEDED_MESSAGE if config.limit_message is None else config.limit_message
    return ApiError("LimitExceededException", message)


def ok_response(service: str, result: dict[str, Any], request_id: str) -> web.Response:
    content_type = "application/json" if service == "bedrock" else _PERSONALIZE_JSON
    return web.Response(
        body=json.dumps(result).encode(),
        content_type=content_type,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(service: str, error: ApiError, request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id}
    if service == "bedrock":
        status = error.status or BEDROCK_STATUS.get(error.code, 400)
        headers["x-amzn-ErrorType"] = error.code
        content_type = "application/json"
    else:
        status = error.status or 400
        content_type = _PERSONALIZE_JSON
    body = {"__type": error.code, "message": error.message}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=content_type, headers=headers
    )


def control_error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without a response (aiohttp then finds nothing to write to)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
