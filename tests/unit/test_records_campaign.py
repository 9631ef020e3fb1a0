"""Campaign lines with ``records``: one spec per shard, deterministic, validated before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.campaign import check_campaign, read_campaign
from asyncjobs.errors import CampaignError, InputError, SpecChanged
from asyncjobs.journal import open_journal
from asyncjobs.model import Service
from asyncjobs.records import RecordsOptions, ShardSpec
from asyncjobs.scheduler import Campaign

ROLE = "arn:aws:iam::123456789012:role/BatchRole"
BEDROCK: dict[str, Any] = {
    "roleArn": ROLE,
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://my-bucket/staging/"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/results/"}},
}
PERSONALIZE: dict[str, Any] = {
    "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/s/abcdef12",
    "jobInput": {"s3DataSource": {"path": "s3://my-bucket/users"}},
    "jobOutput": {"s3DataDestination": {"path": "s3://my-bucket/recs/"}},
    "roleArn": ROLE,
}
OPTIONS = RecordsOptions(campaign="nightly", records_per_job=200)


def _prompts(path: Path, count: int, *, start: int = 1) -> None:
    path.write_text(
        "".join(
            json.dumps({"recordId": f"P{i}", "modelInput": {"p": i}}) + "\n" for i in range(start, count + 1)
        )
    )


def _campaign(folder: Path, *lines: dict[str, Any]) -> Path:
    path = folder / "campaign.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _line(records: str = "prompts.jsonl", **overrides: Any) -> dict[str, Any]:
    return {"id": "summaries", "service": "bedrock", "records": records, "request": BEDROCK} | overrides


def test_a_records_line_expands_into_one_spec_per_shard(tmp_path: Path) -> None:
    folder = tmp_path / "camp"
    folder.mkdir()
    _prompts(folder / "prompts.jsonl", 450)
    plain = {"id": "other", "service": "bedrock", "request": {**BEDROCK, "jobName": "x1"}}
    specs = list(read_campaign(_campaign(folder, plain, _line()), records=OPTIONS))
    assert [s.id for s in specs] == ["other", "summaries/00001", "summaries/00002", "summaries/00003"]
    shards = [s for s in specs if isinstance(s, ShardSpec)]
    assert [(s.shard.first_line, s.shard.last_line, s.shard.records) for s in shards] == [
        (1, 150, 150),
        (151, 300, 150),
        (301, 450, 150),
    ]
    for spec in shards:
        uri = spec.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        number = spec.id[-5:]
        assert uri == f"s3://my-bucket/staging/nightly/summaries/{number}-{spec.shard.sha256[:16]}.jsonl"
        assert uri == spec.input_uri
        assert spec.request["outputDataConfig"] == BEDROCK["outputDataConfig"]
        assert spec.shard.path == str(folder / "prompts.jsonl")
        assert spec.source == f"{folder / 'campaign.jsonl'}:2"
        assert spec.line_id == "summaries"
    assert BEDROCK["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] == "s3://my-bucket/staging/"


def test_the_same_file_gives_the_same_specs_and_a_change_changes_only_its_shard(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 400)
    campaign = _campaign(tmp_path, _line())
    first = list(read_campaign(campaign, records=OPTIONS))
    again = list(read_campaign(campaign, records=OPTIONS))
    assert first == again
    assert [s.digest for s in first] == [s.digest for s in again]
    text = (tmp_path / "prompts.jsonl").read_text().replace('"p": 399', '"p": -399')
    (tmp_path / "prompts.jsonl").write_text(text)
    changed = list(read_campaign(campaign, records=OPTIONS))
    assert changed[0].digest == first[0].digest
    assert changed[1].digest != first[1].digest


async def test_a_changed_records_file_is_a_changed_spec_to_the_journal(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 200)
    campaign = _campaign(tmp_path, _line())
    async with await open_journal(tmp_path / "j.db", campaign="nightly") as journal:
        await journal.add_specs(read_campaign(campaign, records=OPTIONS))
        await journal.add_specs(read_campaign(campaign, records=OPTIONS))  # a resume: the same specs
        assert journal.counts().total == 1
        _prompts(tmp_path / "prompts.jsonl", 201, start=2)
        with pytest.raises(SpecChanged, match="summaries/00001"):
            await journal.add_specs(read_campaign(campaign, records=OPTIONS))


def test_the_campaign_name_and_id_shape_the_keys(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 100)
    campaign = _campaign(tmp_path, _line(id="Q4 summaries"))
    [spec] = read_campaign(campaign, records=RecordsOptions(campaign="my campaign!"))
    assert isinstance(spec, ShardSpec)
    assert spec.id == "Q4 summaries/00001"
    assert spec.input_uri.startswith("s3://my-bucket/staging/my-campaign/Q4-summaries-")


def test_a_personalize_line_stages_its_input_under_the_job_input_path(tmp_path: Path) -> None:
    (tmp_path / "users.jsonl").write_text("".join(json.dumps({"userId": str(i)}) + "\n" for i in range(5)))
    line = {"id": "recs", "service": "personalize", "records": "users.jsonl", "request": PERSONALIZE}
    [spec] = read_campaign(_campaign(tmp_path, line), records=OPTIONS)
    assert isinstance(spec, ShardSpec)
    assert spec.service is Service.PERSONALIZE
    assert spec.shard.records == 5  # Personalize documents no minimum
    assert spec.request["jobInput"]["s3DataSource"]["path"] == spec.input_uri
    assert spec.input_uri.startswith("s3://my-bucket/users/nightly/recs/00001-")


@pytest.mark.parametrize(
    ("line", "records", "message"),
    [
        (_line(), 99, "prompts.jsonl: 99 records, fewer than the minimum of 100 per job"),
        (_line(), "bad", "prompts.jsonl:3: modelInput: is required"),
        (_line(records=""), 100, "campaign.jsonl:1: records: must name a records file (a non-empty string)"),
        (_line(records=7), 100, "campaign.jsonl:1: records: must name a records file (a non-empty string)"),
        (_line(records="nope.jsonl"), 100, "nope.jsonl: no such records file"),
        (
            _line(request={**BEDROCK, "jobName": "one"}),
            100,
            "campaign.jsonl:1: request.jobName: a records line gives no jobName",
        ),
        (
            _line(request={**BEDROCK, "modelId": ""}),
            100,
            "campaign.jsonl:1: request.modelId: must be at least 1 character",
        ),
    ],
)
def test_bad_records_lines_are_refused_before_anything_is_sent(
    tmp_path: Path, line: dict[str, Any], records: int | str, message: str
) -> None:
    if records == "bad":
        (tmp_path / "prompts.jsonl").write_text('{"modelInput": {}}\n{"modelInput": {}}\n{"recordId": "x"}\n')
    else:
        _prompts(tmp_path / "prompts.jsonl", int(records))
    campaign = _campaign(tmp_path, line)
    with pytest.raises(CampaignError) as caught:
        list(read_campaign(campaign, records=OPTIONS))
    shown = str(caught.value).replace(str(tmp_path) + "/", "")
    assert shown.startswith(message)


def test_check_goes_on_past_a_bad_records_line(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 50)
    ok = {"id": "other", "service": "bedrock", "request": {**BEDROCK, "jobName": "x1"}}
    items = list(check_campaign(_campaign(tmp_path, _line(), ok), records=OPTIONS))
    assert isinstance(items[0], CampaignError)
    assert "50 records, fewer than the minimum of 100" in str(items[0])
    assert [i.id for i in items[1:] if not isinstance(i, CampaignError)] == ["other"]


def test_a_reader_that_uploads_nothing_refuses_records_lines(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 100)
    campaign = _campaign(tmp_path, _line())
    with pytest.raises(
        CampaignError, match=r"campaign\.jsonl:1: records: records lines are not run by this caller"
    ):
        list(read_campaign(campaign))
    [spec] = check_campaign(campaign)  # checking needs no upload
    assert isinstance(spec, ShardSpec)


class _JournalWithoutShards:
    """A journal that keeps no records shards: the :class:`~asyncjobs.journal.base.Journal`
    protocol only, delegated to a real SQLite journal."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in {"shard", "shards", "mark_uploaded", "record_output"}:
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_a_journal_that_keeps_no_shards_refuses_a_records_line_whole(tmp_path: Path) -> None:
    _prompts(tmp_path / "prompts.jsonl", 200)
    plain = {"id": "plain", "service": "bedrock", "request": BEDROCK}
    campaign_file = _campaign(tmp_path, plain, _line())
    async with await open_journal(tmp_path / "j.db", campaign="nightly") as inner:
        campaign = Campaign(_JournalWithoutShards(inner), region="us-east-1")  # type: ignore[arg-type]
        refused = r"campaign\.jsonl:2: a records line needs a journal that keeps shards"
        with pytest.raises(InputError, match=refused):
            await campaign.add(read_campaign(campaign_file, records=OPTIONS))
        assert inner.counts().total == 0, "all or nothing: the plain line before it is not kept"
        await campaign.add(read_campaign(_campaign(tmp_path, plain)))
        assert inner.counts().total == 1
