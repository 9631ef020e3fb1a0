"""The List operations: which jobs a List shows, as of when, and in which pages.

Decisions AWS does not document, taken here:

- Lists are newest first by default (Bedrock ``sortOrder`` may ask otherwise).
- With a ``list_lag``, a List shows each job as it was that long ago (its schedule
  says what it was) and leaves out jobs created since; the pages still walk the jobs
  in creation order, so a job that comes into view between two pages appears at the
  newest end, never inside pages already handed out.

A page walks the jobs of one kind and region (:meth:`EmulatorState.listed
<asyncjobs.emulator.state.EmulatorState.listed>`) from where its token points. Apart from the
state because the jobs' lifecycle does not depend on how they are listed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .jobs import BEDROCK, EmuJob
from .state import EmulatorState
from .wire import ApiError, decode_page_token, encode_page_token


class Listing(NamedTuple):
    """One page of a List operation."""

    jobs: list[EmuJob]
    next_token: str | None
    #: The moment the page shows its jobs at: now, less the list lag.
    as_of: float


def list_bedrock(
    state: EmulatorState,
    region: str,
    *,
    status: str | None = None,
    name_contains: str | None = None,
    after: float | None = None,
    before: float | None = None,
    descending: bool = True,
    max_results: int = 100,
    next_token: str | None = None,
) -> Listing:
    as_of, existed = _listing_view(state)

    def matches(job: EmuJob) -> bool:
        return (
            existed(job)
            and (name_contains is None or name_contains in job.name)
            and (after is None or job.submit_time > after)
            and (before is None or job.submit_time < before)
            and (status is None or job.status_at(as_of) == status)
        )

    jobs, token = _page(
        state.listed(BEDROCK, region), matches, descending, max_results, next_token, "ValidationException"
    )
    return Listing(jobs, token, as_of)


def list_personalize(
    state: EmulatorState,
    kind: str,
    region: str,
    *,
    solution_version_arn: str | None = None,
    max_results: int = 100,
    next_token: str | None = None,
) -> Listing:
    as_of, existed = _listing_view(state)

    def matches(job: EmuJob) -> bool:
        return existed(job) and (
            solution_version_arn is None or job.request.get("solutionVersionArn") == solution_version_arn
        )

    jobs, token = _page(
        state.listed(kind, region), matches, True, max_results, next_token, "InvalidNextTokenException"
    )
    return Listing(jobs, token, as_of)


def _listing_view(state: EmulatorState) -> tuple[float, Callable[[EmuJob], bool]]:
    """The moment a List shows, and which jobs existed then (all of them without a lag)."""
    config = state.config
    lag = config.list_lag * config.time_scale
    as_of = state.now() - lag
    if not lag:
        return as_of, _always
    return as_of, lambda job: job.submit_time <= as_of


def _page(
    jobs: list[EmuJob],
    matches: Callable[[EmuJob], bool],
    descending: bool,
    max_results: int,
    next_token: str | None,
    bad_token_code: str,
) -> tuple[list[EmuJob], str | None]:
    start_after: int | None = None
    if next_token is not None:
        start_after = decode_page_token(next_token, descending)
        if start_after is None:
            raise ApiError(bad_token_code, "The pagination token is invalid")
    page: list[EmuJob] = []
    for job in _walk(jobs, descending, start_after):
        if not matches(job):
            continue
        if len(page) == max_results:
            return page, encode_page_token(page[-1].seq, descending)
        page.append(job)
    return page, None


def _walk(jobs: list[EmuJob], descending: bool, start_after: int | None) -> Iterator[EmuJob]:
    """Jobs in seq order (or reversed), strictly after the job ``start_after``."""
    if descending:
        end = len(jobs) if start_after is None else bisect.bisect_left(jobs, start_after, key=_seq)
        for index in range(end - 1, -1, -1):
            yield jobs[index]
    else:
        begin = 0 if start_after is None else bisect.bisect_right(jobs, start_after, key=_seq)
        for index in range(begin, len(jobs)):
            yield jobs[index]


def _seq(job: EmuJob) -> int:
    return job.seq


def _always(job: EmuJob) -> bool:
    return True
