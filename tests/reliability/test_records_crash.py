"""kill -9 while records shards are uploaded and while their outputs are collected, then resume:
nothing is uploaded twice, no record is lost, and exactly one job runs per shard.

The emulator runs in its own process; its staging bucket is versioned, so every PUT of a shard
leaves a version, counted with boto3's own client (:func:`tests.support.records.uploads_per_key`),
whatever asyncjobs believes it did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.conftest import QUICK, StartEmulator
from tests.reliability.harness import audit, read_journal
from tests.support.cli import run_at_point, run_cli
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

RECORDS = 600
RUN_ARGS = ("--poll-interval", "0.3", "--records-per-job", "100", "--output", "json")


@pytest.mark.parametrize(
    "point",
    [
        pytest.param("before:upload:2", id="uploaded-not-journaled"),
        pytest.param("after:upload:3", id="uploaded-and-journaled"),
        pytest.param("before:collect:2", id="outputs-found-not-journaled"),
        pytest.param("after:collect:4", id="outputs-journaled"),
    ],
)
def test_kill_during_uploads_and_collection(start_emulator: StartEmulator, workdir: Path, point: str) -> None:
    emu = start_emulator(*QUICK)
    make_buckets(emu.url)
    records = prompts(RECORDS)
    write_jsonl(workdir / "prompts.jsonl", records)
    campaign = write_campaign(workdir / "campaign.jsonl", [bedrock_line()])
    connection = ("--endpoint-url", emu.url)

    killed = run_at_point(
        point, *connection, "run", str(campaign), "--journal", "j.db", *RUN_ARGS, cwd=workdir
    )
    assert killed.code == -9, killed

    resumed = run_cli(*connection, "run", "--journal", "j.db", *RUN_ARGS, cwd=workdir)

    assert resumed.code == 0, resumed
    uploads = uploads_per_key(emu.url)
    assert len(uploads) == RECORDS // 100
    assert set(uploads.values()) == {1}, uploads  # no shard was sent twice
    objects = staged(emu.url, "staging/")
    assert sorted(len(body.splitlines()) for body in objects.values()) == [100] * 6
    found = audit(read_journal(workdir / "j.db"), emu.jobs(), emu.stats())
    assert found.problems == []
    assert found.remote_jobs == 6  # one job per shard

    shown = run_cli(
        *connection, "results", "--journal", "j.db", "--out", "out", "--output", "json", cwd=workdir
    )
    assert shown.code == 0, shown
    [line] = json.loads(shown.stdout)["lines"]
    assert (line["records"], line["succeeded"], line["failed"]) == (RECORDS, RECORDS, 0)
    assert [r["recordId"] for r in result_lines(workdir / "out" / "summaries.jsonl")] == expected_ids(records)
