"""The ``asyncjobs`` command: run, check, status, cancel, demo and emulator.

Conventions follow the AWS CLI: ``--endpoint-url``, ``--region``, ``--profile``,
``--output json|table``, ``--query`` (JMESPath over the JSON document), ``--debug``,
``--no-verify-ssl``, and botocore's usual credential chain. Global options may be
given before or after the subcommand.

Exit codes (``run``; the others use 0, 2, 3 and 130 the same way):

- 0: every job succeeded (``partial`` counts as success; ``status`` shows which);
- 1: the campaign finished with failed, stopped, expired or rejected jobs;
- 2: a usage or input error; nothing was submitted;
- 3: the run stopped on an error (e.g. the journal became unwritable); resumable;
- 130: interrupted by SIGINT or SIGTERM; resumable.

This is the only module that configures logging (structlog and the stdlib).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import shlex
import shutil
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar
from urllib.parse import quote

import anyio
import anyio.lowlevel
import click
import jmespath
import structlog
from rich.console import Console, RenderableType

from . import display
from .errors import (
    AsyncJobsError,
    CampaignError,
    InputError,
    JournalError,
    JournalLocked,
    JournalSchemaError,
    ServiceError,
)
from .journal import SQLiteJournal, files, open_journal
from .model import UNSUCCESSFUL_STATES, JobSpec, JobState, StateCounts
from .scheduler import Campaign, Progress, Settings, Summary

PROG = "asyncjobs"

EXIT_OK = 0
EXIT_UNSUCCESSFUL = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130

#: Where option values given at any level of the command line are collected.
_GLOBALS_KEY = "asyncjobs.globals"
#: How often the plain progress line is written when stderr is not a terminal.
LINE_INTERVAL = 5.0

log = structlog.get_logger("asyncjobs.cli")


class Failure(Exception):
    """Stop the command with ``asyncjobs: error: <message>`` and ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Halted(Failure):
    """The run stopped on an error after it started (exit 3): the cause, and the summary so far."""

    def __init__(self, error: AsyncJobsError, summary: Summary) -> None:
        super().__init__(error.describe() if isinstance(error, ServiceError) else error.message)
        self.error = error
        self.summary = summary

    def document(self) -> dict[str, Any]:
        """The run's summary document, with ``error``: ``{"code", "message"}``."""
        code = self.error.code if isinstance(self.error, ServiceError) else None
        return {
            **self.summary.to_dict(),
            "error": {"code": code or type(self.error).__name__, "message": self.error.message},
        }


# ----------------------------------------------------------------------------- global options
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


def warn_if_unverified(g: Globals) -> None:
    """One warning line when TLS certificates will not be checked (``--no-verify-ssl``).

    The AWS CLI's HTTP stack (urllib3) warns on every unverified request; aiohttp, under
    aioboto3, says nothing, so without this line an insecure run looks like any other.
    """
    if g.no_verify_ssl:
        note("warning: TLS certificate verification is off (--no-verify-ssl)")


def _globals(ctx: click.Context) -> Globals:
    return Globals(**ctx.meta.get(_GLOBALS_KEY, {}))


# ----------------------------------------------------------------------------- logging
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
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# ----------------------------------------------------------------------------- output
def _stdout_console() -> Console:
    """Tables fit the terminal; into a file or pipe they are not squeezed to 80 columns."""
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, soft_wrap=False, highlight=False, width=width)


def _stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def command() -> str:
    """How to type this command again in hints: ``asyncjobs`` if it is on PATH, else the path used."""
    used = sys.argv[0] if sys.argv else PROG
    if Path(used).name != PROG or shutil.which(PROG) == str(Path(used).absolute()):
        return PROG
    return used


def shell_command(*args: str) -> str:
    """A command line to print in a hint: this command and ``args``, every word shell-quoted.

    Hints repeat paths and values the user gave (a journal named ``x;touch y``): pasted
    into a shell unquoted, they would run something else.
    """
    return shlex.join([command(), *args])


def note(message: str) -> None:
    """A message for the person at the terminal (stderr; stdout stays for results).

    Messages quote ids, paths and service errors: control characters in them are
    escaped, so they cannot drive the terminal (plain text, never rich markup).
    """
    click.echo(f"{PROG}: {display.safe_text(message)}", err=True)


def emit(g: Globals, doc: Mapping[str, Any], table: Callable[[Mapping[str, Any]], RenderableType]) -> None:
    """Print a result document: JSON or a table, after ``--query``, like the AWS CLI."""
    value: Any = doc if g.query is None else jmespath.search(g.query, doc)
    if g.output_format == "json":
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
        return
    renderable = table(doc) if g.query is None else display.generic_renderable(value)
    _stdout_console().print(renderable)


# ----------------------------------------------------------------------------- signals
class Interrupts:
    """SIGINT/SIGTERM handling for one command (the library never installs handlers).

    The first signal is recorded (:attr:`received`) and calls the current phase's
    ``on_first`` action (set the stop event, or cancel work that has sent nothing yet);
    a second one exits at once with 130.

    Recording it matters as much as acting on it: an action can miss its target (a
    cancellation cannot reach the journal's worker thread), so every phase boundary
    asks :meth:`check`, and a phase that begins after the signal gets its action at once.
    """

    def __init__(self, before_exit: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self._on_first: Callable[[], None] = lambda: None
        self._message = "interrupted"
        self._before_exit = before_exit

    @property
    def seen(self) -> bool:
        """Whether the first signal has come (read from the journal's thread too: a plain attribute)."""
        return self.received is not None

    def on_first(self, action: Callable[[], None], message: str) -> None:
        """What the first signal does from now on; done at once if it has already come."""
        self._on_first = action
        self._message = message
        if self.seen:
            action()

    def check(self) -> None:
        """A phase boundary: raise :class:`_Interrupted` if the first signal has come."""
        if self.seen:
            raise _Interrupted(_NOTHING_SENT)

    async def watch(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        handled = {signal.SIGINT, signal.SIGTERM}
        held = False
        try:
            with anyio.open_signal_receiver(*handled) as signals:
                try:
                    task_status.started()
                    async for signum in signals:
                        if self.received is not None:
                            self.exit_now(signum)
                        self.received = signum
                        note(f"{signal.Signals(signum).name}: {self._message} (signal again to exit at once)")
                        self._on_first()
                finally:
                    if self.received is not None:
                        # a second signal between the receiver's end and the handlers below would
                        # meet Python's defaults (KeyboardInterrupt): keep it pending meanwhile
                        signal.pthread_sigmask(signal.SIG_BLOCK, handled)
                        held = True
        finally:
            if self.received is not None:  # the promise holds until the process ends
                for signum in handled:
                    signal.signal(signum, self._second_signal)
            if held:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)

    def _second_signal(self, signum: int, _: object) -> None:
        self.exit_now(signum)

    @staticmethod
    def settle() -> None:
        """The process is about to exit anyway: a late second signal is ignored, not met by
        the defaults Python restores while it shuts down (which would kill it with -SIGINT)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if getattr(handler, "__func__", None) is Interrupts._second_signal:
                signal.signal(signum, signal.SIG_IGN)

    def exit_now(self, signum: int) -> NoReturn:
        note(f"{signal.Signals(signum).name} again: exiting now")
        if self._before_exit is not None:
            self._before_exit()
        _restore_terminal()
        os._exit(EXIT_INTERRUPTED)


def _restore_terminal() -> None:
    """Before a hard exit: flush, and show the cursor again (the live display hides it)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()  # may be the live display's proxy: its buffered lines go out first
        stderr = sys.__stderr__
        if stderr is not None:
            if stderr.isatty():
                stderr.write("\x1b[?25h\n")
            stderr.flush()


@contextlib.asynccontextmanager
async def watching(interrupts: Interrupts) -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group with the signal watcher running; cancelled on exit.

    An error raised inside comes out as itself, not wrapped in an exception group.
    """
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(interrupts.watch)
            try:
                yield tg
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if leaf is group:
            raise
        raise leaf from None


# ----------------------------------------------------------------------------- AWS session
def make_session(
    g: Globals, *, credentials: Mapping[str, str] | None = None, region: str | None = None
) -> Any:
    """An aioboto3 session: botocore's credential chain and ``--profile``, or fixed ``credentials``."""
    import aioboto3
    from botocore.exceptions import BotoCoreError

    try:
        if credentials is not None:
            return aioboto3.Session(region_name=region or g.region, **credentials)
        return aioboto3.Session(profile_name=g.profile, region_name=region or g.region)
    except BotoCoreError as exc:
        raise Failure(str(exc), EXIT_USAGE) from exc


async def require_credentials(session: Any) -> None:
    """Fail early (exit 2, nothing sent) when the credential chain finds nothing."""
    from botocore.exceptions import BotoCoreError

    try:
        credentials = await session.get_credentials()
    except BotoCoreError as exc:
        raise Failure(f"cannot load AWS credentials: {exc}", EXIT_USAGE) from exc
    if credentials is None:
        raise Failure(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile",
            EXIT_USAGE,
        )


async def _session_for(g: Globals, campaign_file: str | None) -> Any:
    """The session for ``run``, its credentials checked; but a bad campaign is reported first.

    What is wrong with the campaign is what to fix first, and it does not depend on
    credentials. Still, the campaign is validated by its one streaming read, the ingest,
    which comes after this check: a second pass beforehand would double the validation
    of a million-line campaign on every run, and stdin can be read only once. So the
    campaign is read here only when the credentials are missing, and its first error
    (duplicates included, as the ingest would find them) wins over theirs.
    """
    try:
        session = make_session(g)
        await require_credentials(session)
    except Failure:
        if campaign_file is not None:
            from .campaign import check_campaign

            for item in check_campaign(campaign_file):
                if isinstance(item, CampaignError):
                    raise item from None
        raise
    return session


# ----------------------------------------------------------------------------- running a campaign
@dataclass
class RunOptions:
    """What ``asyncjobs run`` (and the demo) was asked to do."""

    journal: Path
    source: str | None
    campaign_name: str | None
    settings: Settings
    wait: bool = True
    resume_hint: str = ""
    #: Progress as ``asyncjobs.progress`` log events (``--log-format json``) instead of text lines.
    structured: bool = False


def journal_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", ".lock"))]


def remove_journal(path: Path) -> None:
    """Remove a journal this invocation created (input rejected: leave nothing behind)."""
    for file in journal_files(path):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()


async def ingest(campaign: Campaign, source: str, interrupts: Interrupts | None = None) -> int:
    """Validate and journal every spec of ``source`` (all or nothing); returns how many were new.

    With ``interrupts``, the first signal abandons the ingest: the campaign is read in the
    journal's worker thread, where no cancellation reaches, so the reader itself looks at
    the signal before each spec and raises :class:`_Interrupted`, and the load rolls back.
    """
    from .campaign import read_campaign

    specs: Iterable[JobSpec] = read_campaign(source)
    if interrupts is not None:
        specs = _until_interrupted(specs, interrupts)
    result = await campaign.add(specs)
    log.info("asyncjobs.campaign.ingested", added=result.added, existing=result.existing)
    return result.added


def _until_interrupted(specs: Iterable[JobSpec], interrupts: Interrupts) -> Iterator[JobSpec]:
    for spec in specs:
        if interrupts.seen:
            raise _Interrupted(_NOTHING_SENT)
        yield spec


_NOTHING_SENT = "interrupted before anything was submitted"


async def drive(
    options: RunOptions,
    make_campaign: Callable[[SQLiteJournal], Campaign],
    interrupts: Interrupts | None = None,
) -> Summary:
    """Open the journal, ingest, run with progress and signal handling.

    Input errors leave no journal behind when this invocation created it.

    After the first signal no create is sent, whenever it comes: the ingest is abandoned
    (rolled back) or, if it had committed, kept for a resume; the boundary between ingest
    and run checks for the signal; and the stop event handed to the run is set from the
    start if the signal came while the run was starting, so it sends nothing.
    """
    path = options.journal
    created = not path.exists()
    if options.source is None and created:
        raise Failure(f"no journal at {path}: give a CAMPAIGN file to start one", EXIT_USAGE)
    interrupts = interrupts or Interrupts()
    async with watching(interrupts) as tg:
        journal = await _open_for_run(path, options.campaign_name)
        try:
            campaign = make_campaign(journal)
            with anyio.CancelScope() as ingesting:
                interrupts.on_first(ingesting.cancel, "stopping before anything is submitted")
                if options.source is not None:
                    await ingest(campaign, options.source, interrupts)
                if journal.counts().total == 0:
                    raise InputError(f"{options.source or path}: the campaign has no jobs")
            # the ingest may have ended in its thread after the signal, uncancelled: look again
            interrupts.check()
            if not created and options.campaign_name not in (None, journal.campaign):
                note(f"the journal keeps its campaign name {journal.campaign!r}; --campaign-name is ignored")
        except BaseException as exc:
            await journal.aclose()
            interrupted = isinstance(_leaf(exc), _Interrupted)
            journaled = journal.counts().total > 0
            if created and not (interrupted and journaled):
                # rejected input, or an ingest the signal rolled back: there is nothing to resume
                remove_journal(path)
            if interrupted:  # an ingest that committed before the signal was seen is kept: it resumes
                raise _interrupted_before_run(options, journaled=journaled) from None
            if isinstance(exc, JournalError):  # e.g. a spec changed under the same id: nothing was sent
                raise Failure(exc.message, EXIT_USAGE) from exc
            raise
        try:
            # set at once if the signal comes (or came) before or while the run starts: the
            # run then begins stopped and sends nothing, not even a repeat of an unsettled create
            stop = anyio.Event()
            interrupts.on_first(
                stop.set, "stopping: no new submissions; creates in flight are finishing and being journaled"
            )
            summary = await _run_with_progress(campaign, options.wait, stop, tg, options.structured)
        except BaseException as exc:
            error = _leaf(exc)
            if isinstance(error, AsyncJobsError) and not isinstance(error, InputError):
                raise Halted(error, _summary_so_far(campaign)) from error
            raise
        finally:
            await journal.aclose()
    return summary


def _interrupted_before_run(options: RunOptions, *, journaled: bool) -> _Interrupted:
    """How to go on after a signal that came before the run: resume, or start again."""
    if journaled:
        return _Interrupted(f"{_NOTHING_SENT}; resume with: {options.resume_hint}")
    return _Interrupted(f"{_NOTHING_SENT}; nothing was journaled: run the same command again to start")


def _summary_so_far(campaign: Campaign) -> Summary:
    """What a run that stopped on an error had done: the journal's counts and the API calls made."""
    progress = campaign.progress()
    return Summary(
        campaign=campaign.journal.campaign,
        journal=campaign.journal.path,
        counts=progress.counts,
        interrupted=False,
        elapsed=progress.elapsed,
        creates=progress.creates,
        throttled=progress.throttled,
        reads=progress.reads,
    )


class _Interrupted(Exception):
    """A signal arrived before anything was submitted; the message says what to do next."""


async def _open_for_run(path: Path, campaign_name: str | None) -> SQLiteJournal:
    try:
        return await open_journal(path, campaign=campaign_name, create=True)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc


async def _run_with_progress(
    campaign: Campaign, wait: bool, stop: anyio.Event, tg: anyio.abc.TaskGroup, structured: bool
) -> Summary:
    """Run the campaign with a live display on a terminal, else progress lines (log events if JSON)."""
    progress_scope = anyio.CancelScope()

    def report(progress: Progress) -> None:
        if structured:
            log.info("asyncjobs.progress", **display.progress_fields(progress))
        else:
            note(display.progress_line(progress))

    async def show() -> None:
        with progress_scope:
            if _interactive():
                await display.live_progress(campaign.progress, _stderr_console())
            else:
                await display.line_progress(campaign.progress, report, interval=LINE_INTERVAL)

    tg.start_soon(show)
    try:
        return await campaign.run(wait=wait, stop=stop)
    finally:
        progress_scope.cancel()
        await anyio.lowlevel.checkpoint()  # let the display draw its last frame


def _interactive() -> bool:
    """A live display when stderr is a terminal (progress goes to stderr; stdout is for results)."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def run_exit_code(summary: Summary, *, wait: bool = True) -> int:
    """130 when stopped before the end (a signal that came after the last job ended changes nothing).

    A run that waited never exits 0 with an unfinished job, whatever the engine said.
    """
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if wait and not summary.counts.done:
        return EXIT_UNSUCCESSFUL
    return EXIT_OK if summary.ok else EXIT_UNSUCCESSFUL


def report_run(g: Globals, summary: Summary, options: RunOptions) -> int:
    """Print the summary, the notes a person needs, and return the exit code."""
    code = run_exit_code(summary, wait=options.wait)
    emit(g, summary.to_dict(), display.summary_renderable)
    counts = summary.counts
    if code == EXIT_INTERRUPTED:
        note(f"interrupted; nothing is lost. Resume with: {options.resume_hint}")
        return code
    if not options.wait and not counts.done:
        note(f"submitted; track the campaign with: {options.resume_hint}")
    bad = {str(s): counts[s] for s in JobState if s in UNSUCCESSFUL_STATES and counts[s]}
    if bad:
        details = ", ".join(f"{n} {s}" for s, n in bad.items())
        states = ",".join(bad)
        see = shell_command("status", "--journal", str(options.journal), "--state", states)
        note(f"finished with {details}; see: {see}")
    if counts[JobState.PARTIAL]:
        note(f"{counts[JobState.PARTIAL]} job(s) only partially completed (counted as succeeded)")
    return code


def report_halt(g: Globals, halted: Halted, options: RunOptions) -> None:
    """Before the error line: the summary so far (with the error) and how to resume."""
    emit(g, halted.document(), display.summary_renderable)
    note(f"the campaign stopped on an error; once it is fixed, resume with: {options.resume_hint}")


def parse_max_running(values: Iterable[str]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for value in values:
        key, sep, number = value.rpartition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=N", param_hint="--max-running")
        try:
            n = int(number)
        except ValueError:
            raise click.BadParameter(f"{value!r}: N must be an integer", param_hint="--max-running") from None
        if n < 1:
            raise click.BadParameter(f"{value!r}: N must be at least 1", param_hint="--max-running")
        caps[key] = n
    return caps


def campaign_factory(
    g: Globals, settings: Settings, session: Any, endpoint_url: str | None = None
) -> Callable[[SQLiteJournal], Campaign]:
    def make(journal: SQLiteJournal) -> Campaign:
        return Campaign(
            journal,
            session=session,
            region=g.region,
            endpoint_url=endpoint_url or g.endpoint_url,
            verify=g.verify,
            settings=settings,
        )

    return make


# ----------------------------------------------------------------------------- status
@dataclass(frozen=True)
class JobRow:
    id: str
    service: str
    state: str
    arn: str | None
    attempts: int
    last_error: str | None
    job_name: str
    remote_status: str | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


async def status_document(path: Path, states: Sequence[JobState]) -> dict[str, Any]:
    """``{"campaign", "journal", "total", "counts", "jobs"}`` for ``asyncjobs status``.

    While a run bulk-loads a new campaign, ``"loading": {"pid", "jobs", "stage"}`` says how far it has got.
    """
    try:
        # the journal may have been planted or changed by another user: refuse it before reading it
        await anyio.to_thread.run_sync(_check_journal_files, path)
        journal = await open_journal(path, create=False)
    except JournalLocked as exc:
        note(f"{exc.message}; showing a read-only snapshot")
        return await anyio.to_thread.run_sync(_read_only_status, path, states)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    try:
        rows = [
            JobRow(
                j.id,
                str(j.service),
                str(j.state),
                j.arn,
                j.attempt,
                j.last_error,
                j.job_name,
                j.remote_status,
            )
            async for j in journal.jobs(states or None)
        ]
        return _status_doc(journal.campaign, str(path), journal.counts(), rows)
    finally:
        await journal.aclose()


def _status_doc(campaign: str | None, path: str, counts: StateCounts, rows: list[JobRow]) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "journal": path,
        "total": counts.total,
        "counts": counts.as_dict(),
        "jobs": [row.as_dict() for row in rows],
    }


def _check_journal_files(path: Path) -> os.stat_result | None:
    """:func:`asyncjobs.journal.files.check_all` for reading: the database's status, if any."""
    return files.check_all(path, "read")


#: How long a snapshot read waits for a writer's lock (a commit, a journal-mode switch) before it
#: reports what it can: a bulk load holds the lock for as long as it takes.
_SNAPSHOT_WAIT = 2.0


def _read_only_status(path: Path, states: Sequence[JobState]) -> dict[str, Any]:
    """Read a journal that another process holds, without its lock (SQLite WAL readers don't block).

    A stop-gap until the journal offers a read-only open; it reads the schema-1 tables. The files
    are checked as a run checks them; while a run bulk-loads a new campaign (readers wait until it
    commits), what its lock record says about the load is reported instead.
    """
    try:
        found = _check_journal_files(path)
        if found is None:
            raise JournalError(f"{path}: no such journal")
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=_SNAPSHOT_WAIT)
    except sqlite3.Error as exc:
        raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
    try:
        files.check_same(path, (found.st_dev, found.st_ino), "read")  # SQLite opened it by name
        conn.execute("BEGIN")  # one snapshot for the counts and the rows
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != 1:
            raise JournalSchemaError(f"{path}: journal schema version {version} is not supported here")
        (campaign,) = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        counts = StateCounts(
            {JobState(s): n for s, n in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}
        )
        sql = "SELECT id, service, state, arn, attempt, last_error, job_name, remote_status FROM jobs"
        args = [str(s) for s in states]
        if args:
            sql += f" WHERE state IN ({','.join('?' * len(args))})"
        rows = [JobRow(*row) for row in conn.execute(sql + " ORDER BY seq", args)]
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:  # not waiting on a writer
            raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
        return _loading_status(path, _holder(path), None)
    except sqlite3.Error as exc:
        raise Failure(f"{path}: cannot read the journal: {exc}", EXIT_USAGE) from exc
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    finally:
        conn.close()
    doc = _status_doc(str(campaign), str(path), counts, rows)
    held = _holder(path)
    if held is not None and held.loading is not None:  # read before the load took the database
        return _loading_status(path, held, doc)
    return doc


def _holder(path: Path) -> files.LockRecord | None:
    try:
        return files.holder(path)
    except JournalError as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    except OSError:  # only the progress of a load is missing
        return None


def _loading_status(path: Path, held: files.LockRecord | None, doc: dict[str, Any] | None) -> dict[str, Any]:
    """What status can say while a run bulk-loads a new campaign: its jobs appear all at once when
    the load commits, and until then readers wait on its lock; the lock record says how far it got."""
    loading = dict(held.loading or {}) if held is not None else {}
    jobs, stage = loading.get("jobs"), loading.get("stage")
    if not isinstance(jobs, int):
        so_far = "how far it has got is not known"
    elif stage == "indexing":
        so_far = f"{jobs} jobs read, now indexing them"
    else:
        so_far = f"{jobs} jobs so far"
    by = f" by pid {held.pid}" if held is not None else ""
    note(f"the campaign is being loaded into the journal{by} ({so_far}); its jobs show once the load is done")
    if doc is None:
        campaign = loading.get("campaign")
        doc = _status_doc(campaign if isinstance(campaign, str) else None, str(path), StateCounts({}), [])
    doc["loading"] = {"pid": held.pid if held is not None else None, "jobs": jobs, "stage": stage}
    return doc


# ----------------------------------------------------------------------------- the commands
class _Group(click.Group):
    """The command group; ``emulator`` is imported only when used (it brings the HTTP server)."""

    lazy = {"emulator": ("asyncjobs.emulator.cli", "emulator")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attr = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attr} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="asyncjobs", prog_name=PROG)
@global_options
def cli() -> None:
    """Submit and shepherd large campaigns of AWS Bedrock and Personalize batch jobs.

    Rate-limited, quota-aware, exactly-once and resumable: every job is journaled
    before it is sent, and re-running with the same journal picks up where it left off.
    """


def _journal_option(func: F) -> F:
    return click.option(
        "--journal",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        metavar="PATH",
        help="The campaign's journal (SQLite file).",
    )(func)


@cli.command("run")
@click.argument("campaign_file", metavar="[CAMPAIGN]", required=False)
@_journal_option
@click.option(
    "--campaign-name", metavar="NAME", help="Name of a new campaign (default: the journal's file name)."
)
@click.option(
    "--create-rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Ceiling on create calls per second, per service (default: discover).",
)
@click.option(
    "--max-running",
    "max_running",
    multiple=True,
    metavar="KEY=N",
    help="Cap running jobs of a quota key, model id or service; repeatable.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest gap between status sweeps.",
)
@click.option(
    "--resubmit-failed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Extra attempts for failed or expired jobs.",
)
@click.option("--no-wait", is_flag=True, help="Exit once every job is submitted; resume later to track them.")
@global_options
@click.pass_context
def run_command(
    ctx: click.Context,
    campaign_file: str | None,
    journal: Path,
    campaign_name: str | None,
    create_rate: float | None,
    max_running: tuple[str, ...],
    poll_interval: float,
    resubmit_failed: int,
    no_wait: bool,
) -> int:
    """Submit CAMPAIGN (JSON Lines, or - for stdin) and track every job to the end.

    Re-running with the same --journal resumes; CAMPAIGN may then be left out.
    """
    g = _setup(ctx)
    warn_if_unverified(g)
    settings = Settings(
        create_rate=create_rate,
        max_running=parse_max_running(max_running),
        poll_interval=poll_interval,
        min_poll_interval=min(Settings().min_poll_interval, poll_interval),
        resubmit_failed=resubmit_failed,
    )
    options = RunOptions(
        journal=journal,
        source=campaign_file,
        campaign_name=campaign_name,
        settings=settings,
        wait=not no_wait,
        resume_hint=shell_command(*g.connection_argv(), "run", "--journal", str(journal)),
        structured=g.log_format == "json",
    )

    async def main() -> int:
        session = await _session_for(g, campaign_file)
        try:
            summary = await drive(options, campaign_factory(g, settings, session))
        except Halted as halted:
            report_halt(g, halted, options)
            raise
        except AsyncJobsError as exc:
            if isinstance(exc, InputError):
                raise
            # the run had started and every change is journaled: say how to resume, then the cause
            note(f"the campaign stopped on an error; once it is fixed, resume with: {options.resume_hint}")
            raise Failure(exc.describe() if isinstance(exc, ServiceError) else exc.message) from exc
        return report_run(g, summary, options)

    return _run_async(g, main)


@cli.command("check")
@click.argument("campaign_file", metavar="CAMPAIGN")
@global_options
@click.pass_context
def check_command(ctx: click.Context, campaign_file: str) -> int:
    """Validate CAMPAIGN (JSON Lines, or - for stdin) as `run` would, and send nothing.

    Every bad line is reported on stderr as FILE:LINE: FIELD: REASON (duplicate ids
    and job names included), and the exit code is 2. When every line is good, the
    jobs per service and per quota key are printed. Needs no credentials and no journal.
    """
    g = _setup(ctx)
    from .campaign import check_campaign

    try:
        bad = 0
        services: Counter[str] = Counter()
        keys: Counter[str] = Counter()
        for item in check_campaign(campaign_file):
            if isinstance(item, CampaignError):
                bad += 1
                click.echo(display.safe_text(str(item)), err=True)
            else:
                services[str(item.service)] += 1
                keys[item.quota_key] += 1
    except BaseException as exc:
        return _report_error(g, exc)
    if bad:
        return EXIT_USAGE
    doc = {
        "campaign": "<stdin>" if campaign_file == "-" else campaign_file,
        "jobs": services.total(),
        "services": dict(sorted(services.items())),
        "quota_keys": dict(sorted(keys.items())),
    }
    emit(g, doc, display.check_renderable)
    return EXIT_OK


@cli.command("status")
@_journal_option
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Only jobs in this state; repeatable or comma-separated (" + ", ".join(JobState) + ").",
)
@global_options
@click.pass_context
def status_command(ctx: click.Context, journal: Path, states: tuple[str, ...]) -> int:
    """Counts per state, and one row per job: id, service, state, ARN, attempts, last error."""
    g = _setup(ctx)
    wanted = _parse_states(states)

    async def main() -> int:
        doc = await status_document(journal, wanted)
        emit(g, doc, display.status_renderable)
        return EXIT_OK

    return _run_async(g, main)


def _parse_states(values: Iterable[str]) -> list[JobState]:
    wanted: list[JobState] = []
    for value in values:
        for name in filter(None, (v.strip().lower() for v in value.split(","))):
            try:
                wanted.append(JobState(name))
            except ValueError:
                raise click.BadParameter(
                    f"{name!r} is not one of {', '.join(JobState)}", param_hint="--state"
                ) from None
    return wanted


@cli.command("cancel")
@_journal_option
@global_options
@click.pass_context
def cancel_command(ctx: click.Context, journal: Path) -> int:
    """Cancel a campaign: stop its Bedrock jobs and cancel every job not yet submitted.

    Personalize batch jobs cannot be stopped: they run to the end, and a later
    `asyncjobs run --journal PATH` tracks them.
    """
    g = _setup(ctx)
    warn_if_unverified(g)

    async def main() -> int:
        session = make_session(g)
        await require_credentials(session)
        try:
            opened = await open_journal(journal, create=False)
        except JournalError as exc:
            raise Failure(exc.message, EXIT_USAGE) from exc
        try:
            summary = await campaign_factory(g, Settings(), session)(opened).cancel()
        finally:
            await opened.aclose()
        emit(g, summary.to_dict(), display.summary_renderable)
        if summary.unstoppable:
            track = shell_command(*g.connection_argv(), "run", "--journal", str(journal))
            note(
                f"{summary.unstoppable} Personalize job(s) cannot be stopped and keep running; "
                f"track them with: {track}"
            )
        return EXIT_OK

    return _run_async(g, main)


@cli.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".asyncjobs-demo"),
    show_default=True,
    help="Where the demo keeps its campaign, journal and emulator state.",
)
@click.option("--fresh", is_flag=True, help="Start over, even if an unfinished demo can be resumed.")
@click.option(
    "--jobs",
    "jobs",
    type=click.IntRange(min=4, max=5000),
    default=300,
    show_default=True,
    help="Jobs in the sample campaign.",
)
@global_options
@click.pass_context
def demo_command(ctx: click.Context, directory: Path, fresh: bool, jobs: int) -> int:
    """Run a sample campaign against an in-process emulator, with the progress display.

    Interrupt it (Ctrl-C) and run it again to see it resume.
    """
    g = _setup(ctx)
    return _run_async(g, lambda: run_demo(g, directory, fresh=fresh, jobs=jobs))


async def run_demo(g: Globals, directory: Path, *, fresh: bool, jobs: int) -> int:
    """Start the emulator, resume or start the sample campaign, run it with the display."""
    from . import demo
    from .emulator import Emulator

    if g.endpoint_url or g.profile:
        note("the demo runs against its own in-process emulator; --endpoint-url and --profile are ignored")
    try:
        resuming, why = await demo.prepare(directory, fresh=fresh, jobs=jobs)
    except JournalLocked as exc:
        raise Failure(exc.message, EXIT_USAGE) from exc
    except JournalError as exc:
        raise Failure(f"{exc.message}; start a new demo with --fresh", EXIT_USAGE) from exc
    emulator = Emulator(demo.emulator_config())
    state_file = directory / demo.STATE_FILE
    if resuming and not demo.restore_state(emulator, state_file):
        demo.reset_folder(directory, jobs)
        resuming, why = False, "the emulator's saved state could not be read; starting a new demo"
    if why:
        note(why)
    journal = directory / demo.JOURNAL_FILE
    note(
        ("resuming the demo campaign" if resuming else f"starting the demo: {jobs} jobs")
        + f" (campaign {directory / demo.CAMPAIGN_FILE}, journal {journal})"
    )
    settings = demo.demo_settings()
    options = RunOptions(
        journal=journal,
        source=None if resuming else str(directory / demo.CAMPAIGN_FILE),
        campaign_name="demo",
        settings=settings,
        resume_hint=shell_command(
            "demo", *(["--dir", str(directory)] if directory != Path(".asyncjobs-demo") else [])
        ),
        structured=g.log_format == "json",
    )
    session = make_session(g, credentials=demo.CREDENTIALS, region=demo.REGION)
    demo_g = Globals(**{**vars(g), "endpoint_url": None, "profile": None, "region": demo.REGION})
    async with emulator, anyio.create_task_group() as tg:
        tg.start_soon(demo.autosave, emulator, state_file)
        try:
            summary = await drive(
                options,
                campaign_factory(demo_g, settings, session, endpoint_url=emulator.url),
                Interrupts(before_exit=lambda: emulator.save_state(state_file)),
            )
        except Halted as halted:
            report_halt(g, halted, options)
            raise
        finally:
            tg.cancel_scope.cancel()
    code = report_run(g, summary, options)
    stats = emulator.stats()
    note(f"emulator: {_emulator_line(stats)}")
    if code == EXIT_INTERRUPTED:
        return code
    note(f"journal: {journal}; inspect it with: {shell_command('status', '--journal', str(journal))}")
    note(f"run `{shell_command('demo')}` again for a new demo")
    return EXIT_OK  # failed jobs are part of the demo's script


def _emulator_line(stats: Mapping[str, Any]) -> str:
    """A one-line digest of the emulator's counters, whatever subset of them it reports."""
    parts = []
    for key in ("jobs_total", "duplicate_jobs", "throttled_total", "quota_rejections_total", "faults"):
        value = stats.get(key)
        if isinstance(value, Mapping):
            value = sum(v for v in value.values() if isinstance(v, int | float))
        if value is not None:
            parts.append(f"{key.removesuffix('_total').replace('_', ' ')} {value}")
    return ", ".join(parts) or "no counters"


# ----------------------------------------------------------------------------- plumbing
def _setup(ctx: click.Context) -> Globals:
    g = _globals(ctx)
    configure_logging(g, interactive=_interactive())
    return g


def _run_async(g: Globals, main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main`` under anyio; turn errors into one line and an exit code."""

    async def entry() -> int:
        return await main()

    try:
        return anyio.run(entry)
    except BaseException as exc:
        return _report_error(g, exc)


def _report_error(g: Globals, exc: BaseException) -> int:
    leaf = _leaf(exc)
    if isinstance(leaf, SystemExit):
        raise leaf
    if isinstance(leaf, _Interrupted):
        note(str(leaf))
        return EXIT_INTERRUPTED
    if isinstance(leaf, KeyboardInterrupt):
        note("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(leaf, Failure):
        message, code = str(leaf), leaf.code
    elif isinstance(leaf, InputError):
        message, code = leaf.message, EXIT_USAGE
    elif isinstance(leaf, AsyncJobsError):
        message, code = leaf.message, EXIT_ERROR
    elif isinstance(leaf, click.ClickException):
        raise leaf
    else:
        message, code = f"{type(leaf).__name__}: {leaf}", EXIT_ERROR
    if g.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"{PROG}: error: {display.safe_text(message)}", err=True)
    if not g.debug and code == EXIT_ERROR and not isinstance(leaf, AsyncJobsError | Failure):
        click.echo(f"{PROG}: (run with --debug for the traceback)", err=True)
    return code


def _leaf(exc: BaseException) -> BaseException:
    """The error that matters inside (nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        if not inner:
            return exc
        preferred = [e for e in inner if isinstance(e, AsyncJobsError | Failure)]
        exc = (preferred or inner)[0]
    return exc


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        message = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
        click.echo(f"{PROG}: error: {message}{hint}", err=True)
        code = exc.exit_code
    Interrupts.settle()
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
