"""asyncjobs.records.shards: the split rule, table-tested, and shards cut from real files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from asyncjobs.errors import CampaignError
from asyncjobs.model import Service
from asyncjobs.records import Shard, ShardingError, cut_shards, shard_sizes, verify_shard


@pytest.mark.parametrize(
    ("records", "max_records", "min_records", "expected"),
    [
        (100, 50_000, 100, [100]),
        (50_000, 50_000, 100, [50_000]),
        (50_001, 50_000, 100, [25_001, 25_000]),
        (100_000, 50_000, 100, [50_000, 50_000]),
        (100_001, 50_000, 100, [33_334, 33_334, 33_333]),
        (1_000_000, 50_000, 100, [50_000] * 20),
        (1_000_001, 50_000, 100, [47_620] * 2 + [47_619] * 19),
        (10, 3, 1, [3, 3, 2, 2]),
        (7, 7, 7, [7]),
        (1, 1, 1, [1]),
    ],
)
def test_sizes_are_near_equal_and_within_bounds(
    records: int, max_records: int, min_records: int, expected: list[int]
) -> None:
    assert shard_sizes(records, max_records=max_records, min_records=min_records) == expected


@pytest.mark.parametrize(
    ("records", "max_records", "min_records", "shards", "message"),
    [
        (99, 50_000, 100, None, "99 records, fewer than the minimum of 100 per job"),
        (151, 150, 100, None, "151 records in 2 shards would leave 75 in one, fewer than the minimum of 100"),
        (100, 50, 100, None, "the minimum of 100 records per job is over the maximum of 50"),
        (0, 10, 1, None, "0 records, fewer than the minimum of 1 per job"),
        (10, 10, 0, None, "must be at least 1"),
        (300, 100, 100, 2, "2 shards of 300 records would hold 150, over 100"),
    ],
)
def test_impossible_splits_are_refused_with_the_reason(
    records: int, max_records: int, min_records: int, shards: int | None, message: str
) -> None:
    with pytest.raises(ShardingError, match=message):
        shard_sizes(records, max_records=max_records, min_records=min_records, shards=shards)


def test_a_forced_shard_count_keeps_the_split_near_equal() -> None:
    assert shard_sizes(1000, max_records=1000, min_records=100, shards=3) == [334, 333, 333]


def _records(path: Path, count: int, *, pad: int = 0) -> list[bytes]:
    lines = [
        json.dumps({"recordId": f"R{i:06d}", "modelInput": {"prompt": "x" * pad + str(i)}}).encode() + b"\n"
        for i in range(1, count + 1)
    ]
    path.write_bytes(b"".join(lines))
    return lines


def test_shards_cover_the_file_in_order_with_their_digests(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    lines = _records(path, 250)
    shards = cut_shards(str(path), Service.BEDROCK, max_records=200, min_records=100)
    assert [(s.number, s.first_line, s.last_line, s.records) for s in shards] == [
        (1, 1, 125, 125),
        (2, 126, 250, 125),
    ]
    data = path.read_bytes()
    assert data[shards[0].start : shards[0].end] == b"".join(lines[:125])
    assert shards[1].end == len(data)
    assert shards[0].sha256 == hashlib.sha256(b"".join(lines[:125])).hexdigest()
    assert shards[1].size == len(b"".join(lines[125:]))
    assert Shard.from_dict(json.loads(json.dumps(shards[1].as_dict()))) == shards[1]


def test_bytes_force_more_shards_than_records_do(tmp_path: Path) -> None:
    path = tmp_path / "uneven.jsonl"
    big = [
        json.dumps({"recordId": f"B{i}", "modelInput": {"p": "x" * 990}}).encode() + b"\n" for i in range(5)
    ]
    small = [json.dumps({"recordId": f"S{i}", "modelInput": {}}).encode() + b"\n" for i in range(5)]
    path.write_bytes(b"".join(big + small))
    limit = 2 * len(big[0]) + 100  # two big records fit a file, three do not
    shards = cut_shards(
        str(path),
        Service.BEDROCK,
        max_records=1000,
        min_records=1,
        max_bytes=limit,
    )
    # by bytes alone two shards would do, but 5 + 5 records put five big ones in the first;
    # near-equal splits grow until every shard fits: 4+3+3, 3+3+2+2, then 2+2+2+2+2
    assert [s.records for s in shards] == [2, 2, 2, 2, 2]
    assert all(s.size <= limit for s in shards)


def test_a_record_over_the_file_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    _records(path, 3, pad=500)
    with pytest.raises(
        CampaignError, match=r"huge\.jsonl:1: a record of \d+ bytes is over the file limit of 100"
    ):
        cut_shards(str(path), Service.BEDROCK, max_records=10, min_records=1, max_bytes=100)


def test_a_bad_record_is_reported_before_an_impossible_split(tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text('{"recordId": "A", "modelInput": {}}\n{"recordId": "B"}\n')
    with pytest.raises(CampaignError, match=r"few\.jsonl:2: modelInput: is required"):
        cut_shards(str(path), Service.BEDROCK, max_records=10, min_records=100, label="few.jsonl")


def test_a_file_changed_after_cutting_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    _records(path, 200)
    [shard] = cut_shards(str(path), Service.BEDROCK, max_records=500, min_records=100)
    verify_shard(shard, Service.BEDROCK)
    path.write_bytes(path.read_bytes().replace(b'"prompt": "7"', b'"prompt": "8"'))
    with pytest.raises(CampaignError, match="lines 1-200 changed since shard 1 was made"):
        verify_shard(shard, Service.BEDROCK)
