"""asyncjobs.campaign: the collecting reader, and requests the journal could not store.

``read_campaign`` stops at the first bad line; ``check_campaign`` reads the same lines
the same way and yields every spec or error, duplicates included. Integers a create
call cannot take, and anything the journal's encoder (orjson) cannot store, are refused
on their line instead of failing the journal write.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from asyncjobs import campaign
from asyncjobs.campaign import check_campaign, check_spec, read_campaign
from asyncjobs.errors import CampaignError
from asyncjobs.model import JobSpec, Service
from tests.support.specs import named, spec


def jsonl(*lines: Any) -> io.BytesIO:
    out = io.BytesIO(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    out.name = "c.jsonl"
    return out


def messages(items: list[JobSpec | CampaignError]) -> list[str]:
    return [str(i) if isinstance(i, CampaignError) else f"ok {i.id}" for i in items]


def test_check_campaign_yields_every_line_and_every_error() -> None:
    stream = jsonl(
        spec("a", "bedrock"),
        b"[1]",
        spec("b", "personalize", numResults=0),
        b"",
        spec("a", "personalize"),
        named("d", "n1"),
        named("e", "n1"),
        spec("f", "bedrock"),
    )

    assert messages(list(check_campaign(stream))) == [
        "ok a",
        "c.jsonl:2: a spec must be a JSON object, not array",
        "c.jsonl:3: request.numResults: must be at least 1, got 0",
        "c.jsonl:5: id: duplicate id 'a' (first at c.jsonl:1)",
        "ok d",
        "c.jsonl:7: request.jobName: duplicate jobName 'n1' (first at c.jsonl:6)",
        "ok f",
    ]


def test_read_campaign_raises_the_same_first_error() -> None:
    lines = (spec("a", "bedrock"), spec("b", "personalize", numResults=0), b"{")
    first = next(i for i in check_campaign(jsonl(*lines)) if isinstance(i, CampaignError))
    with pytest.raises(CampaignError) as raised:
        list(read_campaign(jsonl(*lines)))
    assert str(raised.value) == str(first) == "c.jsonl:2: request.numResults: must be at least 1, got 0"


def test_duplicates_are_still_left_to_the_journal_when_reading_for_a_run() -> None:
    assert [s.id for s in read_campaign(jsonl(spec("a", "bedrock"), spec("a", "bedrock")))] == ["a", "a"]


def test_an_invalid_line_does_not_claim_its_id() -> None:
    items = check_campaign(jsonl(spec("a", "personalize", numResults=-5), spec("a", "personalize")))
    assert messages(list(items)) == ["c.jsonl:1: request.numResults: must be at least 1, got -5", "ok a"]


def test_an_over_long_line_is_one_error_and_reading_goes_on() -> None:
    big = b'{"id": "x", "junk": "' + b"x" * (campaign.MAX_LINE_BYTES + 10) + b'"}'
    assert messages(list(check_campaign(jsonl(big, spec("a", "bedrock"))))) == [
        f"c.jsonl:1: line is {len(big)} bytes, over the limit of {campaign.MAX_LINE_BYTES} bytes",
        "ok a",
    ]


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    assert messages(list(check_campaign(tmp_path / "none.jsonl"))) == [f"{tmp_path}/none.jsonl: no such file"]


def test_blank_file_has_no_specs() -> None:
    assert messages(list(check_campaign(jsonl(b"", b"  ")))) == ["c.jsonl: contains no job specs"]


def test_only_bad_lines_is_not_also_an_empty_file() -> None:
    assert messages(list(check_campaign(jsonl(b"{")))) == [
        "c.jsonl:1: malformed JSON: Expecting property name enclosed in double quotes (column 2)"
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (10**30, "must be at most 2147483647 (a 32-bit integer), got 1000000000000000000000000000000"),
        (2**63, "must be at most 2147483647 (a 32-bit integer), got 9223372036854775808"),
        (2**31, "must be at most 2147483647 (a 32-bit integer), got 2147483648"),
        (-(2**64), "must be at least 1, got -18446744073709551616"),
    ],
)
def test_an_oversized_integer_is_refused_on_its_line(value: int, reason: str) -> None:
    with pytest.raises(CampaignError) as raised:
        list(read_campaign(jsonl(spec("a", "bedrock"), spec("b", "personalize", numResults=value))))
    assert str(raised.value) == f"c.jsonl:2: request.numResults: {reason}"


def test_the_largest_32_bit_integer_is_accepted() -> None:
    [_, good] = read_campaign(jsonl(spec("a", "bedrock"), spec("b", "personalize", numResults=2**31 - 1)))
    assert good.request["numResults"] == 2**31 - 1


# -- what the journal cannot store --------------------------------------------------------------
# The create calls' models bound every integer they have; a member validation lets through
# unbounded (a document, say) is stood in for by switching validation off.


@pytest.fixture
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign, "validate_request", lambda *_: [])


@pytest.mark.usefixtures("no_validation")
@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (
            {"doc": {"list": [1, {"n": 10**30}]}},
            "request.doc.list[1].n",
            "integer out of the 64-bit range, got 1000000000000000000000000000000",
        ),
        ({"n": -(2**63) - 1}, "request.n", "integer out of the 64-bit range, got -9223372036854775809"),
        ({"doc": {1: "x"}}, "request.doc.1", "a key must be a string, not integer"),
        ({"blob": b"x"}, "request.blob", "bytes is not a JSON value"),
    ],
)
def test_what_the_journal_cannot_store_is_refused(request_: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(CampaignError) as raised:
        check_spec(JobSpec("a", Service.BEDROCK, request_, source="api"))
    assert str(raised.value) == f"api: {field}: cannot be stored in the journal: {reason}"


@pytest.mark.usefixtures("no_validation")
def test_a_nested_integer_in_a_file_is_refused_on_its_line() -> None:
    line = b'{"id": "a", "service": "bedrock", "request": {"doc": [[' + b"9" * 30 + b"]]}}"
    assert messages(list(check_campaign(jsonl(line)))) == [
        "c.jsonl:1: request.doc[0][0]: cannot be stored in the journal: "
        "integer out of the 64-bit range, got 999999999999999999999999999999"
    ]


@pytest.mark.usefixtures("no_validation")
def test_what_orjson_stores_is_accepted() -> None:
    # orjson stores integers from -2**63 to 2**64 - 1
    check_spec(JobSpec("a", Service.BEDROCK, {"n": [-(2**63), 2**64 - 1]}, source="api"))
