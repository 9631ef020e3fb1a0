"""Reading a records file: streamed validation, and the exact bytes each record is uploaded as.

A records file is JSON Lines, one record per non-blank line:

- **Bedrock**: ``{"recordId": "CALL0000001", "modelInput": {...}}``. ``modelInput`` is
  required and must be an object. ``recordId`` must be a non-empty alphanumeric string
  (Bedrock's user guide: "recordId: alphanumeric string"; no length is documented, so
  none is imposed). A record without one is given ``L`` + its line number in ten digits
  (``L0000000012`` for line 12): 11 characters like the guide's example, stable as long
  as the line does not move. Other keys are passed through (Bedrock ignores them).
- **Personalize**: any JSON object (``{"userId": "42"}``, ``{"itemId": "105"}``...);
  Personalize's lines carry no record id, so a record is identified by its canonical
  JSON (sorted keys), which Personalize echoes back as ``input`` in its output.

:func:`scan_records` reads the file once, in constant memory apart from 8 bytes per
record for duplicate detection (a 64-bit hash of each record's key, kept in 256
sorted-later arrays: 8 MB for a million records; a hash match is confirmed on the real
keys by a second read before anything is refused, so a hash collision refuses nothing).
Every problem is a :class:`~asyncjobs.errors.CampaignError` naming the records file
and line (and field).

:func:`record_lines` yields the records of a byte range as uploaded: a line with a
``recordId`` verbatim (without its line break and trailing blanks, plus ``\\n``), a
line without one re-encoded with the assigned id first. The same function feeds the
shard digests, the upload and the results join, so they can never disagree.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple, NoReturn

import orjson

from asyncjobs.errors import CampaignError
from asyncjobs.model import Service
from asyncjobs.validation import json_type

#: The longest record line read (Bedrock's own limit is the 1 GB file; a line this long
#: is surely a mistake, and reading it whole is what JSON parsing needs anyway).
MAX_RECORD_BYTES = 64 << 20
_BOM = b"\xef\xbb\xbf"
#: A JSON object whose first key is ``recordId``: uploaded as it is.
_ID_FIRST = b'{"recordId"'
_BUCKETS = 256


def assigned_record_id(line: int) -> str:
    """The record id given to the record on ``line`` (1-based) when it has none."""
    return f"L{line:010d}"


class Record(NamedTuple):
    """One record as uploaded: where it is in the file, its key and its upload bytes.

    A named tuple: one is made per line on every read, and a tuple is the cheapest to make.
    """

    line: int
    #: Byte offset of the line's start in the file, and of the next line's.
    start: int
    end: int
    #: The join key: the Bedrock ``recordId`` (given or assigned), or the Personalize
    #: record's canonical JSON.
    key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class RecordsScan:
    """What one validating read of a records file found."""

    records: int
    #: Bytes of all records as uploaded.
    size: int
    #: The largest single record as uploaded.
    largest: int


def scan_records(path: str, service: Service, *, label: str | None = None) -> RecordsScan:
    """Validate every record of ``path``; raise :class:`CampaignError` at the first bad line.

    Duplicates are refused after the read (they need the whole file), at the line of
    the first repeated key. ``label`` names the file in messages (default ``path``).
    """
    count = size = largest = 0
    for record in checked_records(path, service, label=label):
        count += 1
        size += len(record.data)
        largest = max(largest, len(record.data))
    return RecordsScan(records=count, size=size, largest=largest)


def checked_records(
    path: str, service: Service, *, label: str | None = None
) -> Generator[Record, None, None]:
    """Every record of ``path``, each validated; once the last is yielded, duplicates are
    refused (so a caller must read to the end to have the whole file checked)."""
    name = label or path
    buckets = [array("Q") for _ in range(_BUCKETS)]
    count = 0
    with _open(path, name) as stream:
        for record in _records(stream, name, service, 0, None):
            count += 1
            digest = _key_hash(record.key)
            buckets[digest & 0xFF].append(digest)
            yield record
    if count == 0:
        raise CampaignError("contains no records", source=name)
    suspects: set[int] = set()
    for bucket in buckets:
        ordered = sorted(bucket)
        suspects.update(a for a, b in itertools.pairwise(ordered) if a == b)
    buckets.clear()
    if suspects:
        _refuse_duplicate(path, name, service, suspects)


def count_records(path: str, *, label: str | None = None) -> int:
    """The non-blank lines of ``path``, read raw: a quick first pass, to know how many shards."""
    count = 0
    with _open(path, label or path) as stream:
        first = stream.readline()
        if first[len(_BOM) :].strip() if first.startswith(_BOM) else first.strip():
            count += 1
        for raw in iter(lambda: stream.readline(MAX_RECORD_BYTES + 1), b""):
            if raw.strip():
                count += 1
    return count


def record_lines(
    path: str,
    service: Service,
    start: int = 0,
    end: int | None = None,
    *,
    first_line: int | None = None,
    label: str | None = None,
    check: bool = True,
) -> Iterator[Record]:
    """The records whose lines start in the byte range ``[start, end)`` of ``path``.

    ``start`` must be a line start, and ``first_line`` its line number when known (a
    shard knows it); otherwise the lines before ``start`` are counted. Lines are checked
    as :func:`scan_records` checks them, so a file edited since it was scanned fails here
    too, at its line.

    ``check=False`` is for reading the bytes of records just scanned, or that a SHA-256
    then checks (the shard cut, the upload): a line whose bytes are uploaded as they are
    is not parsed again (a Bedrock line whose first key is ``recordId``, any Personalize
    line), and its :attr:`Record.key` is empty. The bytes are the same either way.
    """
    name = label or path
    with _open(path, name) as stream:
        lineno = first_line - 1 if first_line is not None else _lines_before(stream, start)
        yield from _records(stream, name, service, start, end, lineno, check)


def _records(
    stream: BinaryIO,
    label: str,
    service: Service,
    start: int,
    end: int | None,
    lineno: int = 0,
    check: bool = True,
) -> Iterator[Record]:
    stream.seek(start)
    offset = start
    bedrock = service is Service.BEDROCK
    while end is None or offset < end:
        raw = stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            break
        lineno += 1
        line_start, offset = offset, offset + len(raw)
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            _fail(f"record is over the limit of {MAX_RECORD_BYTES} bytes", label, lineno)
        body = raw[len(_BOM) :] if line_start == 0 and raw.startswith(_BOM) else raw
        body = body.rstrip()
        if not body:
            continue
        if not check and (not bedrock or body.startswith(_ID_FIRST)):
            yield Record(lineno, line_start, offset, "", body + b"\n")
            continue
        value = _parse(body, label, lineno)
        if bedrock:
            key, data = _bedrock_record(value, body, label, lineno)
        else:
            key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
            data = body + b"\n"
        yield Record(lineno, line_start, offset, key, data)


def _lines_before(stream: BinaryIO, start: int) -> int:
    if start == 0:
        return 0
    position = stream.tell()
    stream.seek(0)
    count = 0
    remaining = start
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    stream.seek(position)
    return count


def _parse(body: bytes, label: str, lineno: int) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        _fail(f"malformed JSON: {exc.msg} (column {exc.colno})", label, lineno)
    if not isinstance(value, dict):
        _fail(f"a record must be a JSON object, not {json_type(value)}", label, lineno)
    return value


def _bedrock_record(value: dict[str, Any], body: bytes, label: str, lineno: int) -> tuple[str, bytes]:
    if "modelInput" not in value:
        _fail("is required", label, lineno, "modelInput")
    if not isinstance(value["modelInput"], dict):
        _fail(f"must be a JSON object, not {json_type(value['modelInput'])}", label, lineno, "modelInput")
    if "recordId" not in value:
        record_id = assigned_record_id(lineno)
        return record_id, orjson.dumps({"recordId": record_id, **value}) + b"\n"
    record_id = value["recordId"]
    if not isinstance(record_id, str):
        _fail(f"must be a string, not {json_type(record_id)}", label, lineno, "recordId")
    if not (record_id.isascii() and record_id.isalnum()):  # [A-Za-z0-9]+, faster than a regex
        shown = record_id if len(record_id) <= 40 else record_id[:37] + "..."
        _fail(
            f"must be a non-empty alphanumeric string ([A-Za-z0-9]+), got {shown!r}",
            label,
            lineno,
            "recordId",
        )
    return record_id, body + b"\n"


def _key_hash(key: str) -> int:
    """A 64-bit hash of ``key``: Python's own (salted per process, which is all one scan
    needs), made unsigned for the arrays; a match is confirmed on the keys themselves."""
    return hash(key) & 0xFFFF_FFFF_FFFF_FFFF


def _refuse_duplicate(path: str, label: str, service: Service, suspects: set[int]) -> None:
    """Raise for the earliest line whose key an earlier line has (if the hashes told true)."""
    first: dict[str, int] = {}
    for record in record_lines(path, service, label=label):
        if _key_hash(record.key) not in suspects:
            continue
        if record.key in first:
            field = "recordId" if service is Service.BEDROCK else None
            what = f"recordId {record.key!r}" if field else "record"
            _fail(f"duplicate {what} (first at line {first[record.key]})", label, record.line, field)
        first[record.key] = record.line


def _open(path: str, label: str) -> BinaryIO:
    try:
        return open(path, "rb")  # the callers' with blocks close it
    except FileNotFoundError:
        _fail("no such records file", label)
    except IsADirectoryError:
        _fail("is a directory, not a records file", label)
    except OSError as exc:
        _fail(f"cannot read: {exc.strerror or exc}", label)


def _fail(reason: str, label: str, line: int | None = None, field: str | None = None) -> NoReturn:
    raise CampaignError(reason, source=label, line=line, field=field)
