"""Reading campaign files: JSON Lines of job specs, each line checked before anything is sent.

A campaign line is one JSON object with exactly the keys ``id``, ``service`` and
``request``::

    {"id": "u-0001", "service": "bedrock", "request": {"modelId": "...", ...}}

A line may also name a ``records`` file (JSON Lines of Bedrock or Personalize records,
relative to the campaign file): it is validated whole, cut into shards, and the line
yields one :class:`~asyncjobs.records.ShardSpec` per shard (``id/00001``...), see
:mod:`asyncjobs.records.expand`; ``records=`` (:class:`~asyncjobs.records.RecordsOptions`)
sets the records per job and the campaign name in the shards' keys. A caller of
:func:`read_campaign` that does not upload shards passes no options, and a records
line is then refused; :func:`check_campaign` always checks records lines.

:func:`read_campaign` streams a file, stdin (``"-"``) or a binary stream line by line,
so a campaign of a million lines is never held in memory, and yields a
:class:`~asyncjobs.model.JobSpec` per line. The first bad line raises a
:class:`~asyncjobs.errors.CampaignError` whose message is one line naming
``file:line``, the field and the reason. The request is checked by
:func:`asyncjobs.validation.validate_request` as AWS would check it; a missing
``jobName`` is allowed, since the engine derives one. Duplicate ids and job names
are the journal's to detect, at ingest.

:func:`check_campaign` reads the same way with the other policy: it yields every
line's spec or the error that refuses it, goes on past bad lines, and also reports
duplicate ids and job names (the journal's checks, for a campaign checked without one).
Both readers go through the same line scanner, so they can never disagree on a line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

from asyncjobs.errors import CampaignError
from asyncjobs.model import JobSpec, Service
from asyncjobs.records.expand import RecordsOptions, expand_records_line
from asyncjobs.storable import storage_problem
from asyncjobs.validation import json_type, validate_request

MAX_LINE_BYTES = 1 << 20
MAX_ID_CHARS = 256
SPEC_KEYS = ("id", "service", "request")
#: Keys a line may add: ``records`` makes it a records line.
OPTIONAL_KEYS = ("records",)
_SERVICE_NAMES = frozenset(s.value for s in Service)
_SERVICES = ", ".join(s.value for s in Service)
_CHUNK = 1 << 16
_BOM = b"\xef\xbb\xbf"


def read_campaign(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    name: str | None = None,
    records: RecordsOptions | None = None,
) -> Iterator[JobSpec]:
    """The specs of a campaign, one per non-blank line, each validated.

    ``source`` is a path, ``"-"`` for stdin, or a binary stream (not closed here).
    ``name`` is the source's name in messages: by default the path as given,
    ``<stdin>``, or the stream's ``name``. Errors are raised while iterating.
    ``records`` applies to records lines; without it a records line is refused, since
    its shards are jobs only once uploaded, which the caller must then do (see
    :mod:`asyncjobs.records`). Pass the journal's campaign name in it.
    """
    # closing() closes the file on the first error
    with contextlib.closing(_scan(source, name, records)) as items:
        for item in items:
            if isinstance(item, CampaignError):
                raise item
            yield item


def check_campaign(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    name: str | None = None,
    records: RecordsOptions | None = None,
) -> Iterator[JobSpec | CampaignError]:
    """Every line's spec, or the :class:`CampaignError` that refuses it; never stops at a bad line.

    ``source`` and ``name`` are as for :func:`read_campaign`, which checks each line
    exactly the same way. On top of that, a valid spec whose id, or whose given
    ``jobName``, an earlier valid spec already has is refused as a duplicate, with the
    message the journal gives at ingest. A file that cannot be opened or read yields its
    error and ends. Remembers the ids and names seen, never the specs. Records lines are
    checked with ``records`` (default :class:`RecordsOptions`).
    """
    ids: dict[str, str | None] = {}
    names: dict[str, str | None] = {}
    try:
        with contextlib.closing(_scan(source, name, records or RecordsOptions())) as items:
            for item in items:
                if isinstance(item, CampaignError):
                    yield item
                elif item.id in ids:
                    yield _duplicate(item, f"id {item.id!r}", ids[item.id], "id")
                elif (given := item.request.get("jobName")) in names:
                    yield _duplicate(item, f"jobName {given!r}", names[given], "request.jobName")
                else:
                    ids[item.id] = item.source
                    if isinstance(given, str):
                        names[given] = item.source
                    yield item
    except CampaignError as exc:  # the file itself: missing, unreadable
        yield exc


def _duplicate(spec: JobSpec, what: str, first: str | None, field: str) -> CampaignError:
    """The journal's message for a repeated id or job name, at ``spec``'s ``file:line``."""
    label, _, line = (spec.source or "").rpartition(":")
    return CampaignError(f"duplicate {what} (first at {first})", source=label, line=int(line), field=field)


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


def _scan(
    source: str | os.PathLike[str] | BinaryIO, name: str | None, records: RecordsOptions | None
) -> Generator[JobSpec | CampaignError, None, None]:
    """The one reader of both policies: per non-blank line, its spec or the error refusing it.

    Raises :class:`CampaignError` only when reading cannot go on (the file cannot be
    opened or read); a bad line is yielded, and the next line is read.
    """
    if not isinstance(source, str | os.PathLike):
        label = name or _stream_name(source)
        base = os.path.dirname(label) if label != "<stream>" else "."
        yield from _read(source, label, _Context(base, records))
        return
    path = os.fspath(source)
    if path == "-":
        yield from _read(sys.stdin.buffer, name or "<stdin>", _Context(".", records))
        return
    label = name or path
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise CampaignError(_os_reason(exc), source=label) from exc
    with stream:
        yield from _read(stream, label, _Context(os.path.dirname(path), records))


@dataclass(frozen=True, slots=True)
class _Context:
    """What records lines need from around the campaign: its folder, and the options."""

    base_dir: str
    #: None: records lines are refused (the caller does not upload shards).
    records: RecordsOptions | None


def _read(stream: BinaryIO, label: str, context: _Context) -> Generator[JobSpec | CampaignError, None, None]:
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
            specs += 1
            yield CampaignError(
                f"line is {size} bytes, over the limit of {MAX_LINE_BYTES} bytes", source=label, line=lineno
            )
            continue
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw or raw.isspace():
            continue
        specs += 1
        try:
            parsed = _parse(raw, label, lineno)
            if isinstance(parsed, JobSpec):
                yield parsed
            else:
                yield from _expand(parsed, context)
        except CampaignError as exc:
            yield exc
    if specs == 0:
        yield CampaignError("contains no job specs", source=label)


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Read to the end of an over-long line in bounded chunks; its remaining length in bytes."""
    size = 0
    while chunk := stream.readline(_CHUNK):
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return size - 1
    return size


@dataclass(frozen=True, slots=True)
class _RecordsLine:
    """A valid line naming a records file, before its shards are cut."""

    id: str
    service: Service
    request: dict[str, Any]
    records: str
    source: str


def _expand(line: _RecordsLine, context: _Context) -> list[JobSpec]:
    if context.records is None:
        label, _, lineno = line.source.rpartition(":")
        reason = "records lines are not run by this caller yet (it does not upload shards)"
        raise CampaignError(reason, source=label, line=int(lineno), field="records")
    specs: list[JobSpec] = []
    for spec in expand_records_line(
        line.id,
        line.service,
        line.request,
        line.records,
        base_dir=context.base_dir,
        options=context.records,
        source=line.source,
    ):
        found = _request_problem(spec.service, spec.request)  # the shard's input key, as AWS checks it
        if found:
            label, _, lineno = line.source.rpartition(":")
            raise CampaignError(found[1], source=label, line=int(lineno), field=found[0])
        specs.append(spec)
    return specs


def _parse(raw: bytes, label: str, lineno: int) -> JobSpec | _RecordsLine:
    def fail(reason: str, field: str | None = None) -> NoReturn:
        raise CampaignError(reason, source=label, line=lineno, field=field)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}")
    try:
        # without its line break, a line cut short is reported at its end, not at "column 1"
        spec = _JSON.decode(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        fail(f"malformed JSON: {exc.msg} (column {exc.colno})")
    except ValueError as exc:  # NaN or Infinity, which JSON does not have
        fail(f"malformed JSON: {exc}")
    except RecursionError:
        fail("malformed JSON: nested too deeply")
    if not isinstance(spec, dict):
        fail(f"a spec must be a JSON object, not {json_type(spec)}")
    for key in spec:
        if key not in SPEC_KEYS and key not in OPTIONAL_KEYS:
            keys = ", ".join(SPEC_KEYS + OPTIONAL_KEYS)
            fail(f"unknown key; a spec has only {keys}", _printable(key))
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
    if "records" in spec:
        records = spec["records"]
        if not isinstance(records, str) or not records:
            fail("must name a records file (a non-empty string)", "records")
        found = _request_problem(service, request)
        if found:
            fail(found[1], found[0])
        return _RecordsLine(spec_id, service, request, records, f"{label}:{lineno}")
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
        problem = storage_problem(request)
        return None if problem is None else (_printable(problem[0]), problem[1])
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
