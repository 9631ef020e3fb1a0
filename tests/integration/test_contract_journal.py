"""The journal contract: every Journal implementation passes this suite (SQLite and PostgreSQL).

``opener`` opens a journal by name on the backend under test: a file in the test's directory, or a
fresh database on the session's PostgreSQL server (one database per name). Tests of what only a
file has (modes, locks) run on SQLite only, and say why.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from asyncjobs.errors import CampaignError, IllegalTransition, JournalLocked, JournalSchemaError, SpecChanged
from asyncjobs.journal import Change, Journal, open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobSpec, JobState, Service

Opener = Callable[..., Awaitable[Journal]]
sqlite_only = pytest.mark.parametrize("opener", ["sqlite"], indirect=True)


def spec(i: int, model: str = "m1", **extra: object) -> JobSpec:
    return JobSpec(
        f"s{i}", Service.BEDROCK, {"modelId": model, "roleArn": "r", **extra}, source=f"c.jsonl:{i + 1}"
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[Journal] = []
    backend = request.param
    make_database = request.getfixturevalue("postgres_database") if backend == "postgres" else None
    seen: set[str] = set()

    async def open_(name: str = "j.db", **kw: object) -> Journal:
        if make_database is None:
            journal: Journal = await open_journal(tmp_path / name, **kw)  # type: ignore[arg-type]
        else:
            if name not in seen:  # as a new file is named after its stem, unless told otherwise
                kw.setdefault("campaign", Path(name).stem)
            journal = await open_journal(make_database(name), **kw)  # type: ignore[arg-type]
        seen.add(name)
        opened.append(journal)
        return journal

    yield open_
    for journal in opened:
        await journal.aclose()


async def test_add_is_idempotent_and_all_or_nothing(opener: Opener) -> None:
    journal = await opener(campaign="camp")
    assert (await journal.add_specs([spec(i) for i in range(5)])).added == 5
    again = await journal.add_specs([spec(i) for i in range(7)])
    assert (again.added, again.existing) == (2, 5)

    def bad_stream() -> object:
        yield spec(10)
        yield spec(11)
        raise CampaignError("broken", source="c.jsonl", line=13, field="id")

    with pytest.raises(CampaignError):
        await journal.add_specs(bad_stream())  # type: ignore[arg-type]
    assert journal.counts().total == 7
    assert await journal.get("s10") is None


async def test_duplicates_and_changes_are_named(opener: Opener) -> None:
    journal = await opener(campaign="camp")
    with pytest.raises(CampaignError, match=r"c\.jsonl:3: id: duplicate id 's1' \(first at c\.jsonl:2\)"):
        await journal.add_specs(
            [spec(0), spec(1), JobSpec("s1", Service.BEDROCK, {"modelId": "x"}, "c.jsonl:3")]
        )
    named = [spec(0, jobName="same"), spec(1, jobName="same")]
    with pytest.raises(CampaignError, match=r"c\.jsonl:2: request\.jobName: duplicate jobName 'same'"):
        await journal.add_specs(named)
    assert journal.counts().total == 0
    await journal.add_specs([spec(0)])
    with pytest.raises(SpecChanged, match="'s0'"):
        await journal.add_specs([spec(0, model="m2")])


async def test_a_spec_the_journal_cannot_store_is_named_and_nothing_is_added(opener: Opener) -> None:
    """A spec built in Python skips the campaign file's checks: an integer beyond 64 bits is
    refused with its spec and member named, and the batch before it is not half-written."""
    journal = await opener(campaign="camp")
    huge = JobSpec("big", Service.BEDROCK, {"modelId": "m1", "timeoutDurationInHours": 2**70})
    with pytest.raises(
        CampaignError,
        match=r"^spec 'big': request\.timeoutDurationInHours: cannot be stored in the journal: "
        r"integer out of the 64-bit range, got 1180591620717411303424$",
    ):
        await journal.add_specs([spec(0), spec(1), huge])
    nested = JobSpec("deep", Service.BEDROCK, {"modelId": "m1", "tags": [{"v": {1}}]}, "c.jsonl:9")
    with pytest.raises(
        CampaignError, match=r"^c\.jsonl:9: request\.tags\[0\]\.v: .*: set is not a JSON value$"
    ):
        await journal.add_specs([nested])
    assert journal.counts().total == 0


async def test_pending_order_exclusion_and_keys(opener: Opener) -> None:
    journal = await opener()
    await journal.add_specs([spec(i, model="m1" if i % 2 else "m2") for i in range(10)])
    first = await journal.pending("bedrock:m1", 3)
    assert [j.id for j in first] == ["s1", "s3", "s5"]
    rest = await journal.pending("bedrock:m1", 10, exclude=["s1", "s3"])
    assert [j.id for j in rest] == ["s5", "s7", "s9"]
    assert {k: c[JobState.PENDING] for k, c in journal.counts_by_key().items()} == {
        "bedrock:m1": 5,
        "bedrock:m2": 5,
    }


async def test_transitions_are_durable_and_logged(opener: Opener) -> None:
    journal = await opener("d.db", campaign="camp")
    await journal.add_specs([spec(0)])
    (job,) = await journal.pending("bedrock:m1", 1)
    job = await journal.transition(job, Event.CLAIM)
    job = await journal.transition(job, Event.CREATED, arn="arn:aws:bedrock:x", submitted_at=1.0)
    with pytest.raises(IllegalTransition):
        await journal.transition(job, Event.CLAIM)
    await journal.aclose()
    reopened = await opener("d.db")
    again = await reopened.get("s0")
    assert again is not None and again.state is JobState.SUBMITTED and again.arn == "arn:aws:bedrock:x"
    assert reopened.campaign == "camp"
    assert reopened.counts()[JobState.SUBMITTED] == 1
    log = await reopened.events("s0")
    assert [(e.event, e.from_state, e.to_state) for e in log] == [
        ("claim", "pending", "submitting"),
        ("created", "submitting", "submitted"),
    ]


async def test_concurrent_changes_share_commits(opener: Opener) -> None:
    journal = await opener()
    await journal.add_specs([spec(i) for i in range(300)])
    jobs = await journal.pending("bedrock:m1", 300)

    async def claim(job_list: list) -> None:  # type: ignore[type-arg]
        for job in job_list:
            await journal.transition(job, Event.CLAIM)

    async with anyio.create_task_group() as tg:
        for k in range(30):
            tg.start_soon(claim, jobs[k::30])
    assert journal.counts()[JobState.SUBMITTING] == 300
    assert len(await journal.events()) == 300
    many = await journal.transition_many(
        [Change(j, Event.DEFER, {"last_error": "quota"}) for j in await journal.active()]
    )
    assert all(j.state is JobState.PENDING and j.last_error == "quota" for j in many)


async def test_changes_to_one_job_in_one_call_apply_in_order(opener: Opener) -> None:
    """A failure and its resubmission, committed together: each change applies to what the one
    before left, the counts never show the job failed, and the log has both steps."""
    journal = await opener()
    await journal.add_specs([spec(0), spec(1)])
    (job, other) = await journal.pending("bedrock:m1", 2)
    job = await journal.transition(job, Event.CLAIM)
    job = await journal.transition(job, Event.CREATED, arn="arn:1")
    failed, again, claimed = await journal.transition_many(
        [
            Change(job, Event.OBSERVE_FAILED, {"last_error": "boom"}),
            Change(job, Event.RESUBMIT, {"attempt": 2, "arn": None, "job_name": "n-r2"}, "attempt 2"),
            Change(other, Event.CLAIM, {}),
        ]
    )
    assert (failed.state, failed.attempt, failed.arn) == (JobState.FAILED, 1, "arn:1")
    assert (again.state, again.attempt, again.arn, again.job_name) == (JobState.PENDING, 2, None, "n-r2")
    assert again.last_error == "boom"
    assert claimed.state is JobState.SUBMITTING
    counts = journal.counts()
    assert (counts[JobState.PENDING], counts[JobState.SUBMITTING], counts.total) == (1, 1, 2)
    stored = await journal.get(job.id)
    assert stored is not None and (stored.state, stored.attempt) == (JobState.PENDING, 2)
    steps = [(e.event, e.from_state, e.to_state, e.attempt) for e in await journal.events(job.id)]
    assert steps[-2:] == [("observe_failed", "submitted", "failed", 1), ("resubmit", "failed", "pending", 2)]
    with pytest.raises(IllegalTransition):
        await journal.transition_many([Change(again, Event.CLAIM, {}), Change(again, Event.RESUBMIT, {})])


async def test_jobs_iterates_everything_in_order(opener: Opener) -> None:
    journal = await opener()
    await journal.add_specs([spec(i) for i in range(2500)])
    ids = [j.id async for j in journal.jobs()]
    assert ids == [f"s{i}" for i in range(2500)]
    assert [j async for j in journal.jobs([JobState.FAILED])] == []


@sqlite_only  # file modes and the lock file are a SQLite file's; a database has its own access control
async def test_file_is_private_locked_and_versioned(opener: Opener, tmp_path: Path) -> None:
    await opener("p.db")
    assert stat.S_IMODE(os.stat(tmp_path / "p.db").st_mode) == 0o600
    with pytest.raises(JournalLocked, match="in use by another asyncjobs process"):
        await open_journal(tmp_path / "p.db")
    (tmp_path / "x.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalSchemaError, match="not an asyncjobs journal"):
        await open_journal(tmp_path / "x.db")
    future = tmp_path / "future.db"
    await (await open_journal(future)).aclose()
    conn = sqlite3.connect(future)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(JournalSchemaError, match="schema version 99 is newer"):
        await open_journal(future)


@pytest.mark.parametrize("resumed", [False, True])
async def test_duplicates_across_ingest_batches_are_named(opener: Opener, resumed: bool) -> None:
    journal = await opener()
    if resumed:
        await journal.add_specs([spec(100_000)])
    specs = [spec(i) for i in range(12_000)]
    specs.append(JobSpec("s7", Service.BEDROCK, {"modelId": "m1", "roleArn": "r"}, source="c.jsonl:12001"))
    with pytest.raises(CampaignError, match=r"c\.jsonl:12001: id: duplicate id 's7' \(first at c\.jsonl:8\)"):
        await journal.add_specs(specs)
    named = [spec(i, jobName=f"n{i}") for i in range(6_000)] + [spec(6_001, jobName="n3")]
    with pytest.raises(CampaignError, match=r"c\.jsonl:6002: request\.jobName: duplicate jobName 'n3'"):
        await journal.add_specs(named)
    assert journal.counts().total == (1 if resumed else 0)


# ------------------------------------------------------------------ several workers: one worker's view
async def _finish(journal: Journal, job_id: str) -> None:
    job = await journal.get(job_id)
    assert job is not None
    job = await journal.transition(job, Event.CREATED, arn=f"arn:{job_id}")
    await journal.transition(job, Event.OBSERVE_SUCCEEDED)


async def test_claim_takes_pending_jobs_oldest_first_within_the_cap(opener: Opener) -> None:
    journal = await opener()
    await journal.add_specs([spec(i, model="m1" if i < 10 else "m2") for i in range(12)])
    first = await journal.claim("bedrock:m1", cap=3, limit=10)
    assert [j.id for j in first] == ["s0", "s1", "s2"]
    assert all(j.state is JobState.SUBMITTING for j in first)
    assert await journal.claim("bedrock:m1", cap=3, limit=10) == []  # the cap is full
    await _finish(journal, "s1")  # a slot frees
    assert [j.id for j in await journal.claim("bedrock:m1", cap=3, limit=10)] == ["s3"]
    assert [j.id for j in await journal.claim("bedrock:m1", cap=100, limit=2)] == ["s4", "s5"]
    assert [j.id for j in await journal.claim("bedrock:m2", cap=5, limit=5)] == ["s10", "s11"]
    assert await journal.claim("bedrock:m2", cap=5, limit=5) == []  # nothing left pending
    by_key = journal.counts_by_key()
    assert (by_key["bedrock:m1"][JobState.SUBMITTING], by_key["bedrock:m1"][JobState.PENDING]) == (5, 4)
    stored = await journal.get("s0")
    assert stored is not None and stored.state is JobState.SUBMITTING
    assert [(e.event, e.from_state, e.to_state) for e in await journal.events("s0")] == [
        ("claim", "pending", "submitting")
    ]


async def test_a_lone_worker_holds_every_lease(opener: Opener) -> None:
    journal = await opener()
    await journal.add_specs([spec(i) for i in range(3)])
    await journal.claim("bedrock:m1", cap=5, limit=2)
    assert await journal.heartbeat(lease_seconds=30) == 2
    assert await journal.take_over_expired() == []  # its own leases are live
    assert await journal.try_lease_sweep("bedrock", 10)
    assert await journal.try_lease_sweep("bedrock", 10)  # renewed
    assert journal.worker  # an id, for logs and leases
    await journal.refresh()
    assert journal.counts()[JobState.SUBMITTING] == 2


async def test_take_reserves_from_a_bucket_per_key(opener: Opener) -> None:
    """One call every 100 s, a burst of 2: the first two go at once, then each waits 100 s more
    than the one before (the waits are reservations, so no test time passes)."""
    journal = await opener()
    waits = [await journal.take("bedrock:us-east-1", rate=0.01, burst=2) for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert 99 < waits[2] <= 100
    assert 199 < waits[3] <= 200
    assert await journal.take("personalize:us-east-1", rate=0.01, burst=1) == 0.0  # another key


async def test_caps_saved_are_read_back_and_a_later_save_wins(opener: Opener) -> None:
    journal = await opener()
    assert await journal.caps() == {}
    await journal.save_caps({"personalize:us-east-1:batch-inference": 3, "bedrock:m1": 8})
    await journal.save_caps({"bedrock:m1": 9})
    assert await journal.caps() == {"personalize:us-east-1:batch-inference": 3, "bedrock:m1": 9}
    assert await journal.paces() == {}  # caps are not paces, nor paces caps
    await journal.save_paces({"bedrock:us-east-1": 1.5})
    assert await journal.caps() == {"personalize:us-east-1:batch-inference": 3, "bedrock:m1": 9}


async def test_caps_can_be_read_only_if_saved_lately(opener: Opener) -> None:
    journal = await opener()
    await journal.save_caps({"bedrock:m1": 8})
    await anyio.sleep(0.3)
    await journal.save_caps({"bedrock:m2": 4})
    assert await journal.caps(within=0.2) == {"bedrock:m2": 4}
    assert await journal.caps(within=60) == {"bedrock:m1": 8, "bedrock:m2": 4}


async def test_slow_starts_are_read_back_lately_saved_and_are_not_paces(opener: Opener) -> None:
    journal = await opener()
    assert await journal.slow_starts() == {}
    await journal.save_slow_starts({"bedrock:us-east-1": 2.0, "personalize:us-east-1": 2.0})
    await anyio.sleep(0.3)
    await journal.save_slow_starts({"bedrock:us-east-1": 4.0})
    assert await journal.slow_starts() == {"bedrock:us-east-1": 4.0, "personalize:us-east-1": 2.0}
    assert await journal.slow_starts(within=0.2) == {"bedrock:us-east-1": 4.0}
    # nothing was learned of the limit: not where a later run starts, and not a cap
    assert await journal.paces() == {}
    assert await journal.caps() == {}
    await journal.save_paces({"bedrock:us-east-1": 1.9})
    assert await journal.slow_starts() == {"bedrock:us-east-1": 4.0, "personalize:us-east-1": 2.0}
