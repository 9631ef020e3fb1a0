"""The ``asyncjobs`` command group, and :func:`main`, the console script."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .cancel import cancel_command
from .check import check_command
from .demo import demo_command
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .options import global_options
from .output import PROG
from .results import results_command
from .run import run_command
from .signals import Interrupts
from .status import status_command


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


for _command in (run_command, check_command, status_command, cancel_command, results_command, demo_command):
    cli.add_command(_command)


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
