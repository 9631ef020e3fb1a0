"""Deterministic job names and tokens: valid for both services, distinct, stable."""

from __future__ import annotations

import re

import pytest

from asyncjobs.naming import MAX_NAME, idempotency_token, job_name

BEDROCK_NAME = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
PERSONALIZE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]*")
TOKEN = re.compile(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}")

IDS = ["a", "job-1", "a_b", "a.b", "a b", "ÄÖÜ", "x" * 200, "--", "🚀", "0", "dup/1", "dup:1"]


@pytest.mark.parametrize("spec_id", IDS)
@pytest.mark.parametrize("attempt", [1, 2, 17])
@pytest.mark.parametrize("campaign", ["demo", "My Campaign 2026!", "c" * 80, "###"])
def test_derived_names_fit_both_services(spec_id: str, attempt: int, campaign: str) -> None:
    name = job_name(campaign, spec_id, attempt)
    assert len(name) <= MAX_NAME
    assert BEDROCK_NAME.fullmatch(name), name
    assert PERSONALIZE_NAME.fullmatch(name), name
    assert name == job_name(campaign, spec_id, attempt)


def test_names_are_distinct_even_when_ids_slug_alike() -> None:
    names = {job_name("camp", spec_id) for spec_id in IDS}
    assert len(names) == len(IDS)
    attempts = {job_name("camp", "job-1", n) for n in range(1, 50)}
    assert len(attempts) == 49


def test_given_name_is_kept_then_suffixed() -> None:
    assert job_name("camp", "x", 1, given="my-job") == "my-job"
    assert job_name("camp", "x", 3, given="my-job") == "my-job-r3"
    long = job_name("camp", "x", 2, given="n" * 63)
    assert len(long) <= MAX_NAME and long.endswith("-r2")


def test_tokens_depend_on_every_input() -> None:
    base = idempotency_token("camp", "id", 1, "d")
    assert TOKEN.fullmatch(base)
    assert base == idempotency_token("camp", "id", 1, "d")
    others = {
        idempotency_token("camp2", "id", 1, "d"),
        idempotency_token("camp", "id2", 1, "d"),
        idempotency_token("camp", "id", 2, "d"),
        idempotency_token("camp", "id", 1, "e"),
    }
    assert base not in others and len(others) == 4
