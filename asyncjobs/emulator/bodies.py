"""Request bodies as JSON, with their nesting bounded before they are parsed.

Python's ``json`` parser recurses once per level of nesting, so a body of 100,000
``[`` raised RecursionError (an unhandled 500). No request of either service nests
more than a handful of levels, so a body that opens more than :data:`MAX_DEPTH`
levels is refused before the parser sees it. Counting levels needs no parser: the
brackets outside strings are the nesting, and a regular expression finds strings
and brackets in C.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The deepest nesting of arrays and objects a request body may have.
MAX_DEPTH = 64

#: A JSON string (escapes included), or one bracket.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset({b"[", b"{"})
_CLOSING = frozenset({b"]", b"}"})


class BodyError(ValueError):
    """A request body that is not JSON the emulator will read."""


class TooDeep(BodyError):
    """The body nests arrays and objects deeper than :data:`MAX_DEPTH`."""


class NotJson(BodyError):
    """The body is not valid JSON (or holds a number too long to read)."""


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether ``body`` opens more than ``limit`` levels of arrays and objects at some point.

    Where the body is malformed this may count brackets a parser would never reach; such
    a body is refused either way.
    """
    if body.count(b"[") + body.count(b"{") <= limit:  # cannot nest deeper than it opens
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif token in _CLOSING:
            depth -= 1
    return False


def load_json(body: bytes) -> Any:
    """The JSON value of ``body``; TooDeep or NotJson (both ValueError) if it cannot be read."""
    if nests_deeper_than(body, MAX_DEPTH):
        raise TooDeep(f"The request body nests arrays and objects deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body)
    except ValueError as exc:  # malformed, not UTF-8, or an integer too long to convert
        raise NotJson(f"The request body is not valid JSON: {exc}") from exc
