"""The ``emulator`` command: serve the emulated AWS APIs until Ctrl-C (or SIGTERM).

On start it prints exactly one line to stdout, ``asyncjobs emulator listening on
http://HOST:PORT``, and flushes it; logs go to stderr. It exits 0 on SIGINT/SIGTERM,
2 on a bad option (a click usage error) or a ``--state`` file it cannot load, 1 if it cannot bind.

With ``--state FILE``, a restarted emulator takes over: FILE (if it exists) is loaded before the
emulator listens, and its jobs, counters and S3 are saved there on SIGINT/SIGTERM.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import click
import structlog

from .config import (
    AUTH_FAULT_CHOICES,
    OUTPUT_ORDER_CHOICES,
    RECORD_ERRORS_STATUS_CHOICES,
    TOKEN_MISMATCH_CHOICES,
    EmulatorConfig,
)
from .s3 import MOTO_MISSING, S3Store
from .server import Emulator, EmulatorStateError


class Pair(click.ParamType[tuple[float, float]]):
    """``MIN,MAX`` (or one number for both): two non-negative numbers with MIN <= MAX."""

    name = "MIN,MAX"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            self.fail(f"{value!r} is not MIN,MAX (two numbers)", param, ctx)
        if len(numbers) == 1:
            numbers *= 2
        if len(numbers) != 2 or not 0 <= numbers[0] <= numbers[1]:
            self.fail(f"{value!r} is not MIN,MAX with 0 <= MIN <= MAX", param, ctx)
        return numbers[0], numbers[1]


_RATE = click.FloatRange(min=0)
_PROBABILITY = click.FloatRange(0, 1)
_DEFAULTS = EmulatorConfig()


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (no authentication: keep it on loopback).")  # fmt: skip
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port."
)
@click.option(
    "--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Seed of every random draw."
)
@click.option("--region", default=_DEFAULTS.region, show_default=True, help="Region for unsigned scopes.")
@click.option("--create-rate", type=_RATE, default=_DEFAULTS.create_rate, show_default=True,
              help="Create (and Stop) calls per second per service; 0 = unlimited.")  # fmt: skip
@click.option("--get-rate", type=_RATE, default=_DEFAULTS.get_rate, show_default=True,
              help="Get/Describe calls per second per service; 0 = unlimited.")  # fmt: skip
@click.option("--list-rate", type=_RATE, default=_DEFAULTS.list_rate, show_default=True,
              help="List calls per second per service; 0 = unlimited.")  # fmt: skip
@click.option("--bedrock-max-running", type=click.IntRange(min=1), default=_DEFAULTS.bedrock_max_running,
              show_default=True, help="Submitted + in-progress Bedrock jobs per model.")  # fmt: skip
@click.option("--personalize-max-running", type=click.IntRange(min=1),
              default=_DEFAULTS.personalize_max_running, show_default=True,
              help="Pending + in-progress Personalize jobs per region and job kind.")  # fmt: skip
@click.option("--job-seconds", type=Pair(), default=",".join(map(str, _DEFAULTS.job_seconds)),
              show_default=True, help="Running time of a job, drawn from MIN,MAX seconds.")  # fmt: skip
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.time_scale,
              show_default=True, help="Multiplies every duration.")  # fmt: skip
@click.option(
    "--fail-rate", type=_PROBABILITY, default=0.0, show_default=True, help="Share of jobs that fail."
)
@click.option("--partial-rate", type=_PROBABILITY, default=0.0, show_default=True,
              help="Share of Bedrock jobs that end PartiallyCompleted.")  # fmt: skip
@click.option("--expire-rate", type=_PROBABILITY, default=0.0, show_default=True,
              help="Share of Bedrock jobs that expire in Scheduled.")  # fmt: skip
@click.option("--error-rate", type=_PROBABILITY, default=0.0, show_default=True,
              help="Share of requests answered with a 500.")  # fmt: skip
@click.option("--drop-rate", type=_PROBABILITY, default=0.0, show_default=True,
              help="Share of requests whose connection is dropped.")  # fmt: skip
@click.option("--latency", type=Pair(), default="0,0", show_default=True,
              help="Latency added to each request, MIN,MAX seconds.")  # fmt: skip
@click.option("--token-mismatch", type=click.Choice(TOKEN_MISMATCH_CHOICES), default="original",
              show_default=True, help="Answer to a reused Bedrock token with other parameters.")  # fmt: skip
@click.option("--auth-fault", type=click.Choice(AUTH_FAULT_CHOICES), default=None,
              help="Refuse every signed request (AccessDeniedException, ExpiredTokenException).")  # fmt: skip
@click.option("--auth-fault-after", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Answer the first N signed requests normally, then apply --auth-fault.")  # fmt: skip
@click.option("--limit-message", metavar="TEXT", default=None,
              help="Message of every Personalize LimitExceededException (rate and quota).")  # fmt: skip
@click.option("--list-lag", type=click.FloatRange(min=0), default=_DEFAULTS.list_lag, show_default=True,
              metavar="SECONDS", help="Lists show jobs as of SECONDS ago (x --time-scale).")  # fmt: skip
@click.option("--bedrock-min-records", type=click.IntRange(min=1), default=_DEFAULTS.bedrock_min_records,
              show_default=True, help="Fewest input records of a Bedrock job read from S3.")  # fmt: skip
@click.option("--bedrock-max-records", type=click.IntRange(min=1), default=_DEFAULTS.bedrock_max_records,
              show_default=True, help="Most input records of a Bedrock job read from S3.")  # fmt: skip
@click.option("--record-error-rate", type=_PROBABILITY, default=0.0, show_default=True,
              help="Share of records whose output line carries an error.")  # fmt: skip
@click.option("--record-errors-status", type=click.Choice(RECORD_ERRORS_STATUS_CHOICES),
              default=_DEFAULTS.record_errors_status, show_default=True,
              help="How a Bedrock job with failed records ends.")  # fmt: skip
@click.option("--output-order", type=click.Choice(OUTPUT_ORDER_CHOICES), default=_DEFAULTS.output_order,
              show_default=True, help="Order of the lines of output files.")  # fmt: skip
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Load jobs, counters and S3 from FILE if it exists; save them "
              "there on SIGINT/SIGTERM.")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="Log level (stderr); debug logs every request.")  # fmt: skip
def emulator(host: str, port: int, log_level: str, state_file: Path | None, **settings: Any) -> None:
    """Serve emulated AWS Bedrock and Personalize batch-job APIs, and S3 (use with --endpoint-url)."""
    settings["bedrock_token_mismatch"] = settings.pop("token_mismatch")
    if settings["auth_fault_after"] and settings["auth_fault"] is None:
        raise click.UsageError("--auth-fault-after needs --auth-fault")
    try:
        config = EmulatorConfig(**settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _configure_logging(log_level)
    emu = Emulator(config, host=host, port=port)
    if state_file is not None and state_file.exists():
        try:
            emu.load_state(state_file)
        except EmulatorStateError as exc:
            raise click.UsageError(f"--state: {exc}") from None
    try:
        anyio.run(_serve, emu, host, state_file)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def _serve(emu: Emulator, host: str, state_file: Path | None) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with emu:
            if not all(_is_loopback(address) for address in emu.addresses):
                click.echo(
                    f"asyncjobs emulator: warning: listening on {host}, beyond the loopback interface; "
                    "the emulator has no authentication: anyone who can reach it can control it",
                    err=True,
                )
            if not S3Store.available():
                click.echo(f"asyncjobs emulator: warning: S3 is not served. {MOTO_MISSING}", err=True)
            click.echo(f"asyncjobs emulator listening on {emu.url}")
            sys.stdout.flush()
            async for signum in signals:
                structlog.get_logger("asyncjobs.emulator").info(
                    "asyncjobs.emulator.signal", signal=signal.Signals(signum).name
                )
                break
            if state_file is not None:  # while serving: S3 is emptied when the emulator stops
                try:
                    emu.save_state(state_file)
                except OSError as exc:
                    raise click.ClickException(
                        f"--state: cannot save the emulator state to {state_file}: {exc.strerror or exc}"
                    ) from None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback  # no IPv6 zone
    except ValueError:
        return False


def _configure_logging(level: str) -> None:
    """Logs to stderr, unless the application (the asyncjobs CLI) configured structlog already."""
    if structlog.is_configured():
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
