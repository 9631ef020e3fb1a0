"""Records in, results out, through the command: ``run`` with a records line against the emulator's
one endpoint, its S3 inspected with boto3's own client, then ``results``.

Expected values come from the records each test writes: counts, ids in input order, shard sizes
from ``ceil(n / N)`` near-equal shards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import MakeEmulator
from tests.support.cli import Cli, finish_async
from tests.support.presets import FAST_POLL
from tests.support.records import (
    bedrock_line,
    expected_ids,
    make_buckets,
    personalize_line,
    prompts,
    result_lines,
    staged,
    uploads_per_key,
    write_jsonl,
)
from tests.support.specs import write_campaign

T = TypeVar("T")


async def off(fn: Callable[..., T], *args: Any) -> T:
    """A blocking boto3 call, in a thread: the emulator answers from this test's event loop."""
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


async def test_records_line_sharded_uploaded_run_and_joined_back(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(output_order="shuffled")
    await off(make_buckets, emu.url)
    records = prompts(450)
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])

    result = await cli(
        "run", str(campaign), "--journal", "j.db", "--endpoint-url", emu.url, "--output", "json",
        "--records-per-job", "200", *FAST_POLL,
    )  # fmt: skip

    assert result.code == 0, result
    doc = result.json()
    assert doc["counts"]["succeeded"] == 3
    assert doc["uploads"] == {
        "shards": 3,
        "records": 450,
        "shards_uploaded": 3,
        "records_sent": 450,
        "bytes_sent": doc["uploads"]["bytes_sent"],
    }
    objects = await off(staged, emu.url, "staging/")
    assert sorted(len(body.splitlines()) for body in objects.values()) == [150, 150, 150]
    assert doc["uploads"]["bytes_sent"] == sum(len(body) for body in objects.values())
    assert all(key.startswith("staging/j/summaries/") and key.endswith(".jsonl") for key in objects)
    assert set((await off(uploads_per_key, emu.url)).values()) == {1}
    assert emu.stats()["jobs_total"] == 3
    uploaded_ids = [
        json.loads(line)["recordId"] for key in sorted(objects) for line in objects[key].splitlines()
    ]
    assert uploaded_ids == expected_ids(records)

    shown = await cli(
        "results", "--journal", "j.db", "--out", "out", "--endpoint-url", emu.url, "--output", "json"
    )

    assert shown.code == 0, shown
    [line] = shown.json()["lines"]
    assert (line["id"], line["records"], line["succeeded"], line["failed"]) == ("summaries", 450, 450, 0)
    assert line["tokens"]["inputTokenCount"] > 0 and line["tokens"]["outputTokenCount"] > 0
    lines = result_lines(tmp_path / "out" / "summaries.jsonl")
    assert [r["recordId"] for r in lines] == expected_ids(records)  # one per record, input order
    assert all(set(r) == {"recordId", "modelOutput"} for r in lines)
    for i, r in enumerate(lines):
        assert f"Summarise doc {i}" in json.dumps(r["modelOutput"])

    table = await cli("results", "--journal", "j.db", "--out", "out2", "--endpoint-url", emu.url)
    assert table.code == 0, table
    assert "summaries" in table.stdout and "450" in table.stdout


async def test_results_beside_the_run_that_holds_the_journal(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """results reads a read-only snapshot: what the run has collected so far, without its lock."""
    emu = await make_emulator(job_seconds=(2.0, 3.0))
    await off(make_buckets, emu.url)
    records = prompts(450)
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])
    run = await cli.start(
        "run", str(campaign), "--journal", "j.db", "--endpoint-url", emu.url, "--records-per-job", "200",
        *FAST_POLL,
    )  # fmt: skip
    while emu.stats()["jobs_total"] == 0 and run.returncode is None:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0.05)
    assert run.returncode is None, await finish_async(run)

    beside = await cli(
        "results", "--journal", "j.db", "--out", "early", "--endpoint-url", emu.url, "--output", "json"
    )
    ran = await finish_async(run)
    after = await cli(
        "results", "--journal", "j.db", "--out", "out", "--endpoint-url", emu.url, "--output", "json"
    )

    assert beside.code == 0, beside
    [early] = beside.json()["lines"]
    assert (early["id"], early["records"]) == ("summaries", 450)
    assert early["succeeded"] + early["failed"] == 450  # not yet collected: reported failed (missing)
    assert len(result_lines(tmp_path / "early" / "summaries.jsonl")) == 450
    assert ran.code == 0, ran
    assert after.code == 0, after
    [line] = after.json()["lines"]
    assert (line["records"], line["succeeded"], line["failed"]) == (450, 450, 0)
    assert [r["recordId"] for r in result_lines(tmp_path / "out" / "summaries.jsonl")] == expected_ids(
        records
    )


async def test_records_line_on_a_postgres_journal(
    cli: Cli, make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator(output_order="shuffled")
    await off(make_buckets, emu.url)
    records = prompts(450)
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])
    uri = postgres_database("records")
    run_args = (
        "run", str(campaign), "--journal", uri, "--campaign-name", "recs", "--endpoint-url", emu.url,
        "--output", "json", "--records-per-job", "200", *FAST_POLL,
    )  # fmt: skip

    ran = await cli(*run_args)

    assert ran.code == 0, ran
    doc = ran.json()
    assert doc["counts"]["succeeded"] == 3
    assert (doc["uploads"]["shards_uploaded"], doc["uploads"]["records_sent"]) == (3, 450)
    objects = await off(staged, emu.url, "staging/")
    assert sorted(len(body.splitlines()) for body in objects.values()) == [150, 150, 150]
    assert all(key.startswith("staging/recs/summaries/") for key in objects)

    again = await cli(*run_args)  # a second worker with the same campaign file: nothing new is sent
    assert again.code == 0, again
    assert set((await off(uploads_per_key, emu.url)).values()) == {1}
    assert emu.stats()["jobs_total"] == 3

    shown = await cli(
        "results", "--journal", uri, "--campaign-name", "recs", "--out", "out",
        "--endpoint-url", emu.url, "--output", "json",
    )  # fmt: skip
    assert shown.code == 0, shown
    [line] = shown.json()["lines"]
    assert (line["id"], line["records"], line["succeeded"], line["failed"]) == ("summaries", 450, 450, 0)
    lines = result_lines(tmp_path / "out" / "summaries.jsonl")
    assert [r["recordId"] for r in lines] == expected_ids(records)  # one per record, input order


async def test_bad_records_file_exit_2_names_the_line_and_uploads_nothing(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    await off(make_buckets, emu.url)
    records = prompts(150)
    del records[6]["modelInput"]  # line 7
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])

    result = await cli("run", str(campaign), "--journal", "j.db", "--endpoint-url", emu.url, *FAST_POLL)

    assert result.code == 2, result
    assert "prompts.jsonl:7" in result.stderr
    assert "modelInput" in result.stderr
    assert await off(staged, emu.url) == {}
    assert emu.stats()["jobs_total"] == 0
    assert not (tmp_path / "j.db").exists()

    checked = await cli("check", str(campaign))
    assert checked.code == 2
    assert "prompts.jsonl:7" in checked.stderr


async def test_too_few_records_exit_2(cli: Cli, make_emulator: MakeEmulator, tmp_path: Path) -> None:
    emu = await make_emulator()
    await off(make_buckets, emu.url)
    write_jsonl(tmp_path / "prompts.jsonl", prompts(99))
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])

    result = await cli("run", str(campaign), "--journal", "j.db", "--endpoint-url", emu.url, *FAST_POLL)

    assert result.code == 2, result
    assert "prompts.jsonl" in result.stderr and "100" in result.stderr
    assert await off(staged, emu.url) == {}


async def test_failed_records_retried_in_new_shards(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(record_error_rate=0.3, bedrock_min_records=5, seed=5)
    await off(make_buckets, emu.url)
    records = prompts(200)
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])
    common = ("--journal", "j.db", "--endpoint-url", emu.url)

    once = await cli(
        "run", str(campaign), *common, "--output", "json", "--records-per-job", "100",
        "--min-records-per-job", "5", *FAST_POLL,
    )  # fmt: skip
    assert once.code == 0, once
    first = (await cli("results", *common, "--out", "first", "--output", "json")).json()["lines"][0]
    assert first["failed"] > 0  # the knob failed some of them

    again = await cli(
        "run", *common, "--output", "json", "--records-per-job", "100", "--min-records-per-job", "5",
        "--retry-failed-records", "3", *FAST_POLL,
    )  # fmt: skip

    assert again.code == 0, again
    jobs = emu.jobs()
    assert len(jobs) > 2  # retry shards were submitted as jobs of their own
    retry_keys = [key for key in await off(staged, emu.url, "staging/") if "retry" in key]
    assert retry_keys
    # each retry shard holds only records that had failed before
    failed_first = {
        r["recordId"] for r in result_lines(tmp_path / "first" / "summaries.jsonl") if "error" in r
    }
    objects = await off(staged, emu.url, "staging/")
    first_retry = [k for k in retry_keys if "retry1" in k]
    assert {json.loads(x)["recordId"] for k in first_retry for x in objects[k].splitlines()} == failed_first

    last = (await cli("results", *common, "--out", "last", "--output", "json")).json()["lines"][0]
    assert last["records"] == 200
    assert last["failed"] < first["failed"]
    lines = result_lines(tmp_path / "last" / "summaries.jsonl")
    assert [r["recordId"] for r in lines] == expected_ids(records)
    assert sum("error" in r for r in lines) == last["failed"]


async def test_personalize_records_uploaded_and_collected(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    await off(make_buckets, emu.url)
    users = [{"userId": str(1000 + i)} for i in range(30)]
    write_jsonl(tmp_path / "users.jsonl", users)
    campaign = write_campaign(tmp_path / "campaign.jsonl", [personalize_line()])
    common = ("--journal", "j.db", "--endpoint-url", emu.url)

    result = await cli(
        "run", str(campaign), *common, "--output", "json", "--records-per-job", "20", *FAST_POLL
    )

    assert result.code == 0, result
    objects = await off(staged, emu.url, "users/")
    assert sorted(len(body.splitlines()) for body in objects.values()) == [15, 15]
    shown = await cli("results", *common, "--out", "out", "--output", "json")
    assert shown.code == 0, shown
    [line] = shown.json()["lines"]
    assert (line["records"], line["succeeded"], line["failed"]) == (30, 30, 0)
    lines = result_lines(tmp_path / "out" / "recs.jsonl")
    assert [r["input"] for r in lines] == users
    assert all(r["output"]["recommendedItems"] for r in lines)


async def test_a_shard_s3_refuses_is_rejected_and_never_created(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()  # no buckets: S3 answers NoSuchBucket, a request error, not retried
    write_jsonl(tmp_path / "prompts.jsonl", prompts(100))
    campaign = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])

    result = await cli(
        "run", str(campaign), "--journal", "j.db", "--endpoint-url", emu.url, "--output", "json", *FAST_POLL
    )  # fmt: skip

    assert result.code == 1, result
    assert result.json()["counts"]["rejected"] == 1
    assert emu.stats()["jobs_total"] == 0
    status = await cli("status", "--journal", "j.db", "--output", "json")
    [job] = status.json()["jobs"]
    assert job["id"] == "summaries/00001"
    assert "NoSuchBucket" in job["last_error"]
