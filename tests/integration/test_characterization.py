"""What the engine does, recorded before its split into modules, so the split can show it changed nothing.

One campaign runs against the emulator over HTTP, through a small proxy of ours that answers
chosen create calls with a scripted AWS error (a throttle, a 5xx, a full quota, a validation
error, Personalize's ambiguous LimitExceededException). The script is keyed by job name, so
every job meets the same errors in every run, whatever the timing. The emulator itself adds
job failures drawn from its seed (per job name, so also the same in every run), which the
campaign resubmits. The campaign is first stopped during its first create, then resumed.

Recorded, with the expected values written out by hand:

- each job's sequence of journal events. ``observe_submitted`` and ``observe_running`` are left
  out: whether a sweep happens to see a job in a phase before its end is a matter of timing;
- the set of structlog event names and of ``CampaignEvent`` names;
- the ``Summary`` of both runs, but for ``elapsed`` and ``reads`` (how many sweeps a run
  makes is a matter of timing too).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from asyncjobs.emulator import Emulator
from asyncjobs.journal import SQLiteJournal, open_journal
from asyncjobs.model import JobSpec, Service
from asyncjobs.scheduler import Campaign, CampaignEvent, Settings, Summary
from tests.conftest import MakeEmulator
from tests.support.presets import EMULATOR_RUN
from tests.support.specs import bedrock_specs, personalize_specs

pytestmark = pytest.mark.usefixtures("aws_credentials")  # the Campaign opens its clients from the environment

CAMPAIGN = "char"
OTHER_MODEL = "amazon.nova-lite-v1:0"
QUOTA_MODEL = "amazon.nova-pro-v1:0"
TIMING = {"observe_submitted", "observe_running"}


@dataclass(frozen=True)
class ScriptedError:
    """An AWS error as the service sends it on the wire."""

    code: str
    status: int
    message: str = "scripted by the characterization test"


THROTTLE = ScriptedError("ThrottlingException", 429)
SERVER_ERROR = ScriptedError("InternalServerException", 500)
QUOTA_FULL = ScriptedError("ServiceQuotaExceededException", 400)
INVALID = ScriptedError("ValidationException", 400)
PERSONALIZE_LIMIT = ScriptedError("LimitExceededException", 400)


@dataclass
class FaultProxy:
    """Forwards every request to the emulator, except scripted answers to chosen creates."""

    upstream: str
    #: The errors each job name's creates meet, in order; then its creates go through.
    script: dict[str, list[ScriptedError]]
    #: Called with the job name of every create that reaches the proxy, before it is answered.
    on_create: Callable[[str], None] = lambda name: None
    creates: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        is_create = (request.method == "POST" and request.path == "/model-invocation-job") or (
            target.endswith(("CreateBatchInferenceJob", "CreateBatchSegmentJob"))
        )
        if is_create:
            name = json.loads(body)["jobName"]
            self.creates.append(name)
            self.on_create(name)
            errors = self.script.get(name)
            if errors:
                return self._error(errors.pop(0), bedrock=not target)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower().startswith("x-amz")}
            return web.Response(
                status=answer.status,
                body=payload,
                headers={**kept, "Content-Type": answer.headers.get("Content-Type", "")},
            )

    @staticmethod
    def _error(error: ScriptedError, *, bedrock: bool) -> web.Response:
        headers = {"x-amzn-RequestId": "scripted"}
        if bedrock:
            headers["x-amzn-ErrorType"] = error.code
        content_type = "application/json" if bedrock else "application/x-amz-json-1.1"
        status = error.status if bedrock else (500 if error.status >= 500 else 400)
        body = {"__type": error.code, "message": error.message}
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type=content_type, headers=headers
        )


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SQLiteJournal]:
    async with await open_journal(tmp_path / "campaign.db", campaign=CAMPAIGN) as j:
        yield j


async def serve(proxy: FaultProxy) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def summary_without_timing(summary: Summary) -> dict[str, Any]:
    shown = summary.to_dict()
    del shown["elapsed_seconds"]
    del shown["api"]["reads"]
    return shown


def counts(**states: int) -> dict[str, int]:
    zero = dict.fromkeys(
        [
            "pending",
            "submitting",
            "submitted",
            "running",
            "succeeded",
            "partial",
            "failed",
            "stopped",
            "expired",
            "rejected",
            "cancelled",
        ],
        0,
    )
    return {**zero, **states}


def stopped_specs() -> list[JobSpec]:
    """The two jobs journaled before the stop: one is sent, the other is claimed but not yet sent."""
    return bedrock_specs(2, prefix="s")


def resumed_specs() -> list[JobSpec]:
    """The jobs added when the campaign resumes, one per situation, and some plain ones."""
    return (
        bedrock_specs(1, prefix="throttle")
        + bedrock_specs(1, prefix="flaky")
        + bedrock_specs(1, QUOTA_MODEL, prefix="quota")
        + bedrock_specs(1, OTHER_MODEL, prefix="invalid")
        + bedrock_specs(6, OTHER_MODEL, prefix="plain")
        + personalize_specs(1, prefix="limited")
        + personalize_specs(1, Service.PERSONALIZE_SEGMENT, prefix="segment")
    )


SCRIPT = {
    "char-throttle0": [THROTTLE],
    "char-flaky0": [SERVER_ERROR, SERVER_ERROR],
    "char-quota0": [QUOTA_FULL],
    "char-invalid0": [INVALID],
    "char-limited0": [PERSONALIZE_LIMIT],
}


async def test_a_stopped_and_resumed_campaign_with_every_kind_of_error(
    journal: SQLiteJournal, make_emulator: MakeEmulator
) -> None:
    emu: Emulator = await make_emulator(seed=7, fail_rate=0.3, job_seconds=(0.5, 1.0))
    stop = anyio.Event()
    proxy = FaultProxy(emu.url, {name: list(errors) for name, errors in SCRIPT.items()})
    proxy.on_create = lambda name: stop.set()  # the first create stops the first run
    runner, url = await serve(proxy)
    names: set[str] = set()
    try:
        with capture_logs() as logs:
            await journal.add_specs(stopped_specs())
            first = Campaign(
                journal,
                endpoint_url=url,
                region="us-east-1",
                # one create a second: the second job is still waiting for its turn at the stop
                settings=Settings(**{**EMULATOR_RUN, "create_rate": 1.0}),
                rng=random.Random(1),
                on_event=lambda event: names.add(event.name),
            )
            with anyio.fail_after(60):
                stopped = await first.run(stop=stop)
            proxy.on_create = lambda name: None
            await journal.add_specs(resumed_specs())
            events: list[CampaignEvent] = []
            second = Campaign(
                journal,
                endpoint_url=url,
                region="us-east-1",
                settings=Settings(
                    **{
                        **EMULATOR_RUN,
                        "max_running": {QUOTA_MODEL: 2},
                        "resubmit_failed": 1,
                        "capacity_probe_after": 600,
                    }
                ),
                rng=random.Random(2),
                on_event=events.append,
            )
            with anyio.fail_after(90):
                finished = await second.run()
    finally:
        await runner.cleanup()
    names.update(event.name for event in events)

    sequences: dict[str, list[str]] = defaultdict(list)
    for record in await journal.events():
        if record.event not in TIMING:
            sequences[record.job_id].append(record.event)

    assert summary_without_timing(stopped) == {
        "campaign": CAMPAIGN,
        "journal": journal.path,
        "total": 2,
        "counts": counts(pending=1, submitted=1),
        "interrupted": True,
        "api": {"creates": 1, "throttled": 0},
        "unstoppable": 0,
    }
    assert summary_without_timing(finished) == {
        "campaign": CAMPAIGN,
        "journal": journal.path,
        "total": 14,
        "counts": counts(succeeded=12, failed=1, rejected=1),
        "interrupted": False,
        # s0's second attempt, s1, throttle0, quota0, flaky0 twice, plain0-5 and plain4 again,
        # limited0 and segment0 twice: 17. Throttled: throttle0's, and limited0's refusal once
        # the create it held back was accepted (the pace, not the quota, had refused it)
        "api": {"creates": 17, "throttled": 2},
        "unstoppable": 0,
    }
    once = ["claim", "created", "observe_succeeded"]
    resubmitted = ["claim", "created", "observe_failed", "resubmit", *once]
    assert dict(sequences) == {
        # the first run: s0 was sent when the stop came, s1 still waited for its turn
        "s0": resubmitted,
        "s1": ["claim", "defer", *once],
        "throttle0": ["claim", "retry", "created", "observe_succeeded"],
        "flaky0": ["claim", "retry", "retry", "created", "observe_failed", "resubmit", *once],
        "quota0": ["claim", "defer", *once],
        "invalid0": ["claim", "reject"],
        "plain0": once,
        "plain1": once,
        "plain2": once,
        "plain3": once,
        # the emulator fails both of its attempts (seed 7): resubmitted once, then failed for good
        "plain4": ["claim", "created", "observe_failed", "resubmit", "claim", "created", "observe_failed"],
        "plain5": once,
        "limited0": ["claim", "retry", "created", "observe_failed", "resubmit", *once],
        "segment0": resubmitted,
    }
    log_names = {e["event"] for e in logs if not e["event"].startswith("asyncjobs.emulator.")}
    assert log_names == {
        "asyncjobs.campaign.stopping",
        "asyncjobs.capacity.exceeded",
        "asyncjobs.create.limited",
        "asyncjobs.create.retry",
        "asyncjobs.create.throttled",
        "asyncjobs.job.final",
        "asyncjobs.job.rejected",
        "asyncjobs.job.resubmitted",
        "asyncjobs.job.running",
        "asyncjobs.job.submitted",
        "asyncjobs.journal.ingested",  # the journal's own, not the campaign's
    }
    # every event the campaign logs is also a CampaignEvent, and the other way round
    assert names == {
        "campaign.stopping",
        "capacity.exceeded",
        "create.limited",
        "create.retry",
        "create.throttled",
        "job.final",
        "job.rejected",
        "job.resubmitted",
        "job.running",
        "job.submitted",
    }
    assert emu.stats()["duplicate_jobs"] == 0
