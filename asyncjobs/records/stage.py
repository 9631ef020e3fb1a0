"""Records shards in a run: uploaded before their create, collected when their job ends,
and failed records sent again.

The scheduler calls a :class:`RecordsStage` at three places, and knows nothing else of records:

- **Before a shard job's create** (:meth:`RecordsStage.before_create`, after the claim is
  journaled): unless the journal says the shard is uploaded, :func:`upload_shard` puts it
  (a ``HeadObject`` first: an object already there with the shard's checksum is not sent
  again), then the journal marks it uploaded. A create is never sent for a shard not
  known to be in S3, and a resumed run uploads nothing twice: a shard marked uploaded is
  not even looked at, one uploaded but not yet marked (killed in between) is found by
  its checksum. A records file changed since it was read rejects the job, and so does an
  S3 error that says the request is wrong (``NoSuchBucket``, a 4xx); S3's 5xx, throttling
  and broken connections are retried with the engine's backoff, then reject it; refused
  credentials (``AccessDenied``, ``ExpiredToken``...) stop the run, as for a create.
- **When a shard job ends** ``succeeded`` or ``partial`` (:meth:`RecordsStage.collect`):
  where its outputs are and its manifest (Bedrock's record and token counts) are journaled.
  A run killed in between collects them at its next start (:meth:`RecordsStage.start`).
- **Once every shard of a line is final and collected**, with ``retry_failed_records``
  rounds left: the failed and missing records are written to a retry file beside the
  journal (``<journal>.records/``; its shards read it, so it must stay), cut by
  :func:`plan_retry` into new shard specs and journaled, so the run submits them as
  ordinary jobs. Fewer failed records than the minimum per job are not retried
  (:mod:`asyncjobs.records.retry` says why); they stay failed in the results.

The S3 client is opened at the first need, so a campaign without records never opens one.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from asyncjobs.errors import CampaignError, Fatal
from asyncjobs.journal.base import AddResult, ShardStore
from asyncjobs.journal.shards import ShardRow
from asyncjobs.model import Job, JobSpec, JobState, Service
from asyncjobs.naming import slug
from asyncjobs.records.expand import RecordsOptions
from asyncjobs.records.results import ShardOutput, fetch_json, output_locations, write_results
from asyncjobs.records.retry import plan_retry
from asyncjobs.records.shards import Shard
from asyncjobs.records.upload import upload_shard

_log = structlog.get_logger("asyncjobs.records")

#: A job's final states whose outputs are collected.
COLLECTED_STATES = (JobState.SUCCEEDED, JobState.PARTIAL)
#: S3 error codes that say the credentials cannot do this: the run stops (resumable).
FATAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
#: S3 error codes worth another try (besides any 5xx).
TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a shard job's create is not sent: the job is rejected, or given back (a stop, or
    ``fatal``, which stops the run)."""

    reason: str
    rejected: bool
    fatal: Fatal | None = None


#: Opens the S3 client on the given stack.
OpenS3 = Callable[[contextlib.AsyncExitStack], Awaitable[Any]]
#: ``emit(name, detail, **data)``: tell the run's reporter.
Emit = Callable[..., None]
#: ``pause(seconds)``: sleep unless the run stops; True if a stop cut it short.
Pause = Callable[[float], Awaitable[bool]]


class StageJournal(ShardStore, Protocol):
    """What the stage needs of the journal: its shards, its jobs, and adding specs."""

    @property
    def path(self) -> str: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def add_specs(self, specs: Any) -> AddResult: ...


@dataclass
class UploadCounts:
    """Records shards of the campaign and how far their uploads have got (for the display)."""

    shards: int = 0
    records: int = 0
    #: Shards known to be in S3 (uploaded by this run or an earlier one).
    shards_uploaded: int = 0
    #: Records and bytes this run has sent.
    records_sent: int = 0
    bytes_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "shards": self.shards,
            "records": self.records,
            "shards_uploaded": self.shards_uploaded,
            "records_sent": self.records_sent,
            "bytes_sent": self.bytes_sent,
        }


def shard_outputs(rows: list[ShardRow]) -> list[ShardOutput]:
    """The :class:`ShardOutput` of each shard of one line, the line's own first, in input order.

    A shard whose job produced no collected output (failed, stopped, not yet ended) has no
    output location: all of its records are reported missing.
    """
    ordered = sorted(rows, key=lambda r: (r.retry_round, r.job_id))
    return [
        ShardOutput(
            r.job_id,
            Service(r.service),
            Shard.from_dict(r.shard),
            r.output_uri or "",
            r.manifest_uri,
            retry=r.retry_round > 0,
        )
        for r in ordered
    ]


class RecordsStage:
    """The records side of one run (see the module docstring)."""

    def __init__(
        self,
        journal: StageJournal,
        open_s3: OpenS3,
        *,
        options: RecordsOptions,
        retry_failed_records: int = 0,
        emit: Emit | None = None,
    ) -> None:
        self._journal = journal
        self._open_s3 = open_s3
        self._options = options
        self._retries = retry_failed_records
        self._emit = emit or (lambda *a, **k: None)
        self._shards: dict[str, ShardRow] = {}
        self._uploaded: set[str] = set()
        self._s3: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.counts = UploadCounts()

    @property
    def work_dir(self) -> Path:
        """Where retry files are kept: beside the journal, as long as it is."""
        return Path(self._journal.path + ".records")

    def is_shard(self, job_id: str) -> bool:
        return job_id in self._shards

    # ---------------------------------------------------------------- life
    async def start(self, stack: contextlib.AsyncExitStack) -> list[str]:
        """Load the journal's shards; collect what a killed run left uncollected, and plan
        retries it left unplanned. Returns the ids of shard jobs added (retries)."""
        self._stack = stack
        for row in await self._journal.shards():
            self._remember(row)
        added: list[str] = []
        lines: set[str] = set()
        for row in list(self._shards.values()):
            lines.add(row.line_id)
            if row.collected_at is None:
                job = await self._journal.get(row.job_id)
                if job is not None and job.state in COLLECTED_STATES:
                    await self.collect(job)
        for line in sorted(lines):
            added += await self._maybe_retry(line)
        return added

    def _remember(self, row: ShardRow) -> None:
        if row.job_id not in self._shards:
            self.counts.shards += 1
            self.counts.records += int(row.shard["records"])
        self._shards[row.job_id] = row
        if row.uploaded_at is not None and row.job_id not in self._uploaded:
            self._uploaded.add(row.job_id)
            self.counts.shards_uploaded += 1

    async def s3(self) -> Any:
        if self._s3 is None:
            if self._stack is None:
                raise RuntimeError("RecordsStage.start was not called")
            self._s3 = await self._open_s3(self._stack)
        return self._s3

    # ------------------------------------------------------------- uploads
    async def before_create(
        self, job: Job, pause: Pause, backoff: Callable[[int], float], retries: int
    ) -> Refusal | None:
        """Make sure ``job``'s shard is in S3. None: go on with the create; else why not."""
        row = self._shards.get(job.id)
        if row is None or job.id in self._uploaded:
            return None
        shard = Shard.from_dict(row.shard)
        attempt = 0
        while True:
            try:
                s3 = await self.s3()
                result = await upload_shard(s3, shard, job.service, row.input_uri, on_progress=self._sent)
                break
            except CampaignError as exc:
                return Refusal(str(exc), rejected=True)
            except (ClientError, BotoCoreError, OSError) as exc:
                why = f"upload of {row.input_uri} failed: {exc}"
                code, status = _error_code(exc)
                if code in FATAL_CODES:
                    return Refusal(why, rejected=False, fatal=Fatal(why, code=code, operation="PutObject"))
                transient = code is None or code in TRANSIENT_CODES or status >= 500
                attempt += 1
                if not transient or attempt > retries:
                    return Refusal(why, rejected=True)
                self._emit("records.upload_retry", job, detail=why, level="warning", retry=attempt)
                if await pause(backoff(attempt)):
                    return Refusal("stopped before the shard was uploaded", rejected=False)
        await self._journal.mark_uploaded(job.id)
        if job.id not in self._uploaded:
            self._uploaded.add(job.id)
            self.counts.shards_uploaded += 1
        self._emit(
            "records.uploaded" if result.uploaded else "records.found",
            job,
            uri=row.input_uri,
            records=shard.records,
            size=shard.size,
        )
        return None

    def _sent(self, size: int, records: int) -> None:
        self.counts.bytes_sent += size
        self.counts.records_sent += records

    # ---------------------------------------------------------- collection
    async def collect(self, job: Job) -> list[str]:
        """Journal where the outputs of ``job`` (a shard job that ended well) are; then plan
        a retry of its line if it was the last. Returns the ids of shard jobs added."""
        row = self._shards.get(job.id)
        if row is None or job.arn is None or job.state not in COLLECTED_STATES:
            return []
        output_uri, manifest_uri = output_locations(job.service, job.request, row.input_uri, job.arn)
        manifest = None
        try:
            if manifest_uri is not None:
                manifest = await fetch_json(await self.s3(), manifest_uri)
        except (ClientError, BotoCoreError, OSError) as exc:
            # left uncollected: the next run's start collects it
            self._emit("records.collect_failed", job, level="warning", detail=f"{manifest_uri}: {exc}")
            return []
        await self._journal.record_output(job.id, output_uri, manifest_uri, manifest)
        refreshed = await self._journal.shard(job.id)
        if refreshed is not None:
            self._shards[job.id] = refreshed
        self._emit("records.collected", job, output=output_uri, manifest=manifest)
        return await self._maybe_retry(row.line_id)

    # ------------------------------------------------------------- retries
    async def _maybe_retry(self, line_id: str) -> list[str]:
        if self._retries <= 0:
            return []
        rows = await self._journal.shards(line_id)
        latest = max(r.retry_round for r in rows)
        if latest >= self._retries:
            return []
        template: Job | None = None
        for row in rows:
            if row.retry_round != latest:
                continue
            job = await self._journal.get(row.job_id)
            if job is None or not job.state.is_final:
                return []  # the round is still going
            if job.state in COLLECTED_STATES and row.collected_at is None:
                return []  # not yet collected (the collection that is under way will look again)
            template = template or job
        if template is None:
            return []
        service = template.service
        retry_file = self.work_dir / _line_folder(line_id) / f"retry{latest + 1}.jsonl"
        for folder in (self.work_dir, retry_file.parent):  # the records' prompts: private, as the journal
            folder.mkdir(mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="asyncjobs-retry-") as scratch:
            # the same outputs give the same file: a run killed before it journaled the retry
            # shards writes it again, byte for byte, and the shards come out the same
            summary = await write_results(
                await self.s3(), line_id, shard_outputs(rows), scratch, retry_file=retry_file
            )
        plan = plan_retry(line_id, service, template.request, retry_file, latest + 1, self._options)
        if plan.reason is not None:
            self._emit("records.not_retried", job_id=line_id, detail=plan.reason, unsent=plan.unsent)
        if not plan.specs:
            return []
        specs: list[JobSpec] = list(plan.specs)
        await self._journal.add_specs(specs)
        for row in await self._journal.shards(line_id):
            self._remember(row)
        self._emit(
            "records.retry",
            job_id=line_id,
            detail=f"{summary.failed} failed records of {line_id!r} in {len(specs)} new shards",
            round=latest + 1,
            records=summary.failed,
            shards=len(specs),
        )
        return [s.id for s in specs]


def _error_code(exc: Exception) -> tuple[str | None, int]:
    """S3's error code and HTTP status of ``exc``; (None, 0) for an error with no response
    (a broken connection, a timeout)."""
    if not isinstance(exc, ClientError):
        return None, 0
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error.get("Code"), int(status or 0)


def _line_folder(line_id: str) -> str:
    """A folder name for ``line_id`` (its retry files), distinct for distinct ids."""
    import hashlib

    return f"{slug(line_id, 48)}-{hashlib.sha256(line_id.encode()).hexdigest()[:8]}"
