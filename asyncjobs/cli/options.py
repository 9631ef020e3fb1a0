"""The options every command takes: the AWS CLI's global options, and ``--journal``.

Global options may be given before or after the subcommand: each level of the command line
records the values it was given in the click context, and :func:`globals_of` collects them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import click
import jmespath

from ..journal.location import is_postgres, passwords, redact, scrub

#: Where option values given at any level of the command line are collected.
_GLOBALS_KEY = "asyncjobs.globals"


@dataclass(frozen=True)
class Globals:
    """The AWS-CLI-style options, wherever they were given on the command line."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    output: str | None = None
    query: str | None = None
    debug: bool = False
    log_format: str = "text"
    no_verify_ssl: bool = False

    @property
    def output_format(self) -> str:
        """``--output``, else ``$ASYNCJOBS_OUTPUT``, else table on a terminal and json otherwise."""
        chosen = self.output or os.environ.get("ASYNCJOBS_OUTPUT")
        if chosen in ("json", "table"):
            return chosen
        return "table" if sys.stdout.isatty() else "json"

    def connection_argv(self) -> list[str]:
        """The options that say where and as whom to connect, for a command to repeat (unquoted)."""
        args = []
        for flag, value in (
            ("--endpoint-url", self.endpoint_url),
            ("--region", self.region),
            ("--profile", self.profile),
        ):
            if value:
                args += [flag, value]
        if self.no_verify_ssl:
            args.append("--no-verify-ssl")
        return args

    @property
    def verify(self) -> bool | None:
        """TLS verification: botocore's default (on) unless ``--no-verify-ssl``."""
        return False if self.no_verify_ssl else None


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False or param.name is None:
        return
    if param.name == "query":
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as exc:
            reason = " ".join(str(exc).split())
            raise click.BadParameter(f"not a valid JMESPath expression: {reason}") from None
    ctx.meta.setdefault(_GLOBALS_KEY, {})[param.name] = value


_GLOBAL_OPTIONS = (
    click.option("--endpoint-url", metavar="URL", help="Send AWS calls to this URL (e.g. an emulator)."),
    click.option(
        "--region", metavar="REGION", help="AWS region (default: profile/environment, else us-east-1)."
    ),
    click.option(
        "--profile", metavar="NAME", help="Use a profile from your AWS config and credentials files."
    ),
    click.option(
        "--output",
        type=click.Choice(["json", "table"]),
        help="Result format (default: table on a terminal, json otherwise; or $ASYNCJOBS_OUTPUT).",
    ),
    click.option("--query", metavar="JMESPATH", help="JMESPath expression applied to the JSON result."),
    click.option("--debug", is_flag=True, help="Debug logs, and tracebacks on errors."),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        help="Log lines on stderr as text (default) or JSON objects.",
    ),
    click.option(
        "--no-verify-ssl", is_flag=True, help="Do not verify TLS certificates (verified by default)."
    ),
)

F = TypeVar("F", bound=Callable[..., Any])


def global_options(func: F) -> F:
    """Attach the global options; they may be given before or after the subcommand."""
    for option in reversed(_GLOBAL_OPTIONS):
        func = option(func)
    for param in func.__click_params__:  # type: ignore[attr-defined]
        if param.name in {f.name for f in fields(Globals)}:
            param.expose_value = False
            param.callback = _remember
    return func


def globals_of(ctx: click.Context) -> Globals:
    """The global options given anywhere on this command line."""
    return Globals(**ctx.meta.get(_GLOBALS_KEY, {}))


#: Where a campaign's journal is: a SQLite file, or a PostgreSQL URI (which may hold a password).
JournalLocation = Path | str


def _journal_location(ctx: click.Context, param: click.Parameter, value: str) -> JournalLocation:
    if not is_postgres(value):
        return Path(value)
    hide_from_process_title(value)
    return value


def journal_option(func: F) -> F:
    """``--journal PATH|URI`` (or ``$ASYNCJOBS_JOURNAL``), required by every command that works on
    a campaign's journal: a path is a SQLite file, a ``postgresql://`` URI a shared database."""
    return click.option(
        "--journal",
        envvar="ASYNCJOBS_JOURNAL",
        required=True,
        metavar="PATH|URI",
        callback=_journal_location,
        help=(
            "The campaign's journal: a SQLite file, or a postgresql:// URI of a database that "
            "several workers share (or $ASYNCJOBS_JOURNAL)."
        ),
    )(func)


def records_options(func: F) -> F:
    """``--records-per-job`` and ``--min-records-per-job``: how records lines are cut into shards."""
    func = click.option(
        "--min-records-per-job",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Fewest records in a shard (default: 100 for Bedrock, 1 for Personalize).",
    )(func)
    return click.option(
        "--records-per-job",
        type=click.IntRange(min=1),
        default=50_000,
        show_default=True,
        metavar="N",
        help="Most records in a shard of a records line.",
    )(func)


def campaign_name_option(func: F) -> F:
    """``--campaign-name NAME`` for commands that read a campaign of a shared journal."""
    return click.option(
        "--campaign-name",
        metavar="NAME",
        help="The campaign, in a PostgreSQL journal that holds several (ignored for a SQLite file).",
    )(func)


def shown(journal: JournalLocation) -> str:
    """How ``journal`` appears in messages and commands: a URI's password as ``***``."""
    return redact(journal) if isinstance(journal, str) else str(journal)


def hide_from_process_title(uri: str) -> None:
    """Rewrite the process title (what ``ps`` shows) without the password of ``uri``.

    The title is the command line, where ``--journal`` may have carried the URI;
    ``setproctitle`` (installed with the ``postgres`` extra) is what can rewrite it."""
    if not passwords(uri):
        return
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - installed with the postgres extra
        return
    setproctitle.setproctitle(scrub(" ".join(sys.orig_argv), uri))
