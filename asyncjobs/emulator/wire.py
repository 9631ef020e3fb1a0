"""What travels on the wire, independent of the HTTP server: errors, timestamps, messages.

An :class:`ApiError` carries an AWS error code and message; the server turns it into
each protocol's exact shape (aws-notes §1):

- Bedrock (rest-json): the status of the modeled exception, header
  ``x-amzn-ErrorType: <Code>``, body ``{"message": ...}``.
- Personalize (json 1.1): status 400 (500 for injected faults, 403 for access denied),
  body ``{"__type": <Code>, "message": ...}``; botocore reads the code from ``__type`` only.

The message texts below are stable: the engine tells a Personalize rate throttle
("rate", "per second") from a full running-jobs quota ("active", "jobs") by their words.
AWS documents neither text, so ``EmulatorConfig.limit_message`` can replace both with
one, to rehearse a client that cannot tell them apart by the message.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

#: HTTP status of each Bedrock error code (from the service model).
BEDROCK_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ConflictException": 400,
    "ServiceQuotaExceededException": 400,
    "TooManyTagsException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "UnknownOperationException": 404,
}

RATE_EXCEEDED_MESSAGE = "Rate exceeded: too many requests per second"
BEDROCK_THROTTLED_MESSAGE = "Too many requests, please wait before trying again. " + RATE_EXCEEDED_MESSAGE
INTERNAL_ERROR_MESSAGE = "Internal server error (injected by the asyncjobs emulator)"
MISSING_AUTH_MESSAGE = "Missing Authentication Token: the request has no SigV4 Authorization header"
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"

PERSONALIZE_JOB_NOUN = {"personalize": "batch inference", "personalize-segment": "batch segment"}


def bedrock_quota_message(model_id: str, limit: int) -> str:
    return (
        f"The quota of {limit} in-progress and submitted batch inference jobs for model {model_id} "
        "has been reached; wait for a job to finish"
    )


def access_denied_message(account_id: str, service: str, operation: str) -> str:
    """What IAM says when no policy allows the call (the user name is the emulator's own)."""
    action = f"{service}:{operation}"
    return (
        f"User: arn:aws:iam::{account_id}:user/asyncjobs-emulator is not authorized to perform: "
        f"{action} because no identity-based policy allows the {action} action"
    )


def personalize_quota_message(kind: str, limit: int, pending: str, running: str) -> str:
    return (
        f"The limit of {limit} active {PERSONALIZE_JOB_NOUN[kind]} jobs ({pending} or {running}) "
        "has been reached"
    )


class ApiError(Exception):
    """An AWS error response: ``code`` (the exception shape name) and ``message``."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def iso8601(epoch: float) -> str:
    """``2024-01-02T03:04:05.678Z``: how Bedrock sends timestamps (botocore parses them to datetime)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_number(epoch: float) -> float:
    """How Personalize sends timestamps: a JSON number of epoch seconds (millisecond precision)."""
    return round(epoch, 3)


def encode_page_token(seq: int, descending: bool) -> str:
    """An opaque ``nextToken`` that resumes after job ``seq``; it differs on every page."""
    raw = f"v1:{'d' if descending else 'a'}:{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, descending: bool) -> int | None:
    """The ``seq`` a token resumes after, or None if it is not one of ours (or other-direction)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = raw.split(":")
    if len(parts) != 3 or parts[0] != "v1" or parts[1] != ("d" if descending else "a"):
        return None
    return int(parts[2]) if parts[2].isdigit() else None
