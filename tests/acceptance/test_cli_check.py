"""``asyncjobs check``, and ``run`` of a bad campaign, with no AWS credentials anywhere.

``check`` validates a whole campaign as ``run`` would and sends nothing: every bad line
is one ``file:line: field: reason`` line on stderr (exit 2); a good campaign gets a
summary of its jobs per service and quota key (exit 0). The expected lines are written
out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Cli, journal_files
from tests.support.specs import mixed_specs, named, spec, write_campaign

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command with no credentials: no keys, empty AWS config files, no metadata service."""
    cli = Cli(tmp_path)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        cli.env.pop(key, None)
    for name in ("empty-config", "empty-credentials"):
        (tmp_path / name).write_text("")
    cli.env.update(
        AWS_CONFIG_FILE=str(tmp_path / "empty-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "empty-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return cli


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


#: Ten lines: four good ones, a blank one, and one of each kind of problem.
BAD_CAMPAIGN = (
    "".join(
        line + "\n"
        for line in (
            json.dumps(spec("a", "bedrock")),
            '{"id": "b", "service": "bedrock"',
            json.dumps(spec("c", "personalize", numResults=10**30)),
            json.dumps(spec("a", "personalize-segment")),
            "",
            json.dumps(named("e", "same-name")),
            json.dumps(named("f", "same-name")),
            json.dumps({**spec("g", "bedrock"), "service": "lambda"}),
            json.dumps(spec("h", "bedrock", timeoutDurationInHours=2**63)),
            json.dumps(spec("j", "personalize-segment")),
        )
    )
).encode()

BAD_LINES = [
    "campaign.jsonl:2: malformed JSON: Expecting ',' delimiter (column 33)",
    "campaign.jsonl:3: request.numResults: must be at most 2147483647 (a 32-bit integer), "
    "got 1000000000000000000000000000000",
    "campaign.jsonl:4: id: duplicate id 'a' (first at campaign.jsonl:1)",
    "campaign.jsonl:7: request.jobName: duplicate jobName 'same-name' (first at campaign.jsonl:6)",
    "campaign.jsonl:8: service: unknown service 'lambda'; expected one of: bedrock, personalize, "
    "personalize-segment",
    "campaign.jsonl:9: request.timeoutDurationInHours: must be between 24 and 168, got 9223372036854775808",
]


async def test_check_reports_every_bad_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "campaign.jsonl").write_bytes(BAD_CAMPAIGN)

    result = await cli("check", "campaign.jsonl")

    assert result.code == 2, result
    assert result.stderr.splitlines() == BAD_LINES
    assert result.stdout == ""
    assert files(tmp_path) == ["campaign.jsonl", "empty-config", "empty-credentials"]  # no journal


async def test_check_reads_stdin(cli: Cli) -> None:
    result = await cli("check", "-", stdin=BAD_CAMPAIGN)

    assert result.code == 2, result
    assert result.stderr.splitlines() == [line.replace("campaign.jsonl", "<stdin>") for line in BAD_LINES]


async def test_check_of_a_good_campaign_summarises_it(cli: Cli, tmp_path: Path) -> None:
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(5))

    result = await cli("check", "campaign.jsonl", "--output", "json")

    assert result.code == 0, result
    assert result.stderr == ""
    assert result.json() == {
        "campaign": "campaign.jsonl",
        "jobs": 5,
        "services": {"bedrock": 3, "personalize": 1, "personalize-segment": 1},
        "quota_keys": {
            f"bedrock:{MODEL}": 3,
            "personalize:us-east-1:batch-inference": 1,
            "personalize:us-east-1:batch-segment": 1,
        },
    }

    table = await cli("check", "campaign.jsonl", "--output", "table")
    assert table.code == 0, table
    assert "5 jobs, all valid" in table.stdout
    for text in ("personalize-segment", f"bedrock:{MODEL}", "personalize:us-east-1:batch-segment"):
        assert text in table.stdout

    count = await cli("--query", "jobs", "check", "-", stdin=(tmp_path / "campaign.jsonl").read_bytes())
    assert (count.code, count.stdout.strip()) == (0, "5")


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "campaign.jsonl: no such file"),
        (b"\n\n", "campaign.jsonl: contains no job specs"),
    ],
    ids=["missing", "empty"],
)
async def test_check_of_no_campaign(cli: Cli, tmp_path: Path, content: bytes | None, line: str) -> None:
    if content is not None:
        (tmp_path / "campaign.jsonl").write_bytes(content)

    result = await cli("check", "campaign.jsonl")

    assert (result.code, result.stderr.splitlines(), result.stdout) == (2, [line], "")


async def test_run_without_credentials_names_the_bad_line_first(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "campaign.jsonl").write_bytes(BAD_CAMPAIGN)

    result = await cli("run", "campaign.jsonl", "--journal", "c.db")

    assert result.code == 2, result
    assert result.stderr.splitlines() == [f"asyncjobs: error: {BAD_LINES[0]}"]
    assert journal_files(tmp_path / "c.db") == []


async def test_run_without_credentials_finds_a_duplicate_first(cli: Cli, tmp_path: Path) -> None:
    # a duplicate is otherwise found by the journal at ingest, after the credential check
    write_campaign(tmp_path / "campaign.jsonl", [spec("a", "bedrock"), spec("a", "personalize")])

    result = await cli("run", "-", "--journal", "c.db", stdin=(tmp_path / "campaign.jsonl").read_bytes())

    assert result.code == 2, result
    assert result.stderr.splitlines() == [
        "asyncjobs: error: <stdin>:2: id: duplicate id 'a' (first at <stdin>:1)"
    ]


async def test_run_of_a_good_campaign_without_credentials_says_so(cli: Cli, tmp_path: Path) -> None:
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))

    result = await cli("run", "campaign.jsonl", "--journal", "c.db")

    assert result.code == 2, result
    assert result.stderr.startswith("asyncjobs: error: no AWS credentials found")
    assert journal_files(tmp_path / "c.db") == []
