"""Deterministic job names and idempotency tokens.

Exactly-once submission rests on these being a pure function of (campaign, spec id,
attempt, spec content): a resumed process, or a second process given the same
campaign, asks the service for the same job again instead of a new one.

- Bedrock: ``clientRequestToken`` = sha256 of those inputs (64 hex characters).
- Personalize: the job name is the resource id, so the name itself is the key.

Names use only ``[a-zA-Z0-9-]``, start with a letter or digit and are at most 63
characters: valid for both Bedrock's and Personalize's name patterns.
"""

from __future__ import annotations

import functools
import hashlib
import re

MAX_NAME = 63
_UNSAFE = re.compile(r"[^a-zA-Z0-9]+")


_SAFE = re.compile(r"[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*")


def slug(text: str, limit: int = MAX_NAME) -> str:
    """``text`` reduced to alphanumerics joined by single hyphens (may be empty)."""
    if len(text) <= limit and _SAFE.fullmatch(text):
        return text  # already a slug: the common case, and the fast one
    return _UNSAFE.sub("-", text).strip("-")[:limit].strip("-")


def _short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


@functools.lru_cache(maxsize=64)
def campaign_slug(name: str) -> str:
    """The campaign part of derived job names: at most 24 characters, never empty."""
    return slug(name, 24) or "campaign"


def job_name(campaign: str, spec_id: str, attempt: int = 1, given: str | None = None) -> str:
    """The job name of ``spec_id``'s ``attempt``.

    A name given in the spec is kept for the first attempt; later attempts add
    ``-r<attempt>``. A derived name is ``<campaign>-<id>``; when the id had to be
    altered or shortened to fit, a hash of the raw id keeps names distinct.
    """
    suffix = "" if attempt == 1 else f"-r{attempt}"
    if given:
        base = given
        if len(base) + len(suffix) > MAX_NAME:
            tail = f"-{_short_hash(given)}"
            base = given[: MAX_NAME - len(suffix) - len(tail)].rstrip("-") + tail
        return base + suffix
    prefix = campaign_slug(campaign)
    ident = slug(spec_id)
    room = MAX_NAME - len(prefix) - 1 - len(suffix)
    if ident != spec_id or len(ident) > room or not ident:
        tail = _short_hash(campaign, spec_id)
        ident = (slug(spec_id, max(0, room - len(tail) - 1)) + "-" + tail).strip("-")
    return f"{prefix}-{ident}{suffix}"


def idempotency_token(campaign: str, spec_id: str, attempt: int, digest: str) -> str:
    """The Bedrock ``clientRequestToken`` of one attempt of one spec."""
    return hashlib.sha256(f"asyncjobs\0{campaign}\0{spec_id}\0{attempt}\0{digest}".encode()).hexdigest()
