"""The emulated services' state: jobs, running-job quotas, idempotency and stats. No HTTP.

Requests arrive here already parsed and validated; errors leave as
:class:`~asyncjobs.emulator.wire.ApiError`. Every operation costs O(1) or O(active
jobs of one quota key); the List operations (:mod:`.listing`) walk the jobs of one kind
and region from where the page token points.

Decisions AWS does not document, taken here:

- A repeated Bedrock ``clientRequestToken`` is looked up after throttling and
  validation but *before* the running-jobs quota: replaying a create that already
  succeeded must not fail because the quota has since filled up (the job it names
  already holds its slot). Tokens are scoped to the region.
- Bedrock job names are not unique; a second create with the same name and no
  matching token makes a second job, counted in ``duplicates``.
- Bedrock's quota key is ``bedrock:<modelId>`` (as the request spells the model);
  Personalize's is ``personalize:<region>:batch-inference|batch-segment``, where the
  region is the request's (the endpoint's), like AWS.

The jobs and counters save as JSON (:meth:`EmulatorState.to_json`); the file around them is
:mod:`.saved_state`'s.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

from .bedrock_data import plan_bedrock
from .config import EmulatorConfig
from .jobs import BEDROCK, PERSONALIZE, EmuJob, draw_bedrock, draw_personalize
from .outputs import PendingOutputs, write_outputs
from .personalize_data import plan_personalize
from .s3 import S3Store
from .stats import Stats
from .wire import PERSONALIZE_JOB_NOUN, ApiError, bedrock_quota_message, personalize_quota_message

_ARN_RESOURCE = {BEDROCK: "model-invocation-job", PERSONALIZE: "batch-inference-job"}
_ARN_RESOURCE["personalize-segment"] = "batch-segment-job"
_QUOTA_SUFFIX = {PERSONALIZE: "batch-inference", "personalize-segment": "batch-segment"}
#: The most tags a resource may carry (both services' TagList maximum).
MAX_TAGS = 200


class EmulatorState:
    """All jobs of one emulator, and the bookkeeping around them."""

    def __init__(self, config: EmulatorConfig, s3: S3Store | None = None) -> None:
        self.config = config
        #: Where jobs whose input bucket exists read their input and write their outputs.
        self.s3 = s3 if s3 is not None else S3Store()
        self.stats = Stats()
        #: Jobs whose outputs are not written yet.
        self._outputs = PendingOutputs()
        self._seq = 0
        self._by_arn: dict[str, EmuJob] = {}
        self._bedrock_by_id: dict[str, EmuJob] = {}
        self._tokens: dict[tuple[str, str], EmuJob] = {}
        self._name_counts: Counter[tuple[str, str]] = Counter()
        #: Jobs of each (kind, region) in creation (seq) order, for the list operations.
        self._listing: dict[tuple[str, str], list[EmuJob]] = {}
        #: Per quota key: the jobs holding a slot, as a heap of (end time, seq, job), pruned lazily.
        #: An entry whose end time is no longer the job's (the job was stopped) is stale and
        #: does not count; ``_running`` counts the entries that do.
        self._ends: dict[str, list[tuple[float, int, EmuJob]]] = {}
        self._running: Counter[str] = Counter()

    def now(self) -> float:
        return self.config.clock()

    # -- shared bookkeeping

    def running(self, quota_key: str, now: float) -> int:
        """Jobs holding a slot of ``quota_key`` at ``now``; forgets the ones that finished (O(log n))."""
        ends = self._ends.get(quota_key)
        while ends and ends[0][0] <= now:
            end, _, job = heapq.heappop(ends)
            if end == job.end_time:  # not stale: this job has finished
                self._running[quota_key] -= 1
        return self._running[quota_key]

    def _track_end(self, job: EmuJob) -> None:
        """(Re)schedule the moment ``job`` gives its quota slot back."""
        heapq.heappush(self._ends.setdefault(job.quota_key, []), (job.end_time, job.seq, job))

    def _index(self, job: EmuJob) -> None:
        """File ``job`` (newer than every job filed so far) under every lookup; no counters."""
        self._by_arn[job.arn] = job
        if job.kind == BEDROCK:
            self._bedrock_by_id[job.job_id] = job
            if job.token is not None:
                self._tokens[(job.region, job.token)] = job
        self._listing.setdefault((job.kind, job.region), []).append(job)
        self._track_end(job)
        self._outputs.add(job)  # if it has outputs to write
        self._running[job.quota_key] += 1
        self._name_counts[(job.kind, job.name)] += 1

    def _add(self, job: EmuJob) -> None:
        self._index(job)
        if self._name_counts[(job.kind, job.name)] > 1:
            self.stats.duplicates[f"{job.kind}/{job.name}"] += 1
        self.stats.jobs_created[job.kind] += 1
        self.stats.note_running(job.quota_key, self._running[job.quota_key])

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _arn(self, kind: str, region: str, resource_id: str) -> str:
        service = "bedrock" if kind == BEDROCK else "personalize"
        return f"arn:aws:{service}:{region}:{self.config.account_id}:{_ARN_RESOURCE[kind]}/{resource_id}"

    # -- Bedrock

    def create_bedrock(self, region: str, params: dict[str, Any]) -> tuple[EmuJob, bool]:
        """Create a model invocation job; returns it and whether this was a token replay."""
        token = params.get("clientRequestToken")
        if token is not None:
            previous = self._tokens.get((region, token))
            if previous is not None:
                self._check_token_match(previous, params)
                self.stats.idempotent_replays += 1
                return previous, True
        now = self.now()
        model_id = str(params["modelId"])
        quota_key = f"bedrock:{model_id}"
        limit = self.config.bedrock_max_running
        if self.running(quota_key, now) >= limit:
            self.stats.quota_rejections["CreateModelInvocationJob"] += 1
            raise ApiError("ServiceQuotaExceededException", bedrock_quota_message(model_id, limit))
        name = str(params["jobName"])
        timeout = int(params.get("timeoutDurationInHours") or self.config.bedrock_default_timeout_hours)
        occurrence = self._name_counts[(BEDROCK, name)]
        job_id, schedule, message, expiration = draw_bedrock(self.config, name, occurrence, now, timeout)
        while job_id in self._bedrock_by_id:  # astronomically unlikely; keep ids unique anyway
            job_id = job_id[1:] + job_id[0]
        job = EmuJob(
            seq=self._next_seq(),
            kind=BEDROCK,
            name=name,
            job_id=job_id,
            arn=self._arn(BEDROCK, region, job_id),
            region=region,
            quota_key=quota_key,
            request=dict(params),
            token=token,
            submit_time=now,
            schedule=schedule,
            message=message,
            expiration_time=expiration,
            timeout_hours=timeout,
            tags={str(tag["key"]): str(tag["value"]) for tag in params.get("tags") or []},
        )
        self._plan_bedrock(job)
        self._add(job)
        return job, False

    def _plan_bedrock(self, job: EmuJob) -> None:
        """Read and check the job's input, if it is in the emulator's S3; the outcome follows."""
        plan = plan_bedrock(self.s3, self.config, job.request, job.job_id, job.arn, job.outcome)
        if plan is None:
            return
        job.plan = plan
        if plan.failure is not None:
            job.fail_early(plan.failure)
        elif plan.errors and job.outcome == "Completed" and self.config.record_errors_status != "Completed":
            job.end_as(
                self.config.record_errors_status,
                f"{plan.errors} of {plan.total} records failed; their output lines carry an error object",
            )

    def _check_token_match(self, previous: EmuJob, params: dict[str, Any]) -> None:
        mode = self.config.bedrock_token_mismatch
        if mode == "original":
            return
        if previous.request != params:
            code = "ConflictException" if mode == "conflict" else "ValidationException"
            raise ApiError(
                code,
                "The clientRequestToken was already used by a request with different parameters",
            )

    def find_bedrock(self, region: str, identifier: str) -> EmuJob:
        """The job named by a bare 12-character id or a full ARN, in ``region``."""
        job_id = identifier.rsplit("/", 1)[-1]
        job = self._bedrock_by_id.get(job_id)
        if job is None or job.region != region or (identifier != job_id and identifier != job.arn):
            raise ApiError("ResourceNotFoundException", f"Could not find model invocation job {identifier}")
        return job

    def stop_bedrock(self, region: str, identifier: str) -> EmuJob:
        job = self.find_bedrock(region, identifier)
        now = self.now()
        status = job.status_at(now)
        if status in job.terminal:
            raise ApiError("ConflictException", f"The job {job.arn} is {status} and can no longer be stopped")
        if status != "Stopping":  # stopping a job that is already stopping changes nothing
            old_end = job.end_time
            job.stop(now, self.config.stop_seconds * self.config.time_scale)
            if job.end_time != old_end:
                self._track_end(job)  # the entry for its old end time is now stale
        return job

    # -- Personalize

    def create_personalize(self, kind: str, region: str, params: dict[str, Any]) -> EmuJob:
        name = str(params["jobName"])
        arn = self._arn(kind, region, name)
        if arn in self._by_arn:
            self.stats.already_exists += 1
            raise ApiError(
                "ResourceAlreadyExistsException",
                f"The {PERSONALIZE_JOB_NOUN[kind]} job {arn} already exists.",
            )
        now = self.now()
        quota_key = f"personalize:{region}:{_QUOTA_SUFFIX[kind]}"
        config = self.config
        limit = config.personalize_max_running
        if self.running(quota_key, now) >= limit:
            self.stats.quota_rejections[_create_operation(kind)] += 1
            text = config.limit_message
            if text is None:
                text = personalize_quota_message(
                    kind, limit, config.personalize_pending_status, config.personalize_running_status
                )
            raise ApiError("LimitExceededException", text)
        schedule, message = draw_personalize(self.config, kind, name, self._name_counts[(kind, name)], now)
        job = EmuJob(
            seq=self._next_seq(),
            kind=kind,
            name=name,
            job_id=name,
            arn=arn,
            region=region,
            quota_key=quota_key,
            request=dict(params),
            token=None,
            submit_time=now,
            schedule=schedule,
            message=message,
            running_status=self.config.personalize_running_status,
            tags={str(tag["tagKey"]): str(tag["tagValue"]) for tag in params.get("tags") or []},
        )
        job.plan = plan_personalize(self.s3, job.request)
        if job.plan is not None and job.plan.failure is not None:
            job.fail_early(job.plan.failure)
        self._add(job)
        return job

    def find_personalize(self, kind: str, region: str, arn: str) -> EmuJob:
        """The job of this kind with this ARN, in ``region`` (another region's job is not found)."""
        job = self._by_arn.get(arn)
        if job is None or job.kind != kind or job.region != region:
            noun = PERSONALIZE_JOB_NOUN[kind]
            raise ApiError("ResourceNotFoundException", f"Could not find the {noun} job {arn}")
        return job

    # -- tags (of jobs of both services)

    def find_tagged(self, service: str, region: str, arn: str) -> EmuJob:
        """The job of ``service`` (``bedrock``/``personalize``) with this ARN, in ``region``."""
        job = self._by_arn.get(arn)
        if job is None or job.region != region or (job.kind == BEDROCK) != (service == "bedrock"):
            raise ApiError("ResourceNotFoundException", f"Could not find the resource {arn}")
        return job

    def tag(self, job: EmuJob, tags: dict[str, str]) -> None:
        """Add or overwrite tags; TooManyTagsException beyond :data:`MAX_TAGS`, changing nothing."""
        merged = {**job.tags, **tags}
        if len(merged) > MAX_TAGS:
            raise ApiError(
                "TooManyTagsException",
                f"The resource {job.arn} would have {len(merged)} tags; at most {MAX_TAGS} are allowed",
            )
        job.tags = merged

    def untag(self, job: EmuJob, keys: list[str]) -> None:
        """Remove the tags with these keys (keys the job does not have are ignored, as AWS does)."""
        for key in keys:
            job.tags.pop(key, None)

    # -- outputs (written by the server, in a worker thread, before it answers anything that could
    # show a finished job: see EmulatorService.settle; which are due is :mod:`.outputs`')

    def outputs_due(self) -> bool:
        """Whether a job has ended whose outputs are not written yet."""
        return self._outputs.any_due(self.now())

    def take_due_outputs(self) -> list[EmuJob]:
        """The jobs that have ended and need outputs written.

        Jobs that ended without outputs (failed, stopped, expired) are settled here.
        """
        return self._outputs.take_due(self.now())

    def write_outputs(self, due: list[EmuJob]) -> None:
        """Write the outputs of jobs :meth:`take_due_outputs` returned (blocking S3 I/O)."""
        for job in due:
            write_outputs(self.s3, self.config, job)

    # -- the List operations' view (see :mod:`.listing`)

    def listed(self, kind: str, region: str) -> list[EmuJob]:
        """The jobs of ``kind`` in ``region``, in creation (seq) order: what a List walks."""
        return self._listing.get((kind, region), [])

    # -- saving and restoring (the format is :mod:`.saved_state`'s)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest job ever created (0 before the first)."""
        return self._seq

    def jobs(self) -> list[EmuJob]:
        """Every job, oldest first."""
        return sorted(self._by_arn.values(), key=_seq)

    @classmethod
    def restored(
        cls,
        config: EmulatorConfig,
        s3: S3Store | None,
        stats: Stats,
        jobs: list[EmuJob],
        last_seq: int,
    ) -> EmulatorState:
        """A state holding ``jobs`` (oldest first, each with its own ARN and seq) and these
        counters, as it was saved; every index is rebuilt from the jobs."""
        state = cls(config, s3)
        state.stats = stats
        for job in jobs:
            state._index(job)
        state._seq = last_seq
        return state

    # -- introspection (what it shows is :mod:`.introspection`'s)

    def running_all(self) -> dict[str, int]:
        now = self.now()
        return {key: self.running(key, now) for key in list(self._running)}


def _seq(job: EmuJob) -> int:
    return job.seq


def _create_operation(kind: str) -> str:
    return "CreateBatchInferenceJob" if kind == PERSONALIZE else "CreateBatchSegmentJob"
