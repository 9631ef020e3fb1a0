"""One API call as the handlers see it, parsed from HTTP by the server, and shared input checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..validation import format_issues, validate_request
from .bodies import TooDeep, load_json
from .wire import ApiError


@dataclass(frozen=True, slots=True)
class Call:
    """An API request: the operation, the caller's region, and its raw inputs."""

    operation: str
    region: str
    body: bytes = b""
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def json_body(self, invalid_code: str) -> dict[str, Any]:
        """The body as a JSON object (an empty body is ``{}``).

        Malformed JSON is a SerializationException; a body nested too deep is refused
        with ``invalid_code`` (ValidationException / InvalidInputException), as input
        no operation takes.
        """
        if not self.body.strip():
            return {}
        try:
            value = load_json(self.body)
        except TooDeep as exc:
            raise ApiError(invalid_code, str(exc)) from exc
        except ValueError as exc:
            raise ApiError("SerializationException", str(exc)) from exc
        if not isinstance(value, dict):
            raise ApiError("SerializationException", "The request body must be a JSON object")
        return value


def check_input(service: str, operation: str, params: Mapping[str, Any], code: str) -> None:
    """Raise ``code`` (ValidationException / InvalidInputException) for every violated constraint."""
    issues = validate_request(service, operation, params)
    if issues:
        raise ApiError(code, format_issues(issues))
