"""asyncjobs.records.reader: records files validated line by line, errors naming file:line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncjobs.errors import CampaignError
from asyncjobs.model import Service
from asyncjobs.records import assigned_record_id, record_lines, scan_records

GOOD = '{"recordId": "A1", "modelInput": {"prompt": "hi"}}'


def _file(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"recordId": "A2", "modelInput": {', "prompts.jsonl:2: malformed JSON: unexpected end of data"),
        ('["A2"]', "prompts.jsonl:2: a record must be a JSON object, not array"),
        ('{"recordId": "A2"}', "prompts.jsonl:2: modelInput: is required"),
        (
            '{"recordId": "A2", "modelInput": "hi"}',
            "prompts.jsonl:2: modelInput: must be a JSON object, not string",
        ),
        ('{"recordId": 7, "modelInput": {}}', "prompts.jsonl:2: recordId: must be a string, not integer"),
        (
            '{"recordId": "a-2", "modelInput": {}}',
            "prompts.jsonl:2: recordId: must be a non-empty alphanumeric string ([A-Za-z0-9]+), got 'a-2'",
        ),
        ('{"recordId": "", "modelInput": {}}', "prompts.jsonl:2: recordId: must be a non-empty alphanumeric"),
        (
            '{"recordId": "A1", "modelInput": {}}',
            "prompts.jsonl:2: recordId: duplicate recordId 'A1' (first at line 1)",
        ),
        ('{"modelInput": {"x": NaN}}', "prompts.jsonl:2: malformed JSON"),
    ],
)
def test_a_bad_record_is_refused_at_its_line(tmp_path: Path, line: str, message: str) -> None:
    path = _file(tmp_path, GOOD, line, '{"recordId": "A3", "modelInput": {}}')
    with pytest.raises(CampaignError) as caught:
        scan_records(path, Service.BEDROCK, label="prompts.jsonl")
    assert str(caught.value).startswith(message)


def test_an_assigned_id_that_a_given_one_repeats_is_a_duplicate(tmp_path: Path) -> None:
    path = _file(tmp_path, '{"modelInput": {}}', '{"recordId": "L0000000001", "modelInput": {}}')
    with pytest.raises(
        CampaignError, match=r"x.jsonl:2: recordId: duplicate recordId 'L0000000001' \(first at line 1\)"
    ):
        scan_records(path, Service.BEDROCK, label="x.jsonl")


def test_the_earliest_duplicate_is_named(tmp_path: Path) -> None:
    lines = [json.dumps({"recordId": f"R{i}", "modelInput": {}}) for i in range(1000)]
    lines[700] = lines[3]
    lines[500] = lines[2]
    path = _file(tmp_path, *lines)
    with pytest.raises(CampaignError, match=r"p:501: recordId: duplicate recordId 'R2' \(first at line 3\)"):
        scan_records(path, Service.BEDROCK, label="p")


def test_missing_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match=r"nope\.jsonl: no such records file"):
        scan_records(str(tmp_path / "nope.jsonl"), Service.BEDROCK, label="nope.jsonl")
    with pytest.raises(CampaignError, match=r"e\.jsonl: contains no records"):
        scan_records(_file(tmp_path, "", "  "), Service.BEDROCK, label="e.jsonl")


def test_records_are_uploaded_verbatim_or_with_their_assigned_id(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"recordId": "A1",  "modelInput": {"a": 1}}  \r\n'
        b"\n"
        b'{"modelInput": {"b": 2}, "extra": true}\n'
        b'{"recordId": "A3", "modelInput": {}}'
    )
    records = list(record_lines(str(path), Service.BEDROCK))
    assert [(r.line, r.key) for r in records] == [(1, "A1"), (3, "L0000000003"), (4, "A3")]
    assert [r.data for r in records] == [
        b'{"recordId": "A1",  "modelInput": {"a": 1}}\n',
        b'{"recordId":"L0000000003","modelInput":{"b":2},"extra":true}\n',
        b'{"recordId": "A3", "modelInput": {}}\n',
    ]
    assert assigned_record_id(3) == "L0000000003"
    scan = scan_records(str(path), Service.BEDROCK)
    assert (scan.records, scan.size) == (3, sum(len(r.data) for r in records))
    # a range read starts at a line and counts lines from the file's start
    tail = list(record_lines(str(path), Service.BEDROCK, records[1].start))
    assert [(r.line, r.key) for r in tail] == [(3, "L0000000003"), (4, "A3")]


def test_personalize_records_are_objects_keyed_by_their_canonical_json(tmp_path: Path) -> None:
    path = _file(tmp_path, '{"userId": "42", "context": {"b": 1, "a": 2}}', '{"userId": "43"}')
    assert [r.key for r in record_lines(path, Service.PERSONALIZE)] == [
        '{"context":{"a":2,"b":1},"userId":"42"}',
        '{"userId":"43"}',
    ]
    duplicate = _file(tmp_path, '{"userId": "42"}', '{ "userId" : "42" }')
    with pytest.raises(CampaignError, match=r"u:2: duplicate record \(first at line 1\)"):
        scan_records(duplicate, Service.PERSONALIZE, label="u")
    with pytest.raises(CampaignError, match="u:1: a record must be a JSON object, not string"):
        scan_records(_file(tmp_path, '"42"'), Service.PERSONALIZE, label="u")


def test_reading_for_bytes_only_gives_the_same_bytes(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        '{"recordId": "A1", "modelInput": {}}',
        '{ "recordId": "A2", "modelInput": {}}',
        '{"modelInput": {"recordId": "nested"}}',
        '{"modelInput": {}, "recordId": "A4"}',
        '{"modelInput": {}}',
    )
    for service in (Service.BEDROCK, Service.PERSONALIZE):
        checked = [(r.line, r.start, r.end, r.data) for r in record_lines(path, service)]
        fast = [(r.line, r.start, r.end, r.data) for r in record_lines(path, service, check=False)]
        assert fast == checked
    assert [r.data[:14] for r in record_lines(path, Service.BEDROCK, check=False)][2:] == [
        b'{"recordId":"L',
        b'{"modelInput":',
        b'{"recordId":"L',
    ]
