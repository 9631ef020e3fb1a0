"""Cutting a records file into shards: how many records each holds, and what each one is.

:func:`shard_sizes` is the pure rule: ``n`` records in ``k = ceil(n / N)`` shards
(N = records per job), sizes differing by at most one, the larger ones first. Every
shard must hold at least the minimum, which that rule guarantees whenever ``N >= 2 *
minimum`` and ``n >= minimum`` (with ``k >= 2`` every shard holds more than ``N / 2``);
otherwise the split is refused with the reason.

Bytes can force more shards than records do: Bedrock takes at most 1 GB per input file
(a quota that cannot be raised). :func:`cut_shards` starts from ``max(ceil(n / N),
ceil(file size / limit))`` shards and, if near-equal record counts still leave one shard over
the limit (records of very uneven size), tries one shard more until all fit, so the split
stays near-equal in records and deterministic; a split that would fall under the minimum
is refused.

A :class:`Shard` is the identity of one shard: the records file, its line and byte
range, the record count, the upload size and the SHA-256 of the uploaded bytes. It is
plain data (:meth:`Shard.as_dict` / :meth:`Shard.from_dict`) for the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from asyncjobs.errors import CampaignError
from asyncjobs.model import Service
from asyncjobs.records.reader import Record, checked_records, count_records, record_lines

#: Bedrock's documented defaults (aws-notes §2): records per job and per input file.
DEFAULT_RECORDS_PER_JOB = 50_000
#: Bedrock's minimum records per batch job (not adjustable; 50 for a few models).
BEDROCK_MIN_RECORDS = 100
#: Bedrock's input file size quota, 1 GB (not adjustable), read as 10**9 bytes to be safe.
#: Personalize takes 1 GB of input per job too.
MAX_FILE_BYTES = 1_000_000_000


class ShardingError(ValueError):
    """Records that cannot be split within the limits (the reason is the message)."""


def shard_sizes(records: int, *, max_records: int, min_records: int, shards: int | None = None) -> list[int]:
    """The record count of each shard: ``shards`` (default ``ceil(records / max_records)``)
    near-equal sizes, the larger first. Raises :class:`ShardingError` when a size would fall
    outside ``[min_records, max_records]``."""
    if max_records < 1 or min_records < 1:
        raise ShardingError("records per job and the minimum must be at least 1")
    if min_records > max_records:
        raise ShardingError(
            f"the minimum of {min_records} records per job is over the maximum of {max_records}"
        )
    if records < min_records:
        raise ShardingError(f"{records} records, fewer than the minimum of {min_records} per job")
    count = shards if shards is not None else math.ceil(records / max_records)
    if count < 1 or count > records:
        raise ShardingError(f"cannot split {records} records into {count} shards")
    base, extra = divmod(records, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    if sizes[0] > max_records:
        raise ShardingError(f"{count} shards of {records} records would hold {sizes[0]}, over {max_records}")
    if sizes[-1] < min_records:
        raise ShardingError(
            f"{records} records in {count} shards would leave {sizes[-1]} in one, "
            f"fewer than the minimum of {min_records} per job"
        )
    return sizes


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard of a records file, as uploaded."""

    #: The records file, absolute.
    path: str
    #: 1-based, from the records line's id: ``summaries/00001`` is shard 1.
    number: int
    first_line: int
    last_line: int
    #: Byte range of its lines in the records file: ``[start, end)``.
    start: int
    end: int
    records: int
    #: Bytes uploaded (records with assigned ids are longer than their lines).
    size: int
    #: SHA-256 of the uploaded bytes, hex.
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shard:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def cut_shards(
    path: str,
    service: Service,
    *,
    max_records: int,
    min_records: int,
    max_bytes: int = MAX_FILE_BYTES,
    label: str | None = None,
) -> list[Shard]:
    """Validate the records file at ``path`` and cut it into shards.

    Two reads: a raw count of its lines (to know the split), then one validating read
    that hashes each shard's bytes as it goes. Every problem is a :class:`CampaignError`
    naming the file (and line); a bad record is reported before a split that cannot be.
    """
    name = label or path
    records = count_records(path, label=name)
    count = max(math.ceil(records / max_records), math.ceil(os.path.getsize(path) / max_bytes), 1)
    while True:
        try:
            sizes = shard_sizes(records, max_records=max_records, min_records=min_records, shards=count)
        except ShardingError as exc:
            # a bad record, or one too big for any file, is the first thing to fix
            for record in checked_records(path, service, label=name):
                _check_size(record, max_bytes, name)
            raise CampaignError(str(exc), source=name) from None
        shards = _cut(path, service, sizes, max_bytes, name)
        if all(s.size <= max_bytes for s in shards):
            return shards
        count += 1


def _check_size(record: Record, max_bytes: int, label: str) -> None:
    if len(record.data) > max_bytes:
        reason = f"a record of {len(record.data)} bytes is over the file limit of {max_bytes}"
        raise CampaignError(reason, source=label, line=record.line)


def _cut(path: str, service: Service, sizes: Sequence[int], max_bytes: int, label: str) -> list[Shard]:
    with contextlib.closing(checked_records(path, service, label=label)) as records:
        return _cut_from(records, path, sizes, max_bytes, label)


def _cut_from(
    records: Iterator[Record], path: str, sizes: Sequence[int], max_bytes: int, label: str
) -> list[Shard]:
    shards: list[Shard] = []
    for number, size in enumerate(sizes, start=1):
        digest = hashlib.sha256()
        total = 0
        first = last = None
        for _, record in zip(range(size), records, strict=False):
            _check_size(record, max_bytes, label)
            first = first or record
            last = record
            digest.update(record.data)
            total += len(record.data)
        if first is None or last is None:
            raise CampaignError("changed while being read", source=label)
        shards.append(
            Shard(
                path=path,
                number=number,
                first_line=first.line,
                last_line=last.line,
                start=first.start,
                end=last.end,
                records=size,
                size=total,
                sha256=digest.hexdigest(),
            )
        )
    if next(records, None) is not None:  # also runs the duplicate check, at the end of the file
        raise CampaignError("changed while being read", source=label)
    return shards


def shard_records(shard: Shard, service: Service) -> Iterator[Record]:
    """The records of ``shard`` as uploaded, re-read from its file."""
    return record_lines(shard.path, service, shard.start, shard.end, first_line=shard.first_line)


def shard_bytes(shard: Shard, service: Service) -> Iterator[Record]:
    """``shard``'s records for their bytes only (keys may be empty), checked by SHA-256 after."""
    return record_lines(shard.path, service, shard.start, shard.end, first_line=shard.first_line, check=False)


def verify_shard(shard: Shard, service: Service) -> None:
    """Raise :class:`CampaignError` unless the file still holds ``shard`` byte for byte.

    For a resumed run: the journal's shard is re-derived from the file and compared
    before anything is uploaded under its key.
    """
    digest = hashlib.sha256()
    count = 0
    for record in shard_bytes(shard, service):
        digest.update(record.data)
        count += 1
    if count != shard.records or digest.hexdigest() != shard.sha256:
        raise CampaignError(
            f"lines {shard.first_line}-{shard.last_line} changed since shard {shard.number} was made "
            f"({count} records, sha256 {digest.hexdigest()[:16]}..., expected {shard.records}, "
            f"{shard.sha256[:16]}...)",
            source=shard.path,
        )
