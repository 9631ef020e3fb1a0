"""Logging for the command: structlog and the stdlib to stderr, as text or JSON lines.

The library only emits structlog events; this is the one place in the package (with the
emulator's own command) that configures where they go. Values of keys that look secret are
redacted, and botocore's debug logs, which carry request headers, stay off.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import click
import structlog

from .options import Globals, globals_of
from .output import interactive

_SECRET_WORDS = ("secret", "password", "session_token", "credential", "authorization")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in event:
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever ``sys.stderr`` is at the time (rich's live display redirects it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def setup(ctx: click.Context) -> Globals:
    """Where every command starts: its global options, and logging configured from them."""
    g = globals_of(ctx)
    configure_logging(g, interactive=interactive())
    return g


def configure_logging(g: Globals, *, interactive: bool) -> None:
    """structlog and stdlib logging to stderr: text or JSON lines.

    Levels: asyncjobs' own events at INFO (WARNING under a live display, which
    shows the same facts), DEBUG with ``--debug``. botocore and the HTTP stack stay
    at WARNING even with ``--debug``: their debug logs carry request headers.
    """
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        _redact,
    ]
    renderer: Any
    if g.log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=interactive and sys.stderr.isatty(), pad_event_to=0)
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([structlog.processors.format_exc_info] if g.log_format == "json" else []),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if g.debug else logging.WARNING if interactive else logging.INFO
    logging.getLogger("asyncjobs").setLevel(level)
    for noisy in ("botocore", "aiobotocore", "aioboto3", "boto3", "urllib3", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # psycopg warns of the errors it ignores while ending a pipeline on a lost connection: the
    # journal reports the outage itself, once (asyncjobs.journal.outage)
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
