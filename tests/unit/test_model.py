"""Domain values: the journal's fast copy of a Job agrees with dataclasses.replace."""

from __future__ import annotations

import dataclasses

import pytest

from asyncjobs.journal.commit import FIELDS as _FIELDS
from asyncjobs.model import Job, JobState, Service, evolve

JOB = Job(
    id="a",
    seq=7,
    service=Service.PERSONALIZE,
    quota_key="personalize:us-east-1:batch-inference",
    state=JobState.SUBMITTING,
    attempt=1,
    job_name="c-a",
    token="t" * 64,
    request={"jobName": "c-a"},
    digest="d" * 64,
    arn=None,
    remote_status=None,
    last_error="throttled",
    submitted_at=None,
    updated_at=1.0,
)
VALUES = {
    "arn": "arn:aws:personalize:us-east-1:123456789012:batch-inference-job/c-a",
    "remote_status": "ACTIVE",
    "last_error": None,
    "submitted_at": 12.5,
    "job_name": "c-a-r2",
    "token": "u" * 64,
    "attempt": 2,
}


def test_every_journal_field_has_a_value_here() -> None:
    assert set(VALUES) == _FIELDS


@pytest.mark.parametrize("name", sorted(_FIELDS))
def test_evolve_changes_one_field_like_replace(name: str) -> None:
    new = evolve(JOB, JobState.SUBMITTED, 2.0, {name: VALUES[name]})
    assert new == dataclasses.replace(JOB, state=JobState.SUBMITTED, updated_at=2.0, **{name: VALUES[name]})


def test_evolve_with_every_field_and_none_keeps_the_rest() -> None:
    assert evolve(JOB, JobState.RUNNING, 3.0, VALUES) == dataclasses.replace(
        JOB, state=JobState.RUNNING, updated_at=3.0, **VALUES
    )
    assert evolve(JOB, JOB.state, 4.0, {}) == dataclasses.replace(JOB, updated_at=4.0)


def test_evolve_copies_every_field_of_job() -> None:
    """A field added to Job must be added to evolve too: every value must survive a copy."""
    marked = Job(**{f.name: f"v-{f.name}" for f in dataclasses.fields(Job)})  # type: ignore[arg-type]
    copied = evolve(marked, marked.state, marked.updated_at, {})  # type: ignore[arg-type]
    assert copied == marked
