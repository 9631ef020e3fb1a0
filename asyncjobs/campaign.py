"""Reading campaign files: JSON Lines of job specs, each line checked before anything is sent.

A campaign line is one JSON object with exactly the keys ``id``, ``service`` and
``request``::

    {"id": "u-0001", "service": "bedrock", "request": {"modelId": "...", ...}}

:func:`read_campaign` streams a file, stdin (``"-"``) or a binary stream line by line,
so a campaign of a million lines is never held in memory, and yields a
:class:`~asyncjobs.model.JobSpec` per line. The first bad line raises a
:class:`~asyncjobs.errors.CampaignError` whose message is one line naming
``file:line``, the field and the reason. The request is checked by
:func:`asyncjobs.validation.validate_request` as AWS would check it; a missing
``jobName`` is allowed, since the engine derives one. Duplicate ids and job names
are the journal's to detect, at ingest.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, NoReturn

from asyncjobs.errors import CampaignError
from asyncjobs.model import JobSpec, Service
from asyncjobs.validation import json_type, validate_request

MAX_LINE_BYTES = 1 << 20
MAX_ID_CHARS = 256
SPEC_KEYS = ("id", "service", "request")
_SERVICE_NAMES = frozenset(s.value for s in Service)
_SERVICES = ", ".join(s.value for s in Service)
_CHUNK = 1 << 16
_BOM = b"\xef\xbb\xbf"


def read_campaign(source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None) -> Iterator[JobSpec]:
    """The specs of a campaign, one per non-blank line, each validated.

    ``source`` is a path, ``"-"`` for stdin, or a binary stream (not closed here).
    ``name`` is the source's name in messages: by default the path as given,
    ``<stdin>``, or the stream's ``name``. Errors are raised while iterating.
    """
    if not isinstance(source, str | os.PathLike):
        yield from _read(source, name or _stream_name(source))
        return
    path = os.fspath(source)
    if path == "-":
        yield from _read(sys.stdin.buffer, name or "<stdin>")
        return
    label = name or path
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise CampaignError(_os_reason(exc), source=label) from exc
    with stream:
        yield from _read(stream, label)


def check_spec(spec: JobSpec) -> None:
    """Check a spec built in Python as a campaign line is checked; raise :class:`CampaignError`."""
    source = spec.source or f"spec {spec.id!r}"
    problem = _id_problem(spec.id)
    if problem:
        raise CampaignError(problem, source=source, field="id")
    try:
        service = Service(spec.service)
    except ValueError:
        raise CampaignError(_service_problem(spec.service), source=source, field="service") from None
    if not isinstance(spec.request, Mapping):
        raise CampaignError(_type_problem(spec.request), source=source, field="request")
    found = _request_problem(service, spec.request)
    if found:
        raise CampaignError(found[1], source=source, field=found[0])


# -- lines -----------------------------------------------------------------------------------------


def _read(stream: BinaryIO, label: str) -> Iterator[JobSpec]:
    lineno = 0
    specs = 0
    while True:
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise CampaignError(_os_reason(exc), source=label, line=lineno + 1) from exc
        if not raw:
            break
        lineno += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            size = len(raw) + _skip_rest_of_line(stream)
            raise CampaignError(
                f"line is {size} bytes, over the limit of {MAX_LINE_BYTES} bytes", source=label, line=lineno
            )
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw or raw.isspace():
            continue
        yield _parse(raw, label, lineno)
        specs += 1
    if specs == 0:
        raise CampaignError("contains no job specs", source=label)


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Read to the end of an over-long line in bounded chunks; its remaining length in bytes."""
    size = 0
    while chunk := stream.readline(_CHUNK):
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return size - 1
    return size


def _parse(raw: bytes, label: str, lineno: int) -> JobSpec:
    def fail(reason: str, field: str | None = None) -> NoReturn:
        raise CampaignError(reason, source=label, line=lineno, field=field)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}")
    try:
        spec = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        fail(f"malformed JSON: {exc.msg} (column {exc.colno})")
    except ValueError as exc:  # NaN or Infinity, which JSON does not have
        fail(f"malformed JSON: {exc}")
    except RecursionError:
        fail("malformed JSON: nested too deeply")
    if not isinstance(spec, dict):
        fail(f"a spec must be a JSON object, not {json_type(spec)}")
    for key in spec:
        if key not in SPEC_KEYS:
            fail(f"unknown key; a spec has only {', '.join(SPEC_KEYS)}", _printable(key))
    for key in SPEC_KEYS:
        if key not in spec:
            fail("is required", key)
    spec_id, service_name, request = spec["id"], spec["service"], spec["request"]
    problem = _id_problem(spec_id)
    if problem:
        fail(problem, "id")
    if service_name not in _SERVICE_NAMES:
        fail(_service_problem(service_name), "service")
    if not isinstance(request, dict):
        fail(_type_problem(request), "request")
    service = Service(service_name)
    found = _request_problem(service, request)
    if found:
        fail(found[1], found[0])
    return JobSpec(id=spec_id, service=service, request=request, source=f"{label}:{lineno}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


# -- checks shared by files and Python-built specs -------------------------------------------------


def _id_problem(spec_id: object) -> str | None:
    if not isinstance(spec_id, str):
        return f"must be a string, not {json_type(spec_id)}"
    if not spec_id:
        return "must not be empty"
    if len(spec_id) > MAX_ID_CHARS:
        return f"must be at most {MAX_ID_CHARS} characters, not {len(spec_id)}"
    if not spec_id.isprintable():
        return "must be printable, with no control characters"
    return None


def _service_problem(value: object) -> str:
    shown = repr(value) if isinstance(value, str) else json_type(value)
    return f"unknown service {shown}; expected one of: {_SERVICES}"


def _type_problem(value: object) -> str:
    return f"must be a JSON object, not {json_type(value)}"


def _request_problem(service: Service, request: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first issue of a request as (field, reason), or None when it is valid.

    An absent ``jobName`` is not an issue: the engine derives a valid one, so the
    request is checked as if it held one.
    """
    issues = validate_request(service.aws_service, service.create_operation, request)
    if "jobName" not in request:
        issues = [i for i in issues if not (i.path == "jobName" and i.constraint == "required")]
    if not issues:
        return None
    first = issues[0]
    reason = first.message
    if first.constraint in ("min", "max", "pattern", "enum") and isinstance(first.value, str | int | float):
        reason += f", got {_shorten(repr(first.value))}"
    if len(issues) > 1:
        reason += f" (and {len(issues) - 1} more)"
    return _printable(f"request.{first.path}"), reason


# -- helpers ---------------------------------------------------------------------------------------


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a campaign file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read: {exc.strerror or exc}"


def _stream_name(stream: BinaryIO) -> str:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so a message stays on one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
