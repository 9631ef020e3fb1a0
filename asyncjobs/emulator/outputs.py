"""When a finished job's outputs are written: the jobs whose outputs are due, and writing them.

A job that touches S3 (:mod:`.jobdata`) writes its outputs once it has ended ``Completed`` or
``PartiallyCompleted`` (Bedrock) or ``ACTIVE`` (Personalize). Nothing runs in the background: the
server settles the jobs due before it answers anything that could show a job final (its
``settle``), writing in a worker thread. Apart from the state because it is the one place the
emulator's jobs do blocking S3 I/O after create.
"""

from __future__ import annotations

import heapq

from . import bedrock_data, personalize_data
from .config import EmulatorConfig
from .jobs import BEDROCK, PERSONALIZE_SEGMENT, EmuJob
from .s3 import S3Store

#: The statuses after which a job's outputs are written.
_OUTPUT_STATUSES = frozenset({"Completed", "PartiallyCompleted", "ACTIVE"})


class PendingOutputs:
    """Jobs whose outputs are not written yet, as a heap of (end time, seq, job); an entry whose
    job has not ended by its time (it was stopped, so it ends later) is pushed back."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, EmuJob]] = []

    def add(self, job: EmuJob) -> None:
        """Wait for ``job``'s end, if it has outputs still to write."""
        if job.plan is not None and not job.plan.settled:
            heapq.heappush(self._heap, (job.end_time, job.seq, job))

    def any_due(self, now: float) -> bool:
        """Whether a job has ended whose outputs are not written yet."""
        return bool(self._heap) and self._heap[0][0] <= now

    def take_due(self, now: float) -> list[EmuJob]:
        """The jobs that have ended and need outputs written.

        Jobs that ended without outputs (failed, stopped, expired) are settled here.
        """
        due: list[EmuJob] = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, job = heapq.heappop(self._heap)
            plan = job.plan
            if plan is None or plan.settled:
                continue
            status = job.status_at(now)
            if status not in job.terminal:  # stopped after it was filed: it ends later
                heapq.heappush(self._heap, (job.end_time, seq, job))
            elif status in _OUTPUT_STATUSES and plan.failure is None:
                due.append(job)
            else:
                plan.settled = True
        return due


def write_outputs(store: S3Store, config: EmulatorConfig, job: EmuJob) -> None:
    """Write the outputs of one job :meth:`PendingOutputs.take_due` returned (blocking S3 I/O)."""
    plan = job.plan
    assert plan is not None
    if job.kind == BEDROCK:
        bedrock_data.write_bedrock(store, config, plan, job.arn)
    else:
        num_results = int(job.request.get("numResults") or personalize_data.DEFAULT_NUM_RESULTS)
        personalize_data.write_personalize(
            store, config, plan, job.arn, job.kind == PERSONALIZE_SEGMENT, num_results
        )
    plan.settled = True
