"""What the journal can store of a create request: the one test is encoding it as the journal does.

Validation bounds every integer the create calls' models have today, but a model may gain a
member validation does not bound (a document, a ``double``), and a spec built in Python never
went through a campaign file's validation at all. A request the journal cannot encode must be
refused with the member that cannot be stored, before anything is written, not crash an ingest
halfway with orjson's bare "Integer exceeds 64-bit range".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .validation import json_type

#: What orjson, which encodes every request into the journal, can store of an integer.
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1
#: orjson refuses containers nested deeper than this.
MAX_DEPTH = 254


def encode_request(request: Mapping[str, Any]) -> bytes:
    """``request`` as the journal stores (and hashes) it: canonical JSON, keys sorted."""
    return orjson.dumps(request, option=orjson.OPT_SORT_KEYS)


def storage_problem(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why the journal could not store ``request``, as (field, reason), or None."""
    try:
        encode_request(request)
    except orjson.JSONEncodeError as exc:
        path, reason = unstorable(request, "request") or ("request", str(exc))
        return path, f"cannot be stored in the journal: {reason}"
    return None


def unstorable(value: Any, path: str, depth: int = 0) -> tuple[str, str] | None:
    """The first member under ``path`` that orjson cannot encode, and why (only worth calling
    once encoding failed)."""
    if depth > MAX_DEPTH:
        return path, f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}.{key!r}", f"a key must be a string, not {json_type(key)}"
            found = unstorable(item, f"{path}.{key}", depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
    elif isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
        return path, f"integer out of the 64-bit range, got {shown}"
    elif not isinstance(value, str | int | float | bool | type(None)):
        return path, f"{type(value).__name__} is not a JSON value"
    return None
