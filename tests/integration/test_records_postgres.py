"""Records in, results out, with the campaign's journal in PostgreSQL: a records line run by the
library against the emulator's one endpoint, its S3 inspected with boto3's own client.

A real PostgreSQL (:mod:`tests.support.postgres`). Expected values come from the records the
test writes: ``ceil(450 / 200)`` = 3 near-equal shards of 150, ids in input order. (The same
through the command: ``tests/acceptance/test_cli_records.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from asyncjobs.campaign import read_campaign
from asyncjobs.journal import open_journal
from asyncjobs.journal.postgres import PostgresJournal
from asyncjobs.model import JobState
from asyncjobs.records import RecordsOptions
from asyncjobs.records.collected import campaign_results
from asyncjobs.scheduler import Campaign, Settings
from tests.conftest import MakeEmulator
from tests.support.presets import EMULATOR_RUN
from tests.support.records import (
    bedrock_line,
    expected_ids,
    make_buckets,
    prompts,
    result_lines,
    staged,
    uploads_per_key,
    write_jsonl,
)
from tests.support.specs import write_campaign

pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment

T = TypeVar("T")


async def off(fn: Callable[..., T], *args: Any) -> T:
    """A blocking boto3 call, in a thread: the emulator answers from this test's event loop."""
    return await asyncio.to_thread(fn, *args)


async def run_records(uri: str, campaign_file: Path, url: str) -> Campaign:
    journal = await open_journal(uri, campaign="pgrec")
    assert isinstance(journal, PostgresJournal)
    campaign = Campaign(
        journal,
        endpoint_url=url,
        region="us-east-1",
        settings=Settings(**EMULATOR_RUN),
        records=RecordsOptions(records_per_job=200),
    )
    async with journal:
        await campaign.add(read_campaign(campaign_file, records=campaign.records_options))
        with anyio.fail_after(120):
            await campaign.run()
    return campaign


async def test_records_line_on_a_postgres_journal(
    make_emulator: MakeEmulator, postgres_database: Callable[[str], str], tmp_path: Path
) -> None:
    emu = await make_emulator(output_order="shuffled")
    await off(make_buckets, emu.url)
    records = prompts(450)
    write_jsonl(tmp_path / "prompts.jsonl", records)
    campaign_file = write_campaign(tmp_path / "campaign.jsonl", [bedrock_line()])
    uri = postgres_database("records")

    first = await run_records(uri, campaign_file, emu.url)

    assert first.progress().counts[JobState.SUCCEEDED] == 3
    objects = await off(staged, emu.url, "staging/")
    assert sorted(len(body.splitlines()) for body in objects.values()) == [150, 150, 150]
    assert all(key.startswith("staging/pgrec/summaries/") for key in objects)
    assert emu.stats()["jobs_total"] == 3

    # a second run over the same journal (a resumed or joining worker): nothing new is sent
    await run_records(uri, campaign_file, emu.url)
    assert set((await off(uploads_per_key, emu.url)).values()) == {1}
    assert emu.stats()["jobs_total"] == 3

    async with await open_journal(uri, campaign="pgrec") as journal:
        assert isinstance(journal, PostgresJournal)
        rows = await journal.shards()
        assert [r.job_id for r in rows] == ["summaries/00001", "summaries/00002", "summaries/00003"]
        assert all(r.uploaded_at is not None and r.collected_at is not None for r in rows)
    [summary] = await campaign_results(uri, tmp_path / "out", campaign="pgrec", endpoint_url=emu.url)
    lines = result_lines(summary.path)
    assert [line["recordId"] for line in lines] == expected_ids(records)  # one per record, in order
    assert summary.records == summary.succeeded == 450
