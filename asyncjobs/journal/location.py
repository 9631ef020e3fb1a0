"""Where a journal is: a file path (SQLite) or a PostgreSQL URI, and how to show one safely.

A PostgreSQL URI may carry a password, in the user part (``postgresql://user:secret@host/db``)
or as a ``password=`` parameter. Only :func:`redact`'s form ever goes into a message, a log or
a ``repr``; :func:`scrub` removes the password from text that came from elsewhere (a driver's
error message).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URI)."""
    return isinstance(location, str) and location.lower().startswith(SCHEMES)


def passwords(uri: str) -> list[str]:
    """Every password written in ``uri`` (as given and percent-decoded)."""
    parts = urlsplit(uri)
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        _, colon, password = userinfo.partition(":")
        if colon and password:
            found += [password, unquote(password)]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password" and value:
            found.append(value)
    return sorted(set(found), key=len, reverse=True)


def redact(uri: str) -> str:
    """``uri`` with its password shown as ``***``: ``postgresql://user:***@host/db``."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            netloc = f"{user}:{HIDDEN}@{hostport}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        query = urlencode([(k, HIDDEN if k == "password" else v) for k, v in pairs], safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, uri: str) -> str:
    """``text`` with any password of ``uri`` replaced by ``***``."""
    for secret in passwords(uri):
        text = text.replace(secret, HIDDEN)
    return text
